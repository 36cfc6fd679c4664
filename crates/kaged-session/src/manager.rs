//! The session table: spawning under limits, lookup, past sessions, events and shutdown.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use kaged_api::Timestamp;

use crate::holder::{self, ConnectError};
use crate::persist::{self, TRANSCRIPT};
use crate::pty::Spawner;
use crate::session::{Adoption, NewSession, Session};
use crate::{
    EndReason, LimitKind, ManagerConfig, SessionError, SessionInfo, SessionState, SpawnSpec,
};

/// Owns every session of the daemon. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: ManagerConfig,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    shutting_down: AtomicBool,
    spawner: Spawner,
    recovered: Mutex<Vec<Recovered>>,
}

/// What opening the manager found of a session that was running when the last daemon let go
/// of it (or died), with holders configured.
#[derive(Debug, Clone)]
pub enum Recovered {
    /// Its holder answered: the session runs on under this daemon, same id, same transcript,
    /// same offsets.
    Adopted(SessionInfo),
    /// Its holder was gone: the session ended while no daemon ran. `exit_recorded` says
    /// whether the holder recorded the exit status (else the reason is `holder_lost`).
    Ended {
        info: SessionInfo,
        exit_recorded: bool,
    },
}

impl SessionManager {
    /// Opens (creating, 0700) the sessions directory and loads past sessions. Sessions that
    /// were running when the previous daemon stopped are adopted from their holders (with
    /// holders configured, see [`SessionManager::take_recovered`]); a session whose holder is
    /// gone is recorded as ended, with the exit status the holder recorded or reason
    /// `holder_lost`. Without holders they are recorded as exited with reason
    /// `daemon_restart`. Directories that do not parse are skipped with a warning. Must be
    /// called inside a tokio runtime.
    ///
    /// It also raises the soft open-file limit to the hard one: every live session holds two
    /// descriptors (its PTY master and a pidfd), and the usual soft limit of 1024 would cap
    /// the daemon at a few hundred sessions.
    pub fn open(cfg: ManagerConfig) -> Result<Self, SessionError> {
        kaged_deploy::ensure_private_dir(&cfg.sessions_dir)?;
        raise_nofile_limit();
        let mut sessions = HashMap::new();
        let mut recovered = Vec::new();
        let entries = std::fs::read_dir(&cfg.sessions_dir).map_err(|source| SessionError::Io {
            action: "listing",
            path: cfg.sessions_dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().filter(|n| persist::is_valid_id(n)) else {
                continue;
            };
            let dir = entry.path();
            if let Some(holders) = &cfg.holder {
                match recover(&cfg, holders, &dir, id) {
                    Ok(None) => {}
                    Ok(Some((session, found))) => {
                        sessions.insert(id.to_owned(), session);
                        recovered.push(found);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "could not take over a running session; leaving it to its holder");
                        continue;
                    }
                }
            }
            match load_past(&dir, id) {
                Ok(info) => {
                    let id = info.id.clone();
                    sessions.insert(id, Session::past(info, dir, cfg.scrollback_bytes));
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "skipping an unreadable past session");
                }
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                sessions: Mutex::new(sessions),
                shutting_down: AtomicBool::new(false),
                spawner: Spawner::new().map_err(SessionError::Pty)?,
                recovered: Mutex::new(recovered),
            }),
        })
    }

    /// Starts a session, unless a running-session limit is reached
    /// ([`SessionError::Limit`], HTTP 429). Must be called inside a tokio runtime.
    pub fn spawn(&self, spec: SpawnSpec) -> Result<Arc<Session>, SessionError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(SessionError::ShuttingDown);
        }
        if spec.argv.is_empty() {
            return Err(SessionError::EmptyArgv);
        }
        let cfg = &self.inner.cfg;
        // The lock is held through the fork so that two concurrent spawns cannot both take
        // the last slot. A spawn takes about a millisecond.
        let mut sessions = self.sessions();
        let (mut per_project, mut per_actor) = (0, 0);
        for s in sessions.values() {
            if s.state() == SessionState::Exited {
                continue;
            }
            per_project += usize::from(s.project_id() == spec.project_id);
            per_actor += usize::from(s.actor() == spec.actor);
        }
        if per_project >= cfg.max_per_project {
            return Err(SessionError::Limit {
                kind: LimitKind::PerProject,
                subject: format!("project `{}`", spec.project_id),
                max: cfg.max_per_project,
            });
        }
        if per_actor >= cfg.max_per_operator {
            return Err(SessionError::Limit {
                kind: LimitKind::PerOperator,
                subject: format!("operator `{}`", spec.actor),
                max: cfg.max_per_operator,
            });
        }
        let id = match spec.id.clone() {
            Some(id) if persist::is_valid_id(&id) && !sessions.contains_key(&id) => id,
            Some(id) => return Err(SessionError::BadId { id }),
            None => loop {
                let id = persist::new_id()?;
                if !sessions.contains_key(&id) {
                    break id;
                }
            },
        };
        let session = Session::start(
            NewSession {
                dir: cfg.sessions_dir.join(&id),
                id: id.clone(),
                scrollback_bytes: cfg.scrollback_bytes,
                kill_grace: cfg.kill_grace,
                spawner: &self.inner.spawner,
                holder: cfg.holder.as_ref(),
            },
            spec,
        )?;
        sessions.insert(id, session.clone());
        Ok(session)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions().get(id).cloned()
    }

    /// Every session (live and past), oldest first, optionally of one project.
    pub fn list(&self, project_id: Option<&str>) -> Vec<SessionInfo> {
        let matching: Vec<Arc<Session>> = self
            .sessions()
            .values()
            .filter(|s| project_id.is_none_or(|p| s.project_id() == p))
            .cloned()
            .collect();
        let mut infos: Vec<SessionInfo> = matching.iter().map(|s| s.info()).collect();
        infos.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        infos
    }

    /// Refuses new sessions, terminates the running ones (with the usual escalation, reason
    /// `shutdown`) and returns once every transcript and metadata file is written.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let live: Vec<Arc<Session>> = self
            .sessions()
            .values()
            .filter(|s| s.state() != SessionState::Exited)
            .cloned()
            .collect();
        for s in &live {
            s.terminate_for(EndReason::Shutdown);
        }
        for s in &live {
            s.wait().await;
        }
    }

    /// What [`SessionManager::open`] found of sessions that ran when the last daemon stopped
    /// (adopted, or ended while no daemon ran), once: the daemon audits it.
    pub fn take_recovered(&self) -> Vec<Recovered> {
        std::mem::take(
            &mut self
                .inner
                .recovered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// A graceful stop that keeps sessions: refuses new sessions, and leaves every running
    /// session to its holder with its transcript flushed and recorded, for the next daemon to
    /// adopt. Sessions without a holder cannot outlive the daemon and are ended as in
    /// [`SessionManager::shutdown`].
    pub async fn detach(&self) {
        if self.inner.cfg.holder.is_none() {
            return self.shutdown().await;
        }
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let live: Vec<Arc<Session>> = self
            .sessions()
            .values()
            .filter(|s| s.state() != SessionState::Exited)
            .cloned()
            .collect();
        for s in &live {
            s.detach().await;
        }
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        // Critical sections only insert, look up and clone, so a poisoned map is still whole.
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A session that was running when the last daemon stopped: adopted from its holder, or
/// recorded as ended when the holder is gone. `None`: not running, load it as past.
fn recover(
    cfg: &ManagerConfig,
    holders: &crate::HolderConfig,
    dir: &Path,
    id: &str,
) -> Result<Option<(Arc<Session>, Recovered)>, SessionError> {
    let info = persist::read_meta(dir)?;
    if info.state == SessionState::Exited || info.id != id {
        return Ok(None);
    }
    let socket = holders.socket(id);
    match holder::Link::connect(&socket, id) {
        Ok((link, hello, master)) => {
            let session = Session::adopt(Adoption {
                info,
                dir: dir.to_path_buf(),
                scrollback_bytes: cfg.scrollback_bytes,
                kill_grace: cfg.kill_grace,
                link,
                hello,
                master,
            })?;
            let found = Recovered::Adopted(session.info());
            Ok(Some((session, found)))
        }
        Err(ConnectError::Gone(why)) => {
            tracing::info!(session = id, socket = %socket.display(), reason = %why, "the session's holder is gone; the session ended while no daemon ran");
            let record = holder::read_exit_record(dir);
            let mut info = load_past(dir, id)?;
            let exit_recorded = record.is_some();
            match record {
                Some(rec) => {
                    info.exit_code = rec.code;
                    info.signal = rec.signal;
                    info.end_reason = Some(EndReason::ProcessExited);
                    info.ended_at = Some(rec.ended_at);
                }
                None => info.end_reason = Some(EndReason::HolderLost),
            }
            persist::write_meta(dir, &info)?;
            let session = Session::past(info.clone(), dir.to_path_buf(), cfg.scrollback_bytes);
            Ok(Some((
                session,
                Recovered::Ended {
                    info,
                    exit_recorded,
                },
            )))
        }
        Err(ConnectError::Refused(why)) => Err(SessionError::Io {
            action: "adopting (the holder refused)",
            path: socket,
            source: std::io::Error::other(why),
        }),
    }
}

/// Loads a past session, repairing what a crash left behind: the state, the end time (taken
/// from the transcript's last write) and the byte count (what the transcript really holds).
fn load_past(dir: &Path, id: &str) -> Result<SessionInfo, SessionError> {
    let mut info = persist::read_meta(dir)?;
    if info.id != id {
        return Err(SessionError::Io {
            action: "loading (the id inside does not match the directory name)",
            path: dir.join(persist::META),
            source: std::io::ErrorKind::InvalidData.into(),
        });
    }
    let transcript = std::fs::metadata(dir.join(TRANSCRIPT)).ok();
    let on_disk = transcript.as_ref().map_or(0, |m| m.len());
    let mut changed = false;
    if info.state != SessionState::Exited {
        let last_write = transcript
            .and_then(|m| m.modified().ok())
            .unwrap_or_else(SystemTime::now);
        info.state = SessionState::Exited;
        info.end_reason = Some(EndReason::DaemonRestart);
        info.ended_at = Some(Timestamp::from_system(last_write));
        // The last batch may not have reached the disk.
        info.transcript_complete = false;
        changed = true;
    }
    if on_disk != info.bytes_total {
        info.transcript_complete = false;
        info.bytes_total = on_disk;
        changed = true;
    }
    if changed {
        persist::write_meta(dir, &info)?;
    }
    Ok(info)
}

fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, error = %e, "could not raise the open-file limit; few sessions will fit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the open-file limit"),
    }
}
