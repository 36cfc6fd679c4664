//! `kaged __hook <event>`: kaged's binary inside an agent's cage, run by the CLI's own hooks.
//! It passes the CLI's hook JSON (stdin, or for Codex's `notify` the last argument) to the
//! daemon over the session's agent socket and prints the answer the CLI expects. A held tool
//! call that cannot reach the daemon is denied: failing open would run what nobody approved.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;

use kaged_api::hook::{
    HOOK_MAX_BYTES, HOOK_SOCKET_NAME, HookDecision, HookEvent, HookReply, HookRequest,
};

/// The most of a reply read back; a decision and a note.
const REPLY_MAX_BYTES: u64 = 64 * 1024;

pub fn run(args: &[std::ffi::OsString]) -> ExitCode {
    let Some(event) = args
        .first()
        .and_then(|a| a.to_str())
        .and_then(HookEvent::parse)
    else {
        eprintln!(
            "kaged __hook: expected one of notification, stop, pre-tool-use, codex-notify, got \
             {:?}; this mode is run by an agent CLI's hooks inside a kaged cage",
            args.first()
        );
        return ExitCode::from(2);
    };
    let socket = Path::new(kaged_sandbox::AGENT_SOCKET_DIR).join(HOOK_SOCKET_NAME);
    let answer = read_payload(event, &args[1..])
        .and_then(|payload| ask(&socket, &HookRequest { event, payload }));
    match (event, answer) {
        (HookEvent::PreToolUse, Ok(HookReply::Decision { decision, note })) => {
            print_decision(decision, note.as_deref());
        }
        (HookEvent::PreToolUse, Ok(HookReply::Refused { reason }) | Err(reason)) => {
            let why = format!(
                "kaged could not hold this call for the operator ({reason}), so it is denied"
            );
            print_decision(HookDecision::Deny, Some(&why));
        }
        (_, Ok(HookReply::Refused { reason }) | Err(reason)) => {
            eprintln!("kaged __hook {}: {reason}", event.name());
        }
        (_, Ok(_)) => {}
    }
    ExitCode::SUCCESS
}

fn read_payload(
    event: HookEvent,
    rest: &[std::ffi::OsString],
) -> Result<serde_json::Value, String> {
    let text = match event {
        HookEvent::CodexNotify => rest
            .last()
            .and_then(|a| a.to_str())
            .map(str::to_owned)
            .ok_or("Codex passed no JSON argument")?,
        HookEvent::Notification | HookEvent::Stop | HookEvent::PreToolUse => {
            let mut text = String::new();
            std::io::stdin()
                .take(HOOK_MAX_BYTES as u64 + 1)
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read the hook's input: {e}"))?;
            text
        }
    };
    if text.len() > HOOK_MAX_BYTES {
        return Err(format!("the hook's input is over {HOOK_MAX_BYTES} bytes"));
    }
    serde_json::from_str(&text).map_err(|e| format!("the hook's input is not JSON: {e}"))
}

/// One request, one reply, on a fresh connection.
fn ask(socket: &Path, req: &HookRequest) -> Result<HookReply, String> {
    let mut conn = UnixStream::connect(socket)
        .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
    let body = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    conn.write_all(&body)
        .and_then(|()| conn.shutdown(std::net::Shutdown::Write))
        .map_err(|e| format!("cannot send to {}: {e}", socket.display()))?;
    let mut reply = Vec::new();
    (&mut conn)
        .take(REPLY_MAX_BYTES)
        .read_to_end(&mut reply)
        .map_err(|e| format!("no answer from {}: {e}", socket.display()))?;
    serde_json::from_slice(&reply)
        .map_err(|e| format!("the daemon's answer is not a hook reply: {e}"))
}

/// Claude Code's PreToolUse answer: allow skips its own prompt, deny tells the model why, ask
/// falls through to its prompt.
fn print_decision(decision: HookDecision, note: Option<&str>) {
    let (name, default) = match decision {
        HookDecision::Allow => ("allow", "approved by the operator in kaged"),
        HookDecision::Deny => ("deny", "denied by the operator in kaged"),
        HookDecision::Ask => ("ask", "nobody answered in kaged in time"),
    };
    let out = serde_json::json!({"hookSpecificOutput": {
        "hookEventName": "PreToolUse",
        "permissionDecision": name,
        "permissionDecisionReason": note.unwrap_or(default),
    }});
    println!("{out}");
}
