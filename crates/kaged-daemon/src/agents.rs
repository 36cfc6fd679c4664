//! Agent runs' state, the same for every CLI: a watcher follows each declared agent's output
//! as a viewer of its ring (so it never slows the session), reads terminal notifications and
//! idleness from it, and turns them into `agent.state` rows, events and, when the operator is
//! wanted, Web Push messages. Structured hooks from the agent adapters (`hooks.rs`) feed the
//! same [`Daemon::set_agent_state`], and win: while a tool call is held for the operator,
//! the terminal's quiet or output says nothing new.

use std::sync::Arc;
use std::time::Duration;

use kaged_api::{
    AgentSignal, AgentState, AgentStatus, DaemonEvent, EndReason, PushMessage, SessionInfo,
    SessionState,
};
use kaged_push::{Delivered, Target};
use kaged_session::{Session, SignalScanner, ViewerEvent};
use kaged_store::{AuditEvent, EventType};
use serde_json::json;
use tokio::time::Instant;

use crate::Daemon;

/// The reason an adopted run's first state gives.
const ADOPTED: &str = "adopted after a daemon restart";

/// The least time between two pushes about one run going quiet.
const IDLE_PUSH_EVERY: Duration = Duration::from_secs(60);

/// A push waiting to be sent.
pub(crate) struct Outgoing {
    user: String,
    project: String,
    session: String,
    message: PushMessage,
}

/// Who a state change is about.
pub(crate) struct Run<'a> {
    pub(crate) session_id: &'a str,
    pub(crate) project_id: &'a str,
    pub(crate) actor: &'a str,
    pub(crate) agent: &'a str,
}

impl Daemon {
    /// Follows an agent's output until it ends (or the daemon lets go of it), setting its
    /// state as it goes. Returns the last line of text it wrote, for the final state.
    pub(crate) async fn follow_agent(&self, session: &Arc<Session>, agent: &str) -> String {
        let run = Run {
            session_id: session.id(),
            project_id: session.project_id(),
            actor: session.actor(),
            agent,
        };
        let idle = self.inner.settings.sessions.agent_idle.value;
        // A run adopted after a restart is followed from now on: its old output would replay
        // old notifications (and push them again).
        let (mut status, from, reason) = if session.is_adopted() {
            (AgentStatus::Working, Some(u64::MAX), Some(ADOPTED))
        } else {
            (AgentStatus::Starting, None, None)
        };
        self.set_agent_state(&run, AgentState::new(status, AgentSignal::Start, reason))
            .await;
        let mut viewer = session.attach(from);
        let mut scanner = SignalScanner::new();
        let mut idle = Idleness::new(idle, status == AgentStatus::Working);
        let done = session.wait();
        tokio::pin!(done);
        let mut ended = false;
        loop {
            tokio::select! {
                biased;
                event = viewer.next() => match event {
                    Some(ViewerEvent::Data { bytes, .. }) => {
                        let scan = scanner.scan(&bytes);
                        for (signal, text) in scan.signals {
                            let reason = text.unwrap_or_else(|| scanner.last_line());
                            status = AgentStatus::Waiting;
                            idle.waiting();
                            let state = AgentState::new(status, signal, Some(&reason));
                            self.set_agent_state(&run, state).await;
                        }
                        if scan.text_after && status != AgentStatus::Working {
                            if idle.is_idle() {
                                // Quiet by the screen: only a changed screen ends it.
                                idle.recheck_soon();
                            } else {
                                status = AgentStatus::Working;
                                idle.working();
                                let state = AgentState::new(status, AgentSignal::Output, None);
                                self.set_agent_state(&run, state).await;
                            }
                        }
                        if status == AgentStatus::Working {
                            idle.output();
                        }
                    }
                    Some(ViewerEvent::Exit { .. }) | None => break,
                    Some(_) => {}
                },
                () = idle.next_check() => {
                    let digest = session.screen_digest();
                    match idle.check(digest) {
                        Check::Idle => {
                            status = AgentStatus::Waiting;
                            let state = AgentState::new(status, AgentSignal::Idle, Some(&scanner.last_line()));
                            self.set_agent_state(&run, state).await;
                        }
                        Check::Changed => {
                            status = AgentStatus::Working;
                            idle.working();
                            let state = AgentState::new(status, AgentSignal::Output, None);
                            self.set_agent_state(&run, state).await;
                        }
                        Check::Same => {}
                    }
                }
                // Ended: read what is left up to the exit, unless the daemon let go of it.
                _ = &mut done, if !ended => {
                    if session.is_detached() {
                        break;
                    }
                    ended = true;
                }
            }
        }
        scanner.last_line()
    }

    /// Records a new state: kept for `GET`, audited, announced, and pushed to the devices of
    /// its owner and of those it is shared with for writing when it newly needs them. The
    /// same state twice is recorded once.
    pub(crate) async fn set_agent_state(&self, run: &Run<'_>, state: AgentState) {
        let from_terminal = match state.signal {
            AgentSignal::Output
            | AgentSignal::Bell
            | AgentSignal::Osc9
            | AgentSignal::Osc777
            | AgentSignal::Osc99
            | AgentSignal::Idle => true,
            AgentSignal::Start | AgentSignal::Exit | AgentSignal::Hook => false,
        };
        let held = self.holds_approval(run.session_id);
        if from_terminal && held {
            return;
        }
        let previous = {
            let mut states = self.inner.agents.lock().unwrap_or_else(|p| p.into_inner());
            let previous = states.insert(run.session_id.to_owned(), state.clone());
            if let Some(p) = &previous
                && p.status == state.status
                && p.reason == state.reason
            {
                return;
            }
            previous
        };
        let data = json!({"agent": run.agent, "status": state.status, "reason": state.reason,
                          "signal": state.signal, "exit_code": state.exit_code});
        self.inner
            .audit
            .record(
                AuditEvent::new(EventType::AgentState, Some(run.actor), data)
                    .project(run.project_id)
                    .session(run.session_id),
            )
            .await;
        self.publish(DaemonEvent::AgentState {
            session_id: run.session_id.to_owned(),
            project_id: run.project_id.to_owned(),
            agent: run.agent.to_owned(),
            state: state.clone(),
        });
        let newly = previous.is_none_or(|p| p.status != state.status);
        if newly && state.status.needs_operator() && !self.idle_push_too_soon(run, &state) {
            let mut message = push_message(run, &state);
            let approval = held && state.signal == AgentSignal::Hook;
            if approval {
                // The command stays on the signed-in approval card, never in a push.
                message.body = "asks to run a tool call: open kaged to approve or deny".to_owned();
            }
            // The owner, and whoever may type into the run; an approval only its owner (or
            // an admin, who sees every card) can answer.
            let mut users = vec![run.actor.to_owned()];
            if !approval {
                users.extend(self.inner.owners.drivers(run.session_id));
            }
            for user in users {
                let out = Outgoing {
                    user,
                    project: run.project_id.to_owned(),
                    session: run.session_id.to_owned(),
                    message: message.clone(),
                };
                if self.inner.push_queue.send(out).is_err() {
                    tracing::debug!("the daemon is stopping; push not sent");
                }
            }
        }
    }

    /// A run that keeps going quiet and busy again (progress every few seconds) is pushed
    /// about its idleness at most once per [`IDLE_PUSH_EVERY`]; a bell, a notification and
    /// the end always go out.
    fn idle_push_too_soon(&self, run: &Run<'_>, state: &AgentState) -> bool {
        if state.signal != AgentSignal::Idle {
            return false;
        }
        let mut last = self
            .inner
            .idle_pushed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        match last.get(run.session_id) {
            Some(at) if now.duration_since(*at) < IDLE_PUSH_EVERY => true,
            _ => {
                last.insert(run.session_id.to_owned(), now);
                false
            }
        }
    }

    /// The agent state of a session, for `GET`: what the watcher saw, or for an agent session
    /// that ended before this daemon watched it, the end as its record tells.
    pub(crate) fn agent_state_of(&self, info: &SessionInfo) -> Option<AgentState> {
        crate::ops::agent_name(info)?;
        let seen = self
            .inner
            .agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&info.id)
            .cloned();
        // An ended session's state is final even in the moment before its watcher records
        // the end (with the last line as its reason).
        let seen = seen.filter(|s| {
            info.state != SessionState::Exited
                || matches!(s.status, AgentStatus::Done | AgentStatus::Error)
        });
        // Not followed yet (the moment after a start or an adoption): what following it will
        // say first, so an agent session always has a state.
        Some(seen.unwrap_or_else(|| match (info.state, info.adopted_at) {
            (SessionState::Exited, _) => final_state(info, ""),
            (_, Some(_)) => {
                AgentState::new(AgentStatus::Working, AgentSignal::Start, Some(ADOPTED))
            }
            (_, None) => AgentState::new(AgentStatus::Starting, AgentSignal::Start, None),
        }))
    }

    /// Sends a push to every device of its user, auditing each outcome; a subscription the
    /// push service says is gone is forgotten.
    pub(crate) async fn push_to(&self, out: &Outgoing) {
        let Outgoing {
            user,
            project,
            session,
            message,
        } = out;
        let i = &self.inner;
        let subs = match i.store.push_subscriptions(user).await {
            Ok(subs) => subs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the push subscriptions");
                return;
            }
        };
        let Ok(payload) = serde_json::to_vec(message) else {
            return;
        };
        for sub in subs {
            let to = Target {
                endpoint: &sub.endpoint,
                p256dh: &sub.p256dh,
                auth: &sub.auth,
            };
            let service = kaged_push::check_endpoint(&sub.endpoint).unwrap_or_default();
            let (kind, data) = match i.pusher.send(to, &payload).await {
                Ok(Delivered::Accepted(status)) => (
                    EventType::PushSent,
                    json!({"subscription": sub.id, "service": service, "status": status,
                           "agent_status": message.status}),
                ),
                Ok(Delivered::Gone(status)) => {
                    if let Err(e) = i.store.remove_push_endpoint(&sub.endpoint).await {
                        tracing::warn!(error = %e, "cannot forget a gone push subscription");
                    }
                    (
                        EventType::PushRevoked,
                        json!({"subscription": sub.id, "service": service, "status": status,
                               "by": "push service"}),
                    )
                }
                Err(e) => (
                    EventType::PushFailed,
                    json!({"subscription": sub.id, "service": service, "error": e.to_string()}),
                ),
            };
            i.audit
                .record(
                    AuditEvent::new(kind, Some(user), data)
                        .project(project)
                        .session(session),
                )
                .await;
        }
    }
}

/// How an ended agent run stands: `done` after a clean exit, `error` otherwise.
pub(crate) fn final_state(info: &SessionInfo, last_line: &str) -> AgentState {
    let clean = info.exit_code == Some(0)
        && matches!(info.end_reason, None | Some(EndReason::ProcessExited));
    let why = match (info.exit_code, info.signal, info.end_reason) {
        (_, _, Some(EndReason::Walltime)) => "its walltime ran out".to_owned(),
        (_, _, Some(EndReason::Terminated)) => "an operator ended it".to_owned(),
        (_, _, Some(EndReason::Shutdown)) => "the daemon shut down".to_owned(),
        (_, _, Some(EndReason::DaemonRestart | EndReason::HolderLost)) => {
            "it ended while no daemon watched; its exit status is unknown".to_owned()
        }
        (Some(code), _, _) => format!("exited with status {code}"),
        (None, Some(sig), _) => format!("killed by signal {sig}"),
        (None, None, _) => "ended".to_owned(),
    };
    let reason = if last_line.is_empty() {
        why
    } else {
        format!("{why}: {last_line}")
    };
    let (status, signal) = if clean {
        (AgentStatus::Done, AgentSignal::Exit)
    } else {
        (AgentStatus::Error, AgentSignal::Exit)
    };
    let mut state = AgentState::new(status, signal, Some(&reason));
    state.exit_code = info.exit_code;
    if let Some(ended) = info.ended_at {
        state.since = ended;
    }
    state
}

/// A notification's text: the project, the agent and its state, and the short reason. No
/// secret and nothing of the command line.
fn push_message(run: &Run<'_>, state: &AgentState) -> PushMessage {
    let verb = match state.status {
        AgentStatus::Waiting => "is waiting for you",
        AgentStatus::Done => "is done",
        AgentStatus::Error => "failed",
        AgentStatus::Starting => "is starting",
        AgentStatus::Working => "is working",
    };
    PushMessage {
        title: format!("{}: {} {verb}", run.project_id, run.agent),
        body: state.reason.clone().unwrap_or_default(),
        url: format!("/#/sessions/{}", run.session_id),
        session_id: run.session_id.to_owned(),
        status: state.status,
    }
}

/// How long a run idle by its screen waits for more output before looking again: a redraw
/// comes in several writes, and the first one alone may show a half-drawn screen.
const RECHECK: Duration = Duration::from_millis(250);

/// When a working agent counts as waiting: no output at all for `after`, or output that
/// leaves the screen as it was for `after` (a TUI redrawing the same prompt, a blinking
/// cursor), as coder/agentapi judges it. The screen comes from the session's terminal model.
struct Idleness {
    after: Duration,
    /// No output since: the raw stream's quiet.
    quiet_at: Option<Instant>,
    /// The next look at the screen while output goes on, and what it showed last time.
    look_at: Option<Instant>,
    last_seen: Option<u64>,
    /// Waiting because of idleness: the screen then. Output that does not change it keeps
    /// the run waiting.
    idle_screen: Option<u64>,
    recheck_at: Option<Instant>,
}

/// What a look at the screen found.
enum Check {
    /// Unchanged for the whole period, or quiet: the run waits.
    Idle,
    /// Changed since the run went idle: it works again.
    Changed,
    /// Nothing to report.
    Same,
}

impl Idleness {
    fn new(after: Duration, working: bool) -> Self {
        let mut i = Idleness {
            after,
            quiet_at: None,
            look_at: None,
            last_seen: None,
            idle_screen: None,
            recheck_at: None,
        };
        if working {
            i.working();
        }
        i
    }

    fn is_idle(&self) -> bool {
        self.idle_screen.is_some()
    }

    /// The run works (again): both clocks start.
    fn working(&mut self) {
        let at = Instant::now() + self.after;
        (self.quiet_at, self.look_at, self.last_seen) = (Some(at), Some(at), None);
        (self.idle_screen, self.recheck_at) = (None, None);
    }

    /// The run waits for a reason of its own (a bell, a notification): no clocks.
    fn waiting(&mut self) {
        (
            self.quiet_at,
            self.look_at,
            self.idle_screen,
            self.recheck_at,
        ) = (None, None, None, None);
    }

    /// A working run wrote something: the quiet clock starts over; the screen clock runs on.
    fn output(&mut self) {
        self.quiet_at = Some(Instant::now() + self.after);
    }

    fn recheck_soon(&mut self) {
        if self.recheck_at.is_none() {
            self.recheck_at = Some(Instant::now() + RECHECK);
        }
    }

    /// Sleeps until the earliest clock; forever when none runs.
    async fn next_check(&self) {
        match [self.quiet_at, self.look_at, self.recheck_at]
            .into_iter()
            .flatten()
            .min()
        {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// Called when [`Idleness::next_check`] woke, with the screen's digest now.
    fn check(&mut self, screen: Option<u64>) -> Check {
        let now = Instant::now();
        if let Some(idle) = self.idle_screen {
            self.recheck_at = None;
            return match screen {
                Some(d) if d != idle => Check::Changed,
                _ => Check::Same,
            };
        }
        let quiet = self.quiet_at.is_some_and(|at| at <= now);
        let looked = self.look_at.is_some_and(|at| at <= now);
        let unchanged = looked && screen.is_some() && screen == self.last_seen;
        if quiet || unchanged {
            self.quiet_at = None;
            self.look_at = None;
            // Without a model the screen cannot tell: any output then ends the wait.
            self.idle_screen = screen;
            return Check::Idle;
        }
        if looked {
            self.last_seen = screen;
            self.look_at = Some(now + self.after);
        }
        Check::Same
    }
}
