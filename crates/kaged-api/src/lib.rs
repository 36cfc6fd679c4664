//! `api` owns kaged's wire types, each defined once: the project file's model (ADR-0011,
//! design §9) and cage policy (§7), the HTTP API's requests and responses (§5), the PTY and
//! events protocols (§6) and the error envelope. The daemon, the handlers, the CLI, the tests
//! and the bench all speak these types; the UI's TypeScript (`web/src/api.gen.ts`) and the
//! OpenAPI document are generated from them, so nothing on either side reads JSON by key.
//!
//! It holds values and their validation rules, never behaviour: no I/O, no clocks beyond
//! [`Timestamp::now`], no knowledge of HTTP.

pub mod agent;
pub mod audit;
pub mod cage;
pub mod egress;
pub mod error;
pub mod event;
pub mod generated;
pub mod hook;
pub mod project;
pub mod pty;
pub mod session;
pub mod settings;
pub mod status;
mod timestamp;
pub mod worktree;

pub use agent::{
    AgentSignal, AgentState, AgentStatus, BarKey, KeyBarChoice, PushInfo, PushKeys, PushMessage,
    PushRevoked, PushSubscribe, PushSubscriptionView,
};
pub use audit::{AuditPage, AuditParams, AuditRow};
pub use cage::{
    Access, ByteSize, Cage, CagePolicy, CageSummary, CgroupLimits, DEFAULT_CAGE_ENV,
    ENV_NAME_PATTERN, EnvNameError, FsGrant, GrantSummary, LimitEnforcement, LimitMechanism,
    Limits, Network, PathError, PathScheme, PortablePath, State, Walltime, check_env_name,
};
pub use egress::{
    EgressConnection, EgressDecision, EgressRules, EgressVia, HostMatch, HostPattern,
    HostPatternError, normalise_host, split_host_port,
};
pub use error::{ErrorBody, ErrorCode, ErrorEnvelope};
pub use event::DaemonEvent;
pub use hook::{
    APPROVAL_NOTE_MAX, Approval, ApprovalAnswer, ApprovalDefault, ApprovalList, ApprovalOutcome,
    ApprovalVerdict, HookDecision,
};
pub use project::{
    AgentSpec, AgentView, LoadProject, Plugin, Project, ProjectList, ProjectView, TaskView,
    UnknownAlias, Unloaded,
};
pub use pty::{ClientControl, INPUT_SEQ_BYTES, ScreenSize, ServerControl, check_client_id};
pub use session::{
    AdapterSetting, AgentAdapter, AgentCli, CageState, EndReason, InputRequest, InputWritten,
    NotHonoured, ResizeRequest, SessionInfo, SessionKind, SessionList, SessionOrigin, SessionState,
    SessionsOnStop, SettingKind, ShareAccess, ShareRequest, SignalName, SignalRequest,
    StartSession, TranscriptParams,
};
pub use settings::{
    AuthMode, Mode, ServerLimitsReport, SessionLimitsReport, SettingsReport, Source, Sourced,
    UnknownValue,
};
pub use status::{
    BwrapInfo, CgroupSupport, Health, Identity, LaunchUrl, LocalSummary, Me, Paths, ProviderKey,
    Revoked, SandboxStatus, SessionsSummary, SignedOut, Status, VersionInfo, Warning,
};
pub use timestamp::Timestamp;
pub use worktree::{
    BranchDeleted, MergeStrategy, MergeWorktree, RemoveWorktreeParams, RestoreWorktree,
    UnknownWorktree, UnknownWorktreeList, Workspace, WorkspaceChoice, WorktreeCommit, WorktreeFile,
    WorktreeList, WorktreeLoss, WorktreeMerged, WorktreeRemoved, WorktreeReview, WorktreeRun,
    WorktreeSnapshot, WorktreeState,
};
