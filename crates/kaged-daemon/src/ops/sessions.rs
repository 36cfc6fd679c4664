//! Sessions: start one in a project, list, inspect, end, signal, resize, type into, attach.
//! A session's start and end rows and events are written here: the start by
//! [`Daemon::start_session`], the end by the watcher it leaves behind.

use std::sync::Arc;

use kaged_api::{
    CageState, CgroupLimits, DaemonEvent, Identity, InputRequest, InputWritten, ResizeRequest,
    ScreenSize, SessionInfo, SessionKind, SessionList, SessionState, ShareRequest, SignalName,
    SignalRequest, StartSession, TranscriptParams,
};
use kaged_api::{EgressConnection, EgressDecision, EgressRules, Network};
use kaged_auth::AuthMode;
use kaged_egress::{CageIds, Gateway, Policy};
use kaged_session::{InputOutcome, Recovered, Session, Signal, Viewer};
use kaged_store::{AuditEvent, EventType};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::Daemon;
use crate::error::{OpError, OpResult};
use crate::launcher;
use crate::owners::Need;

/// Input sent through the API in one request; a terminal takes keystrokes, not files.
const MAX_INPUT: usize = 64 * 1024;

/// Transcript bytes served per request unless the caller asks for fewer.
const TRANSCRIPT_PAGE: u32 = 1 << 20;
const TRANSCRIPT_MAX: u32 = 8 << 20;

/// A slice of a session's transcript.
pub struct TranscriptSlice {
    /// Where `bytes` start.
    pub offset: u64,
    pub bytes: bytes::Bytes,
    /// The session's output so far; bytes past what the transcript holds yet are still in
    /// the scrollback (at most one batch behind).
    pub bytes_total: u64,
}

impl Daemon {
    /// Every session of every project the caller may see, oldest first.
    pub fn all_sessions(&self, who: &Identity) -> SessionList {
        self.visible(who, self.inner.sessions.list(None))
    }

    /// Part of a session's transcript, from disk: every byte the session wrote, also those the
    /// scrollback no longer holds.
    pub async fn transcript(
        &self,
        who: &Identity,
        id: &str,
        params: TranscriptParams,
    ) -> OpResult<TranscriptSlice> {
        let limit = params.limit.unwrap_or(TRANSCRIPT_PAGE);
        if !(1..=TRANSCRIPT_MAX).contains(&limit) {
            return Err(OpError::Invalid(format!(
                "limit={limit} is out of range; use 1 to {TRANSCRIPT_MAX}"
            )));
        }
        let s = self.find(who, id, Need::See)?;
        let offset = params.offset.unwrap_or(0);
        let bytes = s.read_transcript(offset, limit as usize).await?;
        Ok(TranscriptSlice {
            offset,
            bytes,
            bytes_total: s.info().bytes_total,
        })
    }

    /// The sessions of a project, oldest first; a project that was unloaded still lists its
    /// past sessions.
    pub fn sessions(&self, who: &Identity, project_id: &str) -> OpResult<SessionList> {
        let sessions = self.inner.sessions.list(Some(project_id));
        if sessions.is_empty() && self.inner.projects.get(project_id).is_none() {
            return Err(OpError::not_found("project", project_id));
        }
        Ok(self.visible(who, sessions))
    }

    pub fn session(&self, who: &Identity, id: &str) -> OpResult<SessionInfo> {
        let s = self.find(who, id, Need::See)?;
        Ok(self.info(&s))
    }

    /// Shares a session with another operator, or takes the share back (its owner or an
    /// admin only). Audited with who shared what with whom.
    pub async fn share_session(
        &self,
        who: &Identity,
        id: &str,
        req: ShareRequest,
    ) -> OpResult<SessionInfo> {
        let s = self.find(who, id, Need::Share)?;
        if req.user.trim().is_empty() || req.user == s.actor() {
            return Err(OpError::Invalid(format!(
                "share with another operator's user id, not {:?}",
                req.user
            )));
        }
        self.inner.owners.set(s.id(), &req.user, req.access);
        let data = json!({"user": req.user, "access": req.access});
        self.audit_session(EventType::SessionShared, who, &s, data)
            .await;
        Ok(self.info(&s))
    }

    pub async fn start_session(
        &self,
        actor: &Identity,
        project_id: &str,
        req: StartSession,
    ) -> OpResult<SessionInfo> {
        let i = &self.inner;
        let project = i
            .projects
            .get(project_id)
            .ok_or_else(|| OpError::not_found("project", project_id))?;
        let workspace = super::worktrees::workspace_plan(&project, &req)?;
        let mut plan = launcher::plan(&project, req, &i.host)?;
        if plan.cage.is_none() {
            self.may_run_uncaged(actor)?;
        }
        // Named before the spawn: a filtered cage's gateway is named after the session, so that
        // a daemon adopting the session after a restart finds its socket directory again, and
        // a fresh worktree after its first run.
        let id = kaged_session::new_session_id()?;
        let gateway = match plan.cage.as_ref().map(|c| &c.network) {
            Some(Network::Filtered(rules)) => {
                let policy = self.egress_policy(&plan.cage_of, rules)?;
                let gateway = self.egress_gateway(&id)?;
                Some((gateway, policy))
            }
            _ => None,
        };
        let socket_dir = gateway.as_ref().map(|_| self.egress_dir(&id));
        // A caged declared agent gets its agent socket, when kaged's binary can be its helper.
        let hooks = match (&plan.agent, &plan.cage, &i.host.relay_exe) {
            (Some(_), Some(_), Ok(_)) => Some(self.bind_agent_socket(&id)?),
            _ => None,
        };
        let hook_dir = hooks.as_ref().map(|_| self.agent_dir(&id));
        // The providers' base URLs on the relay, and a dummy key that opens nothing.
        let dummy = kaged_egress::dummy_key();
        let mut egress_env = match &gateway {
            Some(_) => i.providers.cage_env(kaged_sandbox::EGRESS_PORT, &dummy),
            None => Vec::new(),
        };
        let unbind = || {
            for dir in socket_dir.iter().chain(&hook_dir) {
                let _ = std::fs::remove_dir_all(dir);
            }
        };
        let place = match workspace {
            Some(w) => Some(self.enter_worktree(actor, &project, w, &id).await),
            None => None,
        }
        .transpose()
        .inspect_err(|_| unbind())?;
        if let Some(spec) = plan.agent.clone() {
            // In a worktree, the adapter reads the agent's files there, as its cage will.
            let seen = place.as_ref().map_or(&project, |p| &p.project);
            let located = match self.locate_program(&plan, seen) {
                Ok(located) => located,
                Err(e) => {
                    // Refused before anything ran: nothing of the start is left behind.
                    unbind();
                    if let Some(p) = place.filter(|p| p.fresh) {
                        self.abandon_worktree(actor, &project.id, &p.run).await;
                    }
                    return Err(e);
                }
            };
            if let (Some(l), Some(program)) = (&located, plan.argv.first_mut()) {
                *program = l.bind().in_cage();
            }
            let mut adapted = self.adapt_agent(&spec, &plan, seen, &dummy, hooks.is_some());
            if let Some(l) = &located {
                adapted.details.settings.insert(0, program_setting(l));
            }
            plan.program = located;
            // The adapter's value wins over the gateway's generic one of the same name; either
            // replaces whatever the policy allowlists, so no host value gets in this way.
            for (name, value) in &adapted.env {
                if let Some(generic) = egress_env.iter_mut().find(|(n, _)| n == name) {
                    generic.1 = value.clone();
                }
            }
            plan.adapted = Some(adapted);
        }
        let spawned = self.spawn_in(
            &plan,
            place.as_ref(),
            &project,
            actor,
            &id,
            socket_dir.as_deref(),
            &egress_env,
            hook_dir.as_deref(),
        );
        let (session, mountpoints, cgroup) = match spawned {
            Ok(s) => s,
            Err(e) => {
                unbind();
                if let Some(p) = place.filter(|p| p.fresh) {
                    self.abandon_worktree(actor, &project.id, &p.run).await;
                }
                return Err(e);
            }
        };
        let info = session.info();
        let stop_gateway = CancellationToken::new();
        if let Some((gateway, policy)) = gateway {
            self.serve_egress(gateway, policy, &info, stop_gateway.clone());
        }
        if let (Some(listener), Some(agent)) = (hooks, agent_name(&info)) {
            self.serve_hooks(listener, &info, agent, stop_gateway.clone());
        }
        let info = self.announce_started(info).await;
        self.watch_exit(session, mountpoints, cgroup, Some(stop_gateway));
        Ok(info)
    }

    /// The start's audit row and events.
    async fn announce_started(&self, info: SessionInfo) -> SessionInfo {
        self.audit_started(&info).await;
        let info = self.inner.owners.with_shares(info);
        self.publish(DaemonEvent::SessionStarted {
            session: info.clone(),
        });
        if let Some(agent) = agent_name(&info) {
            self.publish(DaemonEvent::RunStarted {
                session: info.clone(),
                agent,
            });
        }
        info
    }

    /// Compiles the cage (in the worktree, when there is one) and spawns it. Held from
    /// compiling the cage until it runs, and while a finished cage's stand-ins are removed,
    /// so a removal never races a new cage of the same project.
    #[allow(clippy::too_many_arguments)]
    fn spawn_in(
        &self,
        plan: &launcher::Plan,
        place: Option<&super::worktrees::Place>,
        project: &crate::LoadedProject,
        actor: &Identity,
        id: &str,
        socket_dir: Option<&std::path::Path>,
        egress_env: &[(String, String)],
        hook_dir: Option<&std::path::Path>,
    ) -> OpResult<(
        Arc<Session>,
        Vec<std::path::PathBuf>,
        Option<kaged_sandbox::CageCgroup>,
    )> {
        let i = &self.inner;
        let worktree_facts;
        let (project, facts) = match place {
            Some(p) => {
                let mut facts = i.host.clone();
                facts.deny = crate::worktrees::deny_around(&facts.deny, &p.project.root);
                worktree_facts = facts;
                (&p.project, &worktree_facts)
            }
            None => (project, &i.host),
        };
        let _cages = i.cage_setup.lock().unwrap_or_else(|p| p.into_inner());
        let mut launch = launcher::compile(
            plan,
            project,
            facts,
            &actor.user_id,
            socket_dir,
            egress_env,
            hook_dir,
        )?;
        launch.spec.id = Some(id.to_owned());
        launch.spec.origin.worktree = place.map(|p| p.run.clone());
        // On a failed spawn `launch.cgroup` is dropped, which removes the empty cgroup.
        let session = i.sessions.spawn(launch.spec)?;
        if let (Some(p), Ok(hub)) = (place, self.worktree_hub()) {
            hub.enter(&p.run, id);
        }
        Ok((session, launch.mountpoints, launch.cgroup))
    }

    /// Leaves a watcher that cleans up after the session's cage and records its end. A
    /// session the daemon lets go of on a graceful stop (kept by its holder) has not ended:
    /// the watcher then just stops.
    fn watch_exit(
        &self,
        session: Arc<Session>,
        mountpoints: Vec<std::path::PathBuf>,
        cgroup: Option<kaged_sandbox::CageCgroup>,
        stop_gateway: Option<CancellationToken>,
    ) {
        let daemon = self.clone();
        self.inner.tasks.spawn(async move {
            let agent = agent_name(&session.info());
            let last_line = match &agent {
                Some(agent) => daemon.follow_agent(&session, agent).await,
                None => String::new(),
            };
            let ended = session.wait().await;
            // The gateway lives in this daemon: it ends with the cage, or with a graceful
            // stop that leaves the session to its holder.
            if let Some(stop) = stop_gateway {
                stop.cancel();
            }
            if session.is_detached() {
                return;
            }
            daemon.remove_egress_dir(&ended.id);
            daemon.remove_agent_dir(&ended.id);
            daemon.remove_stand_ins(&ended.project_id, &mountpoints);
            if let Some(cgroup) = cgroup {
                remove_cgroup(cgroup, &ended.id).await;
            }
            daemon.worktree_session_ended(&ended).await;
            daemon.on_exit(ended, &last_line).await;
        });
    }

    /// Audits what the session manager found of sessions that ran when the last daemon
    /// stopped: `session.adopted` for each it took over from its holder (and watches it like
    /// one it started), `session.ended` with the reason for each whose holder was gone.
    pub(crate) async fn recover_sessions(&self) {
        let i = &self.inner;
        for found in i.sessions.take_recovered() {
            match found {
                Recovered::Adopted(info) => {
                    let data = json!({"pid": info.pid, "bytes_total": info.bytes_total,
                                      "transcript_complete": info.transcript_complete,
                                      "adopted_at": info.adopted_at});
                    i.audit
                        .record(
                            AuditEvent::new(EventType::SessionAdopted, Some(&info.actor), data)
                                .project(&info.project_id)
                                .session(&info.id),
                        )
                        .await;
                    tracing::info!(session = %info.id, pid = ?info.pid, "adopted a running session from its holder");
                    if let (Some(run), Ok(hub)) = (&info.origin.worktree, self.worktree_hub()) {
                        hub.enter(run, &info.id);
                    }
                    let Some(session) = i.sessions.get(&info.id) else {
                        continue;
                    };
                    // The cage's own cgroup, if the daemon that started it made one.
                    let cgroup = match &info.origin.cage {
                        CageState::Caged { summary } => match &summary.cgroup_limits {
                            CgroupLimits::Enforced {
                                cgroup: Some(path), ..
                            } => Some(kaged_sandbox::CageCgroup::existing(path.clone())),
                            _ => None,
                        },
                        _ => None,
                    };
                    let stop_gateway = self.readopt_gateway(&info);
                    let stop_gateway = self.readopt_hooks(&info, stop_gateway);
                    self.watch_exit(session, Vec::new(), cgroup, stop_gateway);
                }
                Recovered::Ended {
                    info,
                    exit_recorded,
                } => {
                    let data = json!({"end_reason": info.end_reason, "exit_code": info.exit_code,
                                      "signal": info.signal, "exit_recorded": exit_recorded,
                                      "bytes_total": info.bytes_total,
                                      "transcript_complete": info.transcript_complete});
                    i.audit
                        .record(
                            AuditEvent::new(EventType::SessionEnded, Some(&info.actor), data)
                                .project(&info.project_id)
                                .session(&info.id),
                        )
                        .await;
                    tracing::warn!(session = %info.id, reason = ?info.end_reason, "a session ended while no daemon ran");
                    self.worktree_session_ended(&info).await;
                    self.remove_egress_dir(&info.id);
                    self.remove_agent_dir(&info.id);
                }
            }
        }
    }

    /// Ends a session: SIGHUP, then SIGTERM, then SIGKILL to its process group.
    pub async fn end_session(&self, actor: &Identity, id: &str) -> OpResult<SessionInfo> {
        let s = self.find(actor, id, Need::Drive)?;
        if s.state() == SessionState::Exited {
            return Err(OpError::Conflict(format!(
                "session {id} has already exited"
            )));
        }
        s.terminate();
        self.audit_session(EventType::SessionTerminated, actor, &s, json!({}))
            .await;
        Ok(self.info(&s))
    }

    pub async fn signal_session(
        &self,
        actor: &Identity,
        id: &str,
        req: SignalRequest,
    ) -> OpResult<SessionInfo> {
        let s = self.find(actor, id, Need::Drive)?;
        let sig = signal(req.signal);
        s.signal(sig)?;
        let data = json!({"signal": sig.as_str()});
        self.audit_session(EventType::SessionSignalled, actor, &s, data)
            .await;
        Ok(self.info(&s))
    }

    pub fn resize_session(
        &self,
        who: &Identity,
        id: &str,
        req: ResizeRequest,
    ) -> OpResult<SessionInfo> {
        launcher::check_size(req.cols, req.rows)?;
        let s = self.find(who, id, Need::Drive)?;
        s.resize(req.cols, req.rows)?;
        Ok(self.info(&s))
    }

    pub async fn send_input(
        &self,
        who: &Identity,
        id: &str,
        req: InputRequest,
    ) -> OpResult<InputWritten> {
        if req.data.len() > MAX_INPUT {
            return Err(OpError::Invalid(format!(
                "input is limited to {} KiB per request",
                MAX_INPUT >> 10
            )));
        }
        let s = self.find(who, id, Need::Drive)?;
        s.write_input(req.data.as_bytes()).await?;
        Ok(InputWritten {
            written: req.data.len() as u64,
        })
    }

    /// A session's terminal, for the PTY WebSocket: to watch it the caller must see the
    /// session, to type into it steer it.
    pub fn terminal(&self, who: &Identity, id: &str) -> OpResult<Terminal> {
        let session = self.find(who, id, Need::See)?;
        let writable = self
            .inner
            .owners
            .allows(who, session.actor(), session.id(), Need::Drive);
        Ok(Terminal {
            daemon: self.clone(),
            session,
            writable,
        })
    }

    /// Whether `who` may see this daemon event (events about a session follow the session).
    pub fn sees_event(&self, who: &Identity, event: &DaemonEvent) -> bool {
        let sessions = &self.inner.sessions;
        self.inner.owners.sees_event(who, event, |id| {
            sessions.get(id).map(|s| s.actor().to_owned())
        })
    }

    /// The session, if it exists and `who` may do `need` with it.
    pub(super) fn find(&self, who: &Identity, id: &str, need: Need) -> OpResult<Arc<Session>> {
        let s = self
            .inner
            .sessions
            .get(id)
            .ok_or_else(|| OpError::not_found("session", id))?;
        if self.inner.owners.allows(who, s.actor(), s.id(), need) {
            return Ok(s);
        }
        let what = match need {
            Need::See => "see",
            Need::Drive => "steer",
            Need::Share => "share",
        };
        Err(OpError::Forbidden(format!(
            "session {id} belongs to {}; {} may not {what} it. Ask its owner to share it, or an admin",
            s.actor(),
            who.user_id
        )))
    }

    fn info(&self, s: &Session) -> SessionInfo {
        let info = self.inner.owners.with_shares(s.info());
        SessionInfo {
            agent: self.agent_state_of(&info),
            ..info
        }
    }

    fn visible(&self, who: &Identity, sessions: Vec<SessionInfo>) -> SessionList {
        let owners = &self.inner.owners;
        SessionList {
            sessions: sessions
                .into_iter()
                .filter(|s| owners.allows(who, &s.actor, &s.id, Need::See))
                .map(|s| {
                    let s = owners.with_shares(s);
                    SessionInfo {
                        agent: self.agent_state_of(&s),
                        ..s
                    }
                })
                .collect(),
        }
    }

    /// ADR-0010's system-wide mode serves several operators from one UID: running uncaged
    /// there is running as the `kaged` user, with its nonce files and its audit log in
    /// reach, so only admins may.
    pub(crate) fn may_run_uncaged(&self, who: &Identity) -> OpResult<()> {
        let system = self.inner.layout.mode == kaged_api::Mode::System;
        if system && !self.inner.owners.is_admin(who) {
            return Err(OpError::Forbidden(format!(
                "{} may not run anything uncaged on this system-wide kaged: outside a cage it would run as the kaged user, with the daemon's secrets in reach. Ask an admin (group {}), or drop `cage: disabled`",
                who.user_id,
                self.inner
                    .settings
                    .admin_group
                    .as_ref()
                    .map_or("none configured", |g| g.value.as_str())
            )));
        }
        Ok(())
    }

    /// The last cage of a project to end removes the empty stand-ins its protection made
    /// (a `.git` in a project that is no repository).
    fn remove_stand_ins(&self, project_id: &str, mountpoints: &[std::path::PathBuf]) {
        if mountpoints.is_empty() {
            return;
        }
        let i = &self.inner;
        let _cages = i.cage_setup.lock().unwrap_or_else(|p| p.into_inner());
        let running = i
            .sessions
            .list(Some(project_id))
            .iter()
            .any(|s| s.state != SessionState::Exited);
        if !running {
            kaged_sandbox::remove_mountpoints(mountpoints);
        }
    }

    async fn audit_started(&self, info: &SessionInfo) {
        let origin = &info.origin;
        let row = |kind, data| {
            AuditEvent::new(kind, Some(&info.actor), data)
                .project(&info.project_id)
                .session(&info.id)
        };
        let audit = &self.inner.audit;
        // The cage as the API shows it, plus the one fact every reader of the log wants.
        let mut cage = serde_json::to_value(&origin.cage).unwrap_or_default();
        cage["caged"] = json!(origin.cage.is_caged());
        audit
            .record(row(
                EventType::SessionStarted,
                json!({"argv": info.argv, "kind": origin.kind, "name": origin.name,
                       "cage": cage, "agent": origin.agent}),
            ))
            .await;
        if let Some(agent) = agent_name(info) {
            audit
                .record(row(EventType::RunStarted, json!({"agent": agent})))
                .await;
        }
        if let CageState::Caged { summary } = &origin.cage
            && summary.protection_lifted
        {
            audit
                .record(row(
                    EventType::CageProtectionLifted,
                    json!({"key": "writable_policy_and_git_hooks", "kind": origin.kind,
                           "name": origin.name}),
                ))
                .await;
        }
        if let CageState::Caged { summary } = &origin.cage
            && let CgroupLimits::BestEffort { reason, allowed_by } = &summary.cgroup_limits
        {
            audit
                .record(row(
                    EventType::CageLimitsNotEnforced,
                    json!({"limits": summary.limits, "reason": reason,
                           "allowed_by": allowed_by, "kind": origin.kind,
                           "name": origin.name}),
                ))
                .await;
        }
        if let CageState::Caged { summary } = &origin.cage
            && summary.network == Network::Host
        {
            audit
                .record(row(
                    EventType::CageNetworkHost,
                    json!({"kind": origin.kind, "name": origin.name,
                           "warning": "this cage shares the host's network: the LAN, the \
                                       host's loopback (kaged's own port included) and the \
                                       internet; use `network: {allow: [...]}` to name what \
                                       it may reach"}),
                ))
                .await;
        }
        if origin.cage == CageState::DisabledByProject {
            audit
                .record(row(
                    EventType::CageDisabled,
                    json!({"kind": origin.kind, "name": origin.name}),
                ))
                .await;
        }
    }

    /// A session ended (on its own, by an operator, its walltime or shutdown): audited first,
    /// then announced, so whoever sees the event and reads the audit log finds the row.
    async fn on_exit(&self, mut info: SessionInfo, last_line: &str) {
        let agent = agent_name(&info);
        if let Some(agent) = &agent {
            let run = crate::agents::Run {
                session_id: &info.id,
                project_id: &info.project_id,
                actor: &info.actor,
                agent,
            };
            let state = crate::agents::final_state(&info, last_line);
            self.set_agent_state(&run, state).await;
        }
        info.agent = self.agent_state_of(&info);
        let data = json!({"exit_code": info.exit_code, "signal": info.signal,
                          "end_reason": info.end_reason, "bytes_total": info.bytes_total,
                          "transcript_complete": info.transcript_complete});
        let row = |kind, data| {
            AuditEvent::new(kind, Some(&info.actor), data)
                .project(&info.project_id)
                .session(&info.id)
        };
        let audit = &self.inner.audit;
        audit
            .record(row(EventType::SessionExited, data.clone()))
            .await;
        if agent.is_some() {
            audit.record(row(EventType::RunEnded, data)).await;
        }
        self.publish(DaemonEvent::SessionExited {
            session: info.clone(),
        });
        if let Some(agent) = agent {
            self.publish(DaemonEvent::RunEnded {
                session: info,
                agent,
            });
        }
    }

    /// A recognised agent CLI installed where its cage cannot see it, to bind into the cage.
    fn locate_program(
        &self,
        plan: &launcher::Plan,
        project: &crate::LoadedProject,
    ) -> OpResult<Option<crate::program::Located>> {
        let (Some(cage), Some(program)) = (&plan.cage, plan.argv.first()) else {
            return Ok(None);
        };
        if crate::adapters::recognise(&plan.argv).is_none() {
            return Ok(None);
        }
        crate::program::locate(program, cage, &project.root, &self.inner.host)
    }

    /// Runs the agent's adapter (see [`crate::adapters`]) over its declarations and this cage.
    fn adapt_agent(
        &self,
        spec: &kaged_api::AgentSpec,
        plan: &launcher::Plan,
        project: &crate::LoadedProject,
        dummy: &str,
        hooked: bool,
    ) -> crate::adapters::Adapted {
        let i = &self.inner;
        let prompt = spec
            .system_prompt
            .as_ref()
            .map(|p| crate::adapters::read_prompt(&project.root, p));
        let in_cage = match (&spec.system_prompt, &plan.cage) {
            (Some(p), Some(cage)) if crate::adapters::visible_in_cage(cage, p) => {
                Some(project.root.join(p.relative()).display().to_string())
            }
            // Uncaged, the CLI sees the host's filesystem.
            (Some(p), None) => Some(project.root.join(p.relative()).display().to_string()),
            _ => None,
        };
        let root = project.root.display().to_string();
        // The cage starts in the project root when a grant shows it, else in its home.
        let workdir = match (&plan.cage, kaged_api::PortablePath::parse("project:/")) {
            (Some(cage), Ok(top)) if !crate::adapters::visible_in_cage(cage, &top) => {
                kaged_sandbox::CAGE_HOME.to_owned()
            }
            _ => root,
        };
        let providers: Vec<String> = i.providers.routes.iter().map(|r| r.name.clone()).collect();
        let input = crate::adapters::Input {
            spec,
            models: &i.local.models,
            cage: plan.cage.as_ref(),
            gateway_providers: &providers,
            egress_port: kaged_sandbox::EGRESS_PORT,
            dummy_key: dummy,
            cage_home: kaged_sandbox::CAGE_HOME,
            workdir: &workdir,
            prompt: prompt.as_ref(),
            prompt_in_cage: in_cage.as_deref(),
            hook_wait_secs: hooked.then(|| i.settings.sessions.approval_timeout.value.as_secs()),
        };
        crate::adapters::adapt(&plan.argv, &input)
    }

    /// A filtered-network cage's rules, parsed together with the operator's private exceptions.
    fn egress_policy(&self, cage_of: &str, rules: &EgressRules) -> OpResult<Arc<Policy>> {
        let policy = Policy::new(rules, &self.inner.local.egress.allow_private)
            .map_err(|e| OpError::Invalid(format!("the network policy of {cage_of}: {e}")))?;
        Ok(Arc::new(policy))
    }

    /// The host directory bound into session `id`'s cage, holding its gateway's socket.
    fn egress_dir(&self, id: &str) -> std::path::PathBuf {
        self.inner.host.egress_dir.join(id)
    }

    /// Binds the gateway socket of session `id`'s cage in its directory, replacing the stale
    /// socket a daemon killed before it could clean up left there.
    fn egress_gateway(&self, id: &str) -> OpResult<Gateway> {
        let dir = self.egress_dir(id);
        kaged_deploy::ensure_private_dir(&self.inner.host.egress_dir)
            .and_then(|()| kaged_deploy::ensure_private_dir(&dir))
            .map_err(|e| OpError::internal("cannot create the egress socket directory", e))?;
        Gateway::bind(&dir.join(kaged_sandbox::EGRESS_SOCKET_NAME))
            .map_err(|e| OpError::internal("cannot start the cage's egress gateway", e))
    }

    fn remove_egress_dir(&self, id: &str) {
        let dir = self.egress_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "cannot remove a cage's egress socket directory")
            }
        }
    }

    /// An adopted filtered-network cage gets its gateway back, with the policy it was started
    /// with (kept in its record) and the operator's exceptions as they are now. Its relay
    /// connects afresh for each connection, so it reaches the new socket at once. `None`
    /// for any other cage, or when the gateway cannot be bound (said in the daemon's log; the
    /// cage then reaches nothing, which fails closed).
    fn readopt_gateway(&self, info: &SessionInfo) -> Option<CancellationToken> {
        let CageState::Caged { summary } = &info.origin.cage else {
            return None;
        };
        let Network::Filtered(rules) = &summary.network else {
            return None;
        };
        let bound = self
            .egress_policy(&format!("session {}", info.id), rules)
            .and_then(|policy| Ok((self.egress_gateway(&info.id)?, policy)));
        match bound {
            Ok((gateway, policy)) => {
                let stop = CancellationToken::new();
                self.serve_egress(gateway, policy, info, stop.clone());
                Some(stop)
            }
            Err(e) => {
                tracing::error!(session = %info.id, error = %e, "an adopted cage gets no egress gateway; it reaches no host");
                None
            }
        }
    }

    /// An adopted agent whose cage has an agent socket directory (made when it started with
    /// hooks) gets a fresh socket there, served until the same `stop` as its gateway.
    fn readopt_hooks(
        &self,
        info: &SessionInfo,
        stop: Option<CancellationToken>,
    ) -> Option<CancellationToken> {
        let Some(agent) = agent_name(info) else {
            return stop;
        };
        if !self.agent_dir(&info.id).is_dir() {
            return stop;
        }
        let stop = stop.unwrap_or_default();
        match self.bind_agent_socket(&info.id) {
            Ok(listener) => self.serve_hooks(listener, info, agent, stop.clone()),
            Err(e) => {
                tracing::error!(session = %info.id, error = %e, "an adopted agent gets no agent socket; its hooks fail and held tool calls are denied")
            }
        }
        Some(stop)
    }

    /// Serves a cage's gateway until `stop`, auditing and streaming every connection it
    /// reports.
    fn serve_egress(
        &self,
        gateway: Gateway,
        policy: Arc<Policy>,
        info: &SessionInfo,
        stop: CancellationToken,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<EgressConnection>();
        let ids = CageIds {
            session_id: info.id.clone(),
            project_id: info.project_id.clone(),
        };
        let providers = self.inner.providers.clone();
        self.inner
            .tasks
            .spawn(gateway.serve(policy, providers, ids, tx, stop));
        let daemon = self.clone();
        let actor = info.actor.clone();
        self.inner.tasks.spawn(async move {
            while let Some(conn) = rx.recv().await {
                let kind = match conn.decision {
                    EgressDecision::Allowed => EventType::EgressAllowed,
                    EgressDecision::Denied => EventType::EgressDenied,
                    EgressDecision::Failed => EventType::EgressFailed,
                };
                let data = serde_json::to_value(&conn).unwrap_or_default();
                daemon
                    .inner
                    .audit
                    .record(
                        AuditEvent::new(kind, Some(&actor), data)
                            .project(&conn.project_id)
                            .session(&conn.session_id),
                    )
                    .await;
                daemon.publish(DaemonEvent::Egress { connection: conn });
            }
        });
    }

    async fn audit_session(
        &self,
        kind: EventType,
        actor: &Identity,
        s: &Session,
        data: serde_json::Value,
    ) {
        self.inner
            .audit
            .record(
                AuditEvent::new(kind, Some(&actor.user_id), data)
                    .project(s.project_id())
                    .session(s.id()),
            )
            .await;
    }
}

/// A session's terminal: attach viewers, type, resize. Keystrokes and resizes from a viewer
/// are not audited one by one (the attach is); ending and signalling are.
pub struct Terminal {
    daemon: Daemon,
    session: Arc<Session>,
    /// False for a read-only share: keystrokes and resizes are dropped.
    writable: bool,
}

/// What became of a sequenced input frame, as the viewer needs to hear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqInput {
    /// Written now or earlier: acknowledge it.
    Applied,
    /// The viewer holds a read-only share.
    ReadOnly,
    /// The frame skipped `expected`; nothing was written.
    OutOfOrder { expected: u64 },
    /// The session has ended; the viewer is about to receive the exit.
    Ended,
}

/// A viewer attached at `offset`.
pub struct Attached {
    pub viewer: Viewer,
    pub offset: u64,
}

impl Terminal {
    pub fn id(&self) -> &str {
        self.session.id()
    }

    /// Starts a viewer at `from` (see [`Session::attach`]), audits the attach (ADR-0007: in
    /// insecure mode every attach is also an `auth.insecure_mode` row) and announces it.
    ///
    /// With `screen` the viewer gets screens from the session's terminal model (see
    /// [`Session::attach_screen`]); its size counts only when it may change the session.
    pub async fn attach(
        &self,
        actor: &Identity,
        from: Option<u64>,
        screen: Option<ScreenSize>,
    ) -> Attached {
        let (i, s) = (&self.daemon.inner, &self.session);
        let viewer = match screen {
            None => s.attach(from),
            Some(size) => {
                let size = (self.writable && launcher::check_size(size.cols, size.rows).is_ok())
                    .then_some((size.cols, size.rows));
                s.attach_screen(from, size)
            }
        };
        self.daemon
            .audit_session(EventType::SessionAttached, actor, s, json!({}))
            .await;
        if i.settings.auth_mode.value == AuthMode::Insecure {
            let reason = i.settings.insecure_reason.as_ref().map(|r| r.value.clone());
            let data = json!({"event": "session_attach", "bind": i.bind.to_string(),
                              "reason": reason});
            self.daemon
                .audit_session(EventType::AuthInsecureMode, actor, s, data)
                .await;
        }
        self.daemon.publish(DaemonEvent::SessionAttached {
            session_id: s.id().to_owned(),
            project_id: s.project_id().to_owned(),
            actor: actor.user_id.clone(),
        });
        Attached {
            offset: viewer.offset(),
            viewer,
        }
    }

    /// Types `data`. Input to a session that has ended is dropped: the viewer is about to
    /// receive the exit.
    pub async fn input(&self, data: &[u8]) {
        if !self.writable {
            return;
        }
        if let Err(e) = self.session.write_input(data).await {
            tracing::debug!(session = %self.id(), error = %e, "input not delivered");
        }
    }

    /// Types input frame `seq` of a sequenced `client` exactly once (see
    /// [`Session::write_input_seq`]).
    pub async fn input_seq(&self, client: &str, seq: u64, data: &[u8]) -> SeqInput {
        if !self.writable {
            return SeqInput::ReadOnly;
        }
        match self.session.write_input_seq(client, seq, data).await {
            Ok(InputOutcome::Written | InputOutcome::Duplicate) => SeqInput::Applied,
            Ok(InputOutcome::OutOfOrder { expected }) => SeqInput::OutOfOrder { expected },
            Err(e) => {
                tracing::debug!(session = %self.id(), error = %e, "input not delivered");
                SeqInput::Ended
            }
        }
    }

    /// The last input frame of `client` written to the PTY (0 for none).
    pub async fn input_seq_of(&self, client: &str) -> u64 {
        self.session.input_seq(client).await
    }

    /// A screen viewer's terminal is now `cols`×`rows`, and it is the active viewer (the size
    /// rule of [`kaged_session::Viewer::set_size`]). Ignored for read-only shares and sizes
    /// out of range.
    pub fn viewer_size(&self, viewer: &mut Viewer, cols: u16, rows: u16) {
        if self.writable && launcher::check_size(cols, rows).is_ok() {
            viewer.set_size(cols, rows);
        }
    }

    /// The viewer typed: under the size rule it becomes the active viewer.
    pub fn viewer_active(&self, viewer: &mut Viewer) {
        if self.writable {
            viewer.activate();
        }
    }

    /// Resizes the terminal; sizes out of range and ended sessions are ignored.
    pub fn resize(&self, cols: u16, rows: u16) {
        if self.writable
            && launcher::check_size(cols, rows).is_ok()
            && let Err(e) = self.session.resize(cols, rows)
        {
            tracing::debug!(session = %self.id(), error = %e, "resize not applied");
        }
    }
}

/// Removes an ended cage's cgroup, killing whatever it left behind; a cgroup that cannot be
/// removed is logged, because it holds processes the cage started.
async fn remove_cgroup(cgroup: kaged_sandbox::CageCgroup, session: &str) {
    let path = cgroup.path().to_owned();
    let removed =
        tokio::task::spawn_blocking(move || cgroup.remove(std::time::Duration::from_secs(5))).await;
    match removed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(session, error = %e, "the cage's cgroup was not removed"),
        Err(e) => {
            tracing::warn!(session, cgroup = %path.display(), error = %e, "removing the cage's cgroup failed")
        }
    }
}

pub(crate) fn agent_name(info: &SessionInfo) -> Option<String> {
    match info.origin.kind {
        SessionKind::Agent => info.origin.name.clone(),
        SessionKind::Shell | SessionKind::Command | SessionKind::Task => None,
    }
}

fn signal(name: SignalName) -> Signal {
    match name {
        SignalName::Int => Signal::SIGINT,
        SignalName::Term => Signal::SIGTERM,
        SignalName::Hup => Signal::SIGHUP,
        SignalName::Kill => Signal::SIGKILL,
        SignalName::Quit => Signal::SIGQUIT,
        SignalName::Usr1 => Signal::SIGUSR1,
        SignalName::Usr2 => Signal::SIGUSR2,
        SignalName::Stop => Signal::SIGSTOP,
        SignalName::Cont => Signal::SIGCONT,
        SignalName::Winch => Signal::SIGWINCH,
    }
}

/// The session record's line for a CLI bound into its cage: what was bound, and from where.
fn program_setting(l: &crate::program::Located) -> kaged_api::AdapterSetting {
    kaged_api::AdapterSetting {
        kind: kaged_api::SettingKind::Mount,
        name: l.bind().in_cage(),
        value: Some(format!("{} ({})", l.found.display(), l.host.display())),
        purpose: "the CLI is installed where the cage cannot see it; only this file is bound, \
                  read-only"
            .to_owned(),
    }
}
