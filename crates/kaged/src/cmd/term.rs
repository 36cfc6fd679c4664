//! The local terminal: its size, and raw mode for `kaged attach`, restored however we leave.

use std::io::IsTerminal;
use std::os::fd::AsFd;

use rustix::termios::{self, OptionalActions, Termios};

/// Columns and rows of the terminal on stdout (or stdin), if there is one.
pub fn size() -> Option<(u16, u16)> {
    let ws = termios::tcgetwinsize(std::io::stdout().as_fd())
        .or_else(|_| termios::tcgetwinsize(std::io::stdin().as_fd()))
        .ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Raw mode on stdin while it lives: keystrokes go to the session as typed (Ctrl-C included),
/// and the previous mode comes back on drop, also on an error path.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enter() -> std::io::Result<RawMode> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(RawMode { saved: None });
        }
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw)?;
        Ok(RawMode { saved: Some(saved) })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, saved);
        }
    }
}
