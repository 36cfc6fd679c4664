//! Files generated from the wire types and committed: the UI's TypeScript types, rendered with
//! `ts-rs` into `web/src/api.gen.ts` (and, in `kaged-http`, the OpenAPI document). A test
//! fails when a committed file is stale; regenerate with `KAGED_UPDATE_GENERATED=1 cargo test`.

use ts_rs::{Config, TS};

use crate::*;

/// The repository path of the generated file.
pub const TYPESCRIPT_FILE: &str = "web/src/api.gen.ts";

macro_rules! declarations {
    ($cfg:expr; $($ty:ty),* $(,)?) => {
        vec![$(declaration::<$ty>($cfg)),*]
    };
}

fn declaration<T: TS>(cfg: &Config) -> String {
    let docs = T::docs()
        .map(|d| format!("{}\n", d.trim_end()))
        .unwrap_or_default();
    format!("{docs}export {}", T::decl(cfg))
}

/// The whole TypeScript file.
pub fn typescript() -> String {
    // Byte offsets and ids stay far below 2^53, so `number` is exact and far easier to use
    // than `bigint` in the UI.
    let cfg = Config::new().with_large_int("number");
    let decls = declarations!(&cfg;
        Timestamp, Mode, AuthMode, Source, Sourced<()>, SettingsReport, SessionLimitsReport,
        ServerLimitsReport, Access, EgressRules, Network, State, Walltime, ByteSize, PortablePath, FsGrant,
        LimitEnforcement, Limits, CagePolicy, Cage, LimitMechanism, CgroupLimits, GrantSummary,
        CageSummary,
        Workspace, Plugin, project::Task, AgentSpec, Project, UnknownAlias, AgentView, TaskView,
        ProjectView, ProjectList, LoadProject, Unloaded,
        SessionState, EndReason, SessionsOnStop, SessionKind, CageState, AgentCli, SettingKind, AdapterSetting, NotHonoured,
        AgentAdapter, SessionOrigin, ShareAccess, SessionInfo,
        SessionList, ShareRequest,
        WorkspaceChoice, StartSession, SignalName, SignalRequest, ResizeRequest, InputRequest, InputWritten,
        TranscriptParams,
        ScreenSize, ClientControl, ServerControl, EgressDecision, EgressVia, EgressConnection,
        AgentStatus, AgentSignal, AgentState, PushKeys, PushSubscribe, PushSubscriptionView,
        PushInfo, PushRevoked, PushMessage, BarKey, KeyBarChoice,
        HookDecision, ApprovalDefault, Approval, ApprovalList, ApprovalVerdict, ApprovalAnswer,
        ApprovalOutcome,
        DaemonEvent,
        AuditRow, AuditPage, AuditParams,
        WorktreeState, WorktreeRun, WorktreeSnapshot, WorktreeList, WorktreeCommit, WorktreeFile,
        WorktreeReview, WorktreeLoss, RemoveWorktreeParams, WorktreeRemoved, RestoreWorktree, MergeStrategy,
        MergeWorktree, WorktreeMerged, BranchDeleted, UnknownWorktree, UnknownWorktreeList,
        ErrorCode, ErrorBody, ErrorEnvelope,
        Warning, Paths, BwrapInfo, CgroupSupport, SandboxStatus, ProviderKey, LocalSummary,
        SessionsSummary, Status, Identity, Me, LaunchUrl, SignedOut, Revoked, Health, VersionInfo,
    );
    let mut out = String::from(
        "// Generated from the Rust wire types in crates/kaged-api; do not edit.\n\
         // Regenerate with `KAGED_UPDATE_GENERATED=1 cargo test -p kaged-api`.\n\n",
    );
    for d in decls {
        out.push_str(&d);
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// Checks a committed generated file against what the code generates now. With
/// `KAGED_UPDATE_GENERATED` set it rewrites the file instead; otherwise a stale file is an
/// error that says how to regenerate it. Shared by the TypeScript and OpenAPI checks.
pub fn check_generated(path: &std::path::Path, fresh: &str, package: &str) -> Result<(), String> {
    if std::env::var_os("KAGED_UPDATE_GENERATED").is_some() {
        return std::fs::write(path, fresh).map_err(|e| format!("{}: {e}", path.display()));
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed == fresh {
        Ok(())
    } else {
        Err(format!(
            "{} is stale; run `KAGED_UPDATE_GENERATED=1 cargo test -p {package}` and commit it",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::PathBuf;

    #[test]
    fn generated_typescript_is_current() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(super::TYPESCRIPT_FILE);
        super::check_generated(&path, &super::typescript(), "kaged-api").unwrap();
    }
}
