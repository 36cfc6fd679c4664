//! On-disk layout: `sessions_dir/<id>/meta.json` (replaced atomically) and
//! `sessions_dir/<id>/transcript` (every output byte, appended). Files are 0600 and directories
//! 0700 because transcripts hold whatever the operator typed and saw, secrets included.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{SessionError, SessionInfo};

pub(crate) const META: &str = "meta.json";
pub(crate) const TRANSCRIPT: &str = "transcript";

/// 128 random bits from the OS as lowercase hex: URL-safe and not guessable from other ids.
pub fn new_id() -> Result<String, SessionError> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| SessionError::Io {
        action: "reading random bytes for a session id from",
        path: PathBuf::from("the OS random source"),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Ids we created are hex; anything else in the directory is not ours to load.
pub(crate) fn is_valid_id(name: &str) -> bool {
    name.len() == 32
        && name
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Writes `meta.json` through a temporary file and a rename, so a crash leaves either the old
/// or the new version, never half of one.
pub(crate) fn write_meta(dir: &Path, info: &SessionInfo) -> Result<(), SessionError> {
    write_meta_inner(dir, info, false)
}

/// The last word on a session that has ended: its transcript, then its `meta.json`, reach the
/// disk before the end is announced, so a finished session survives a power cut as finished
/// and complete. Running sessions skip this: an fsync per batch would sit on the hot path.
/// A transcript that cannot be synced is reported and the end is still recorded.
pub(crate) fn write_final(dir: &Path, info: &SessionInfo) -> Result<(), SessionError> {
    let transcript = dir.join(TRANSCRIPT);
    let synced = OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nofollow())
        .open(&transcript)
        .and_then(|f| f.sync_data());
    if let Err(e) = synced {
        tracing::warn!(path = %transcript.display(), error = %e, "could not sync the transcript");
    }
    write_meta_inner(dir, info, true)
}

fn write_meta_inner(dir: &Path, info: &SessionInfo, durable: bool) -> Result<(), SessionError> {
    let path = dir.join(META);
    let tmp = dir.join(".meta.json.tmp");
    let io = |action, source| SessionError::Io {
        action,
        path: path.clone(),
        source,
    };
    let json = serde_json::to_vec_pretty(info).map_err(|e| io("serialising", e.into()))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("writing", e))?;
    file.write_all(&json).map_err(|e| io("writing", e))?;
    if durable {
        file.sync_all().map_err(|e| io("syncing", e))?;
    }
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| io("replacing", e))?;
    if durable {
        // The rename itself is durable only once the directory is.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("syncing the directory of", e))?;
    }
    Ok(())
}

pub(crate) fn read_meta(dir: &Path) -> Result<SessionInfo, SessionError> {
    let path = dir.join(META);
    let parse_err = |e: serde_json::Error| SessionError::Io {
        action: "parsing",
        path: path.clone(),
        source: e.into(),
    };
    let raw = fs::read(&path).map_err(|source| SessionError::Io {
        action: "reading",
        path: path.clone(),
        source,
    })?;
    let mut value: serde_json::Value = serde_json::from_slice(&raw).map_err(parse_err)?;
    upgrade_legacy_meta(&mut value);
    upgrade_enforced_limits(&mut value);
    serde_json::from_value(value).map_err(parse_err)
}

/// Before delegated cgroups, `systemd-run --user --scope` was the only way limits were
/// enforced, and the summary said just `{"status": "enforced"}`.
fn upgrade_enforced_limits(v: &mut serde_json::Value) {
    if let Some(obj) = v
        .pointer_mut("/origin/cage/summary/cgroup_limits")
        .and_then(|l| l.as_object_mut())
        && obj.get("status").and_then(|s| s.as_str()) == Some("enforced")
        && !obj.contains_key("via")
    {
        obj.insert("via".into(), "systemd_scope".into());
        obj.insert("cgroup".into(), serde_json::Value::Null);
    }
}

/// Sessions recorded before `origin` existed kept a free-form `meta` object (`kind`, `name`,
/// `command`, `cage: {caged, summary|reason}`) and spelled two limits `walltime_secs` and
/// `memory_bytes`. Rewrites that shape in place so past sessions stay listed.
fn upgrade_legacy_meta(v: &mut serde_json::Value) {
    use serde_json::{Value, json};
    let Some(obj) = v.as_object_mut() else { return };
    if obj.contains_key("origin") {
        return;
    }
    let Some(mut meta) = obj.remove("meta") else {
        return;
    };
    let cage = match meta["cage"]["caged"].as_bool() {
        Some(true) => {
            let mut summary = meta["cage"]["summary"].take();
            if let Some(limits) = summary["limits"].as_object_mut() {
                for (old, new) in [("walltime_secs", "walltime"), ("memory_bytes", "memory")] {
                    if let Some(x) = limits.remove(old) {
                        limits.insert(new.to_owned(), x);
                    }
                }
            }
            json!({"state": "caged", "summary": summary})
        }
        _ if meta["cage"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no-sandbox")) =>
        {
            json!({"state": "no_sandbox"})
        }
        _ => json!({"state": "disabled_by_project"}),
    };
    let command = match meta["command"].take() {
        Value::Null => obj.get("argv").cloned().unwrap_or(Value::Array(Vec::new())),
        c => c,
    };
    let kind = match meta["kind"].as_str() {
        Some(k @ ("shell" | "command" | "agent" | "task")) => k.to_owned(),
        _ => "command".to_owned(),
    };
    obj.insert(
        "origin".to_owned(),
        json!({"kind": kind, "name": meta["name"].take(), "command": command, "cage": cage}),
    );
}

/// Opened for each batch and closed after it, so an idle session holds no transcript fd.
pub(crate) fn open_transcript_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc_o_nofollow())
        .open(path)
}

pub(crate) fn create_transcript(path: &Path) -> Result<(), SessionError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|source| SessionError::Io {
            action: "creating the transcript",
            path: path.to_path_buf(),
            source,
        })
}

fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::upgrade_enforced_limits;

    #[test]
    fn limits_enforced_before_delegation_read_as_a_systemd_scope() {
        let caged = |limits| json!({"origin": {"cage": {"state": "caged", "summary": {"cgroup_limits": limits}}}});
        let mut old = caged(json!({"status": "enforced"}));
        upgrade_enforced_limits(&mut old);
        assert_eq!(
            old,
            caged(json!({"status": "enforced", "via": "systemd_scope", "cgroup": null}))
        );
        for untouched in [
            caged(json!({"status": "not_enforced", "reason": "r"})),
            caged(json!({"status": "enforced", "via": "delegated_cgroup", "cgroup": "/c"})),
            json!({"origin": {"cage": {"state": "no_sandbox"}}}),
        ] {
            let mut v = untouched.clone();
            upgrade_enforced_limits(&mut v);
            assert_eq!(v, untouched);
        }
    }
}
