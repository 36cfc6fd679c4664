//! The agent socket: one Unix socket per agent session, in a host directory bound read-only
//! into its cage, and the cage's only channel to the daemon. It speaks nothing but the hook
//! protocol (`kaged_api::hook`): one size-capped request per connection, rate-limited per
//! session, answered by [`Daemon::on_hook`]. No other API is reachable through it. A held
//! tool call becomes an [`Approval`] that the session's owner or an admin answers through the
//! HTTP API, or whose default applies when time runs out.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use std::time::{Duration, Instant};

use kaged_api::hook::{HOOK_MAX_BYTES, HOOK_SOCKET_NAME, HookEvent, HookReply, HookRequest};
use kaged_api::{
    APPROVAL_NOTE_MAX, AgentSignal, AgentState, AgentStatus, Approval, ApprovalAnswer,
    ApprovalDefault, ApprovalList, ApprovalOutcome, ApprovalVerdict, DaemonEvent, HookDecision,
    Identity, SessionInfo, Timestamp,
};
use kaged_store::{AuditEvent, EventType};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use crate::agents::Run;
use crate::owners::Need;
use crate::{Daemon, OpError, OpResult};

/// A request must arrive whole this soon after the connection.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once per session; held tool calls keep theirs open.
const MAX_OPEN: usize = 8;

/// A token bucket: `burst` requests at once, then one per `every`.
#[derive(Debug)]
pub(crate) struct RateLimit {
    tokens: f64,
    burst: f64,
    every: Duration,
    last: Instant,
}

impl RateLimit {
    pub(crate) fn new(burst: u32, every: Duration) -> RateLimit {
        RateLimit {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            every,
            last: Instant::now(),
        }
    }

    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        let gained = now.duration_since(self.last).as_secs_f64() / self.every.as_secs_f64();
        self.tokens = (self.tokens + gained).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A held tool call and the way to answer it.
pub(crate) struct Pending {
    approval: Approval,
    answer: oneshot::Sender<Answered>,
}

/// The operator's answer as the waiting hook gets it.
struct Answered {
    decision: HookDecision,
    note: Option<String>,
    by: String,
    from: String,
}

/// Reads one request: at most [`HOOK_MAX_BYTES`], whole within [`READ_TIMEOUT`], and nothing
/// but a [`HookRequest`].
pub(crate) async fn read_request<R: tokio::io::AsyncRead + Unpin>(
    conn: &mut R,
) -> Result<HookRequest, String> {
    let mut buf = Vec::new();
    let mut limited = conn.take(HOOK_MAX_BYTES as u64 + 1);
    match tokio::time::timeout(READ_TIMEOUT, limited.read_to_end(&mut buf)).await {
        Err(_) => return Err(format!("no whole request within {READ_TIMEOUT:?}")),
        Ok(Err(e)) => return Err(format!("cannot read the request: {e}")),
        Ok(Ok(_)) => {}
    }
    if buf.len() > HOOK_MAX_BYTES {
        return Err(format!("the request is over {HOOK_MAX_BYTES} bytes"));
    }
    serde_json::from_slice(&buf).map_err(|e| format!("not a hook request ({e})"))
}

/// A string field of a CLI's hook JSON.
fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// What the approval card shows of a Claude Code tool call.
fn describe_call(tool: &str, input: &Value) -> (Option<String>, Option<String>, Option<String>) {
    let own = |k: &str| text(input, k).map(str::to_owned);
    match tool {
        "Bash" => (own("command"), None, None),
        "Edit" | "MultiEdit" => {
            let diff = match input.get("edits").and_then(Value::as_array) {
                Some(edits) => edits
                    .iter()
                    .map(|e| edit_diff(text(e, "old_string"), text(e, "new_string")))
                    .collect::<Vec<_>>()
                    .join("\n"),
                None => edit_diff(text(input, "old_string"), text(input, "new_string")),
            };
            (None, own("file_path"), Some(diff))
        }
        "Write" => (None, own("file_path"), own("content")),
        "NotebookEdit" => (None, own("notebook_path"), own("new_source")),
        _ => (own("url").or_else(|| own("command")), None, None),
    }
}

fn edit_diff(old: Option<&str>, new: Option<&str>) -> String {
    let mut out = String::new();
    for line in old.unwrap_or_default().lines() {
        out.push_str(&format!("- {line}\n"));
    }
    for line in new.unwrap_or_default().lines() {
        out.push_str(&format!("+ {line}\n"));
    }
    out
}

impl Daemon {
    /// The host directory bound into session `id`'s cage, holding its agent socket.
    pub(crate) fn agent_dir(&self, id: &str) -> PathBuf {
        self.inner.host.agent_dir.join(id)
    }

    /// Binds session `id`'s agent socket, replacing a stale one a killed daemon left.
    pub(crate) fn bind_agent_socket(&self, id: &str) -> OpResult<UnixListener> {
        let dir = self.agent_dir(id);
        kaged_deploy::ensure_private_dir(&self.inner.host.agent_dir)
            .and_then(|()| kaged_deploy::ensure_private_dir(&dir))
            .map_err(|e| OpError::internal("cannot create the agent socket directory", e))?;
        let path = dir.join(HOOK_SOCKET_NAME);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(OpError::internal("cannot replace a stale agent socket", e)),
        }
        UnixListener::bind(&path).map_err(|e| {
            OpError::internal(
                &format!("cannot bind the agent socket {}", path.display()),
                e,
            )
        })
    }

    pub(crate) fn remove_agent_dir(&self, id: &str) {
        let dir = self.agent_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "cannot remove a cage's agent socket directory")
            }
        }
    }

    /// Serves a session's agent socket until `stop`: one task per connection, at most
    /// [`MAX_OPEN`] at once, and a request budget per session.
    pub(crate) fn serve_hooks(
        &self,
        listener: UnixListener,
        info: &SessionInfo,
        agent: String,
        stop: CancellationToken,
    ) {
        let daemon = self.clone();
        let info = info.clone();
        self.inner.tasks.spawn(async move {
            let mut limit = RateLimit::new(20, Duration::from_secs(1));
            let open = Arc::new(Semaphore::new(MAX_OPEN));
            // A flood is audited once when it starts, not once per request.
            let mut flooding = false;
            loop {
                let conn = tokio::select! {
                    () = stop.cancelled() => break,
                    c = listener.accept() => match c {
                        Ok((conn, _)) => conn,
                        Err(e) => {
                            tracing::warn!(session = %info.id, error = %e, "agent socket accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let allowed = limit.allow(Instant::now());
                let permit = open.clone().try_acquire_owned().ok();
                let refused = match (allowed, permit.is_some()) {
                    (false, _) => Some("too many hook requests; slow down".to_owned()),
                    (true, false) => Some(format!("more than {MAX_OPEN} hooks open at once")),
                    (true, true) => None,
                };
                let audit = refused.is_none() || !flooding;
                flooding = refused.is_some();
                let d = daemon.clone();
                let (info, agent, stop) = (info.clone(), agent.clone(), stop.clone());
                d.inner.tasks.clone().spawn(async move {
                    let _permit = permit;
                    d.answer_connection(conn, &info, &agent, refused, audit, stop)
                        .await;
                });
            }
        });
    }

    async fn answer_connection(
        &self,
        mut conn: UnixStream,
        info: &SessionInfo,
        agent: &str,
        refused: Option<String>,
        audit: bool,
        stop: CancellationToken,
    ) {
        let reply = match refused {
            Some(reason) => {
                // Read what was sent, briefly and capped, so that the reply is not lost to a
                // reset for unread data.
                let mut sink = Vec::new();
                let mut limited = (&mut conn).take(HOOK_MAX_BYTES as u64 + 1);
                let drain = limited.read_to_end(&mut sink);
                let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
                Err(reason)
            }
            None => match read_request(&mut conn).await {
                Ok(req) => Ok(self.on_hook(info, agent, req, stop).await),
                Err(reason) => Err(reason),
            },
        };
        let reply = reply.unwrap_or_else(|reason| HookReply::Refused { reason });
        if let (HookReply::Refused { reason }, true) = (&reply, audit) {
            self.inner
                .audit
                .record(
                    AuditEvent::new(
                        EventType::HookRefused,
                        Some(&info.actor),
                        json!({"reason": reason}),
                    )
                    .project(&info.project_id)
                    .session(&info.id),
                )
                .await;
        }
        let body = serde_json::to_vec(&reply).unwrap_or_default();
        let _ = conn.write_all(&body).await;
        let _ = conn.shutdown().await;
    }

    /// What one hook means for the run: a state, or a held tool call.
    async fn on_hook(
        &self,
        info: &SessionInfo,
        agent: &str,
        req: HookRequest,
        stop: CancellationToken,
    ) -> HookReply {
        let run = Run {
            session_id: &info.id,
            project_id: &info.project_id,
            actor: &info.actor,
            agent,
        };
        let p = &req.payload;
        let reason = match req.event {
            HookEvent::Notification => text(p, "message")
                .unwrap_or("the agent needs you")
                .to_owned(),
            HookEvent::Stop => text(p, "last_assistant_message")
                .unwrap_or("the agent finished its turn")
                .to_owned(),
            HookEvent::CodexNotify => text(p, "last-assistant-message")
                .unwrap_or("the agent finished its turn")
                .to_owned(),
            HookEvent::PreToolUse => return self.hold(&run, info, p, stop).await,
        };
        let state = AgentState::new(AgentStatus::Waiting, AgentSignal::Hook, Some(&reason));
        self.set_agent_state(&run, state).await;
        HookReply::Noted
    }

    /// Holds a tool call until the operator answers, the default applies, or the run ends.
    async fn hold(
        &self,
        run: &Run<'_>,
        info: &SessionInfo,
        p: &Value,
        stop: CancellationToken,
    ) -> HookReply {
        let Some(approval) = self.approval_for(run, info, p) else {
            return HookReply::Refused {
                reason: "the daemon cannot name an approval".to_owned(),
            };
        };
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            approval: approval.clone(),
            answer: tx,
        };
        self.pending().insert(approval.id.clone(), pending);
        let data = json!(approval);
        self.audit_approval(
            EventType::ApprovalRequested,
            Some(run.actor),
            &approval,
            data,
        )
        .await;
        self.publish(DaemonEvent::ApprovalRequested {
            approval: approval.clone(),
        });
        let what = approval.command.as_ref().or(approval.path.as_ref());
        let what = what.unwrap_or(&approval.tool);
        let state = AgentState::new(AgentStatus::Waiting, AgentSignal::Hook, Some(what));
        self.set_agent_state(run, state).await;
        let wait = Duration::from_secs(approval.timeout_secs);
        // `None`: the run ended (or the daemon let go of it) before anyone answered.
        let answered = tokio::select! {
            a = tokio::time::timeout(wait, rx) => a.map(Result::ok),
            () = stop.cancelled() => Ok(None),
        };
        self.pending().remove(&approval.id);
        let (decision, note, by, from) = match answered {
            Ok(Some(a)) => (a.decision, a.note, Some(a.by), Some(a.from)),
            Ok(None) => (
                HookDecision::Deny,
                Some("the run ended before anyone answered".to_owned()),
                None,
                None,
            ),
            Err(_) => match approval.on_timeout {
                ApprovalDefault::Deny => (
                    HookDecision::Deny,
                    Some(format!(
                        "nobody answered within {}s, so kaged denied it",
                        wait.as_secs()
                    )),
                    None,
                    None,
                ),
                ApprovalDefault::Ask => (HookDecision::Ask, None, None, None),
            },
        };
        let outcome = ApprovalOutcome {
            approval_id: approval.id.clone(),
            session_id: info.id.clone(),
            project_id: info.project_id.clone(),
            decision,
            by: by.clone(),
            note: note.clone(),
        };
        let data = json!({"outcome": outcome, "from": from, "tool": approval.tool});
        self.audit_approval(EventType::ApprovalAnswered, by.as_deref(), &approval, data)
            .await;
        self.publish(DaemonEvent::ApprovalAnswered { outcome });
        if decision != HookDecision::Ask {
            let state = AgentState::new(AgentStatus::Working, AgentSignal::Hook, None);
            self.set_agent_state(run, state).await;
        }
        HookReply::Decision { decision, note }
    }

    /// The approval card for a Claude Code `PreToolUse` payload; `None` when no id can be made.
    fn approval_for(&self, run: &Run<'_>, info: &SessionInfo, p: &Value) -> Option<Approval> {
        let settings = &self.inner.settings.sessions;
        let tool = text(p, "tool_name").unwrap_or("an unnamed tool").to_owned();
        let input = p.get("tool_input").cloned().unwrap_or(Value::Null);
        let (command, path, diff) = describe_call(&tool, &input);
        Some(Approval {
            id: kaged_session::new_session_id().ok()?,
            session_id: info.id.clone(),
            project_id: info.project_id.clone(),
            agent: run.agent.to_owned(),
            owner: info.actor.clone(),
            tool,
            command,
            path,
            diff,
            description: text(&input, "description").map(str::to_owned),
            cwd: text(p, "cwd").map(str::to_owned),
            input: input.to_string(),
            cage: info.origin.cage.clone(),
            requested: Timestamp::now(),
            timeout_secs: settings.approval_timeout.value.as_secs(),
            on_timeout: settings.approval_default.value,
        })
    }

    async fn audit_approval(
        &self,
        kind: EventType,
        actor: Option<&str>,
        a: &Approval,
        data: Value,
    ) {
        self.inner
            .audit
            .record(
                AuditEvent::new(kind, actor, data)
                    .project(&a.project_id)
                    .session(&a.session_id),
            )
            .await;
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.inner
            .approvals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a held tool call of this session waits: the terminal's quiet then says nothing
    /// new.
    pub(crate) fn holds_approval(&self, session_id: &str) -> bool {
        self.pending()
            .values()
            .any(|p| p.approval.session_id == session_id)
    }

    /// The held tool calls of the sessions `who` may see.
    pub fn approvals(&self, who: &Identity) -> ApprovalList {
        let mut approvals: Vec<Approval> = self
            .pending()
            .values()
            .filter(|p| {
                let a = &p.approval;
                self.inner
                    .owners
                    .allows(who, &a.owner, &a.session_id, Need::See)
            })
            .map(|p| p.approval.clone())
            .collect();
        approvals.sort_by(|a, b| a.requested.cmp(&b.requested).then(a.id.cmp(&b.id)));
        ApprovalList { approvals }
    }

    /// Answers a held tool call: only the session's owner or an admin may. `from` says where
    /// the answer came from, for the audit.
    pub async fn answer_approval(
        &self,
        who: &Identity,
        id: &str,
        answer: ApprovalAnswer,
        from: &str,
    ) -> OpResult<ApprovalOutcome> {
        if let Some(note) = &answer.note
            && note.chars().count() > APPROVAL_NOTE_MAX
        {
            return Err(OpError::Invalid(format!(
                "the note is {} characters; an answer's note carries at most {APPROVAL_NOTE_MAX}",
                note.chars().count()
            )));
        }
        let pending = {
            let mut all = self.pending();
            let Some(p) = all.get(id) else {
                return Err(OpError::not_found("approval", id));
            };
            let a = &p.approval;
            if !self
                .inner
                .owners
                .allows(who, &a.owner, &a.session_id, Need::Share)
            {
                return Err(OpError::Forbidden(format!(
                    "approval {id} belongs to {}'s session {}; only its owner or an admin \
                     answers it",
                    a.owner, a.session_id
                )));
            }
            all.remove(id)
        };
        let Some(p) = pending else {
            return Err(OpError::not_found("approval", id));
        };
        let decision = match answer.verdict {
            ApprovalVerdict::Approve => HookDecision::Allow,
            ApprovalVerdict::Deny => HookDecision::Deny,
        };
        let outcome = ApprovalOutcome {
            approval_id: id.to_owned(),
            session_id: p.approval.session_id.clone(),
            project_id: p.approval.project_id.clone(),
            decision,
            by: Some(who.user_id.clone()),
            note: answer.note.clone(),
        };
        let sent = p.answer.send(Answered {
            decision,
            note: answer.note,
            by: who.user_id.clone(),
            from: from.to_owned(),
        });
        if sent.is_err() {
            return Err(OpError::Conflict(format!(
                "approval {id} is no longer held: its run ended or its time ran out"
            )));
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn the_budget_allows_a_burst_then_one_per_interval() {
        let start = Instant::now();
        let mut limit = RateLimit::new(3, Duration::from_secs(1));
        let got: Vec<bool> = (0..5).map(|_| limit.allow(start)).collect();
        assert_eq!(got, [true, true, true, false, false]);
        assert!(limit.allow(start + Duration::from_millis(1001)));
        assert!(!limit.allow(start + Duration::from_millis(1002)));
    }

    #[tokio::test]
    async fn the_socket_reads_one_hook_request_and_refuses_anything_else() {
        let ok = br#"{"event":"stop","payload":{"last_assistant_message":"done"}}"#;
        let got = read_request(&mut &ok[..]).await.unwrap();
        assert_eq!(
            got,
            HookRequest {
                event: HookEvent::Stop,
                payload: json!({"last_assistant_message": "done"}),
            }
        );
        let http = b"GET /api/v1/sessions HTTP/1.1\r\nHost: x\r\n\r\n";
        let err = read_request(&mut &http[..]).await.unwrap_err();
        assert!(err.starts_with("not a hook request"), "{err}");
        let other = br#"{"event":"session.start","payload":{}}"#;
        assert!(read_request(&mut &other[..]).await.is_err());
        let big = format!(
            r#"{{"event":"stop","payload":{{"x":"{}"}}}}"#,
            "a".repeat(HOOK_MAX_BYTES)
        );
        let err = read_request(&mut big.as_bytes()).await.unwrap_err();
        assert!(err.contains("over"), "{err}");
    }

    #[test]
    fn an_approval_shows_the_exact_command_or_the_files_change() {
        assert_eq!(
            describe_call(
                "Bash",
                &json!({"command": "rm -rf build && make", "description": "d"})
            ),
            (Some("rm -rf build && make".to_owned()), None, None)
        );
        assert_eq!(
            describe_call(
                "Edit",
                &json!({"file_path": "/p/a.rs", "old_string": "a\nb", "new_string": "c"})
            ),
            (
                None,
                Some("/p/a.rs".to_owned()),
                Some("- a\n- b\n+ c\n".to_owned())
            )
        );
        assert_eq!(
            describe_call("Write", &json!({"file_path": "/p/n.txt", "content": "hi"})),
            (None, Some("/p/n.txt".to_owned()), Some("hi".to_owned()))
        );
    }
}
