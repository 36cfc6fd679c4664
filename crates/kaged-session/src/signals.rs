//! Terminal notifications in a session's output: BEL, `OSC 9`, `OSC 777 ; notify` and kitty's
//! `OSC 99`, which agent CLIs send when they want the operator; and the last line of text, the
//! reason a quiet agent shows. This runs beside the hot path, on what a watcher reads from the
//! ring (see [`crate::Session::attach`]): the terminal model is fed in large batches, too late
//! for a notification, so the scanner keeps its own small state and shares only the escape
//! sequence parser with the model's mode tracker.

use kaged_api::AgentSignal;

use crate::screen::{Seq, finish_cut_sequence, sequence_len};

/// An escape sequence longer than this carries no notification worth reading.
const SEQ_MAX: usize = 4096;
/// The line being written is kept up to this many bytes.
const LINE_MAX: usize = 1024;

/// What one stretch of output held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Notifications in the order they came, each with its text (none for a bell).
    pub signals: Vec<(AgentSignal, Option<String>)>,
    /// Whether visible text came after the last notification (or, without one, at all).
    pub text_after: bool,
}

/// Follows one session's output across chunk boundaries.
#[derive(Debug, Default)]
pub struct SignalScanner {
    /// An escape sequence cut by a chunk boundary.
    partial: Vec<u8>,
    /// The line being written.
    current: Vec<u8>,
    /// The last line that had text, once a line break or carriage return ended it.
    last: Vec<u8>,
}

impl SignalScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans the next stretch of output.
    pub fn scan(&mut self, bytes: &[u8]) -> Scan {
        let mut out = Scan::default();
        let mut i = 0;
        if !self.partial.is_empty() {
            let (used, seq) = finish_cut_sequence(&mut self.partial, bytes, SEQ_MAX, escape_len);
            if let Some(seq) = seq {
                self.sequence(&seq, &mut out);
            }
            i = used;
            if !self.partial.is_empty() {
                return out;
            }
        }
        while i < bytes.len() {
            match bytes[i] {
                0x1b => match escape_len(&bytes[i..]) {
                    Seq::Complete(n) => {
                        self.sequence(&bytes[i..i + n], &mut out);
                        i += n;
                        continue;
                    }
                    Seq::Invalid => {}
                    Seq::Incomplete => {
                        if bytes.len() - i <= SEQ_MAX {
                            self.partial.extend_from_slice(&bytes[i..]);
                        }
                        return out;
                    }
                },
                0x07 => {
                    out.signals.push((AgentSignal::Bell, None));
                    out.text_after = false;
                }
                b'\n' | b'\r' => self.end_line(),
                0x08 => {
                    self.current.pop();
                }
                b if b >= 0x20 && b != 0x7f => {
                    if self.current.len() < LINE_MAX {
                        self.current.push(b);
                    }
                    if b != b' ' {
                        out.text_after = true;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        out
    }

    /// The line being written if it has text, else the last one that had. Box-drawing and
    /// block characters (a TUI's frames) are not text.
    pub fn last_line(&self) -> String {
        let current = visible_text(&self.current);
        if current.is_empty() {
            visible_text(&self.last)
        } else {
            current
        }
    }

    fn end_line(&mut self) {
        // Bulk output is mostly ASCII: decide without decoding when it is.
        let text = if self.current.is_ascii() {
            self.current.iter().any(|b| !b.is_ascii_whitespace())
        } else {
            !visible_text(&self.current).is_empty()
        };
        if text {
            self.last = std::mem::take(&mut self.current);
        } else {
            self.current.clear();
        }
    }

    fn sequence(&mut self, seq: &[u8], out: &mut Scan) {
        if seq.get(1) != Some(&b']') {
            return;
        }
        let body = match &seq[2..] {
            [rest @ .., 0x07] => rest,
            [rest @ .., 0x1b, b'\\'] => rest,
            body => body,
        };
        if let Some(found) = notification(body) {
            out.signals.push(found);
            out.text_after = false;
        }
    }
}

/// [`sequence_len`], plus the three-byte designations (`ESC ( B`) whose last byte is no text.
fn escape_len(s: &[u8]) -> Seq {
    match s.get(1) {
        Some(b'(' | b')' | b'*' | b'+' | b'-' | b'.' | b'/' | b'#' | b'%' | b' ') => {
            if s.len() >= 3 {
                Seq::Complete(3)
            } else {
                Seq::Incomplete
            }
        }
        _ => sequence_len(s),
    }
}

/// A line's text without a TUI's frames (box-drawing and block characters) or surrounding
/// blanks.
fn visible_text(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .chars()
        .map(|c| {
            if ('\u{2500}'..='\u{259f}').contains(&c) {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The notification an OSC body (without `ESC ]` and terminator) carries, if any.
fn notification(body: &[u8]) -> Option<(AgentSignal, Option<String>)> {
    let text = |b: &[u8]| {
        let s = String::from_utf8_lossy(b).trim().to_owned();
        (!s.is_empty()).then_some(s)
    };
    let mut parts = body.splitn(2, |b| *b == b';');
    let code = parts.next()?;
    let rest = parts.next().unwrap_or_default();
    match code {
        // ConEmu reuses OSC 9 for numbered commands (`9;4;…` is progress): not notifications.
        b"9" => {
            let numbered = rest
                .iter()
                .position(|b| *b == b';')
                .is_some_and(|i| i > 0 && rest[..i].iter().all(u8::is_ascii_digit))
                || (!rest.is_empty() && rest.iter().all(u8::is_ascii_digit));
            (!numbered).then(|| (AgentSignal::Osc9, text(rest)))
        }
        b"777" => {
            let mut f = rest.splitn(3, |b| *b == b';');
            if f.next()? != b"notify" {
                return None;
            }
            let title = f.next().and_then(text);
            let body = f.next().and_then(text);
            let joined = match (title, body) {
                (Some(t), Some(b)) => Some(format!("{t}: {b}")),
                (t, b) => t.or(b),
            };
            Some((AgentSignal::Osc777, joined))
        }
        b"99" => {
            let mut f = rest.splitn(2, |b| *b == b';');
            let meta = f.next().unwrap_or_default();
            let payload = f.next().unwrap_or_default();
            let mut encoded = false;
            for kv in meta.split(|b| *b == b':') {
                match kv {
                    // Only the title and the body are text; `?` queries, `close`, icons and
                    // the like are not notifications.
                    b"p=title" | b"p=body" => {}
                    [b'p', b'=', ..] => return None,
                    b"e=1" => encoded = true,
                    _ => {}
                }
            }
            // A base64 payload is not decoded here; the notification still counts.
            let shown = if encoded { None } else { text(payload) };
            Some((AgentSignal::Osc99, shown))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn scan_all(chunks: &[&[u8]]) -> (Vec<(AgentSignal, Option<String>)>, SignalScanner) {
        let mut s = SignalScanner::new();
        let mut found = Vec::new();
        for c in chunks {
            found.extend(s.scan(c).signals);
        }
        (found, s)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn bell_and_each_notification_kind_are_found_in_order() {
        let (found, _) = scan_all(&[
            b"working\x07\x1b]9;Need input\x07",
            b"\x1b]777;notify;Claude;Allow `ls`?\x1b\\\x1b]99;i=1:d=0;Done here\x1b\\",
        ]);
        assert_eq!(
            found,
            vec![
                (AgentSignal::Bell, None),
                (AgentSignal::Osc9, some("Need input")),
                (AgentSignal::Osc777, some("Claude: Allow `ls`?")),
                (AgentSignal::Osc99, some("Done here")),
            ]
        );
    }

    #[test]
    fn a_notification_cut_by_chunk_boundaries_counts_once() {
        let whole: &[u8] = b"\x1b]777;notify;agent;waiting for you\x07";
        for cut in 1..whole.len() {
            let (found, _) = scan_all(&[&whole[..cut], &whole[cut..]]);
            assert_eq!(
                found,
                vec![(AgentSignal::Osc777, some("agent: waiting for you"))],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn titles_progress_and_osc_terminators_are_not_notifications() {
        let (found, _) = scan_all(&[
            b"\x1b]0;my title\x07\x1b]2;other\x1b\\\x1b]9;4;1;50\x07\x1b]777;precmd\x07",
            b"\x1b]99;i=1:p=?;\x1b\\\x1b[1m\x1b(B",
        ]);
        assert_eq!(found, vec![]);
    }

    #[test]
    fn the_last_line_skips_escapes_and_blank_lines() {
        let (_, s) = scan_all(&[
            b"first\r\n\x1b[32mDo you want to proceed?\x1b[0m\r\n",
            b"\r\n  \r\n",
        ]);
        assert_eq!(s.last_line(), "Do you want to proceed?");
        let (_, s) = scan_all(&[b"done\r\n> typing"]);
        assert_eq!(s.last_line(), "> typing");
        let (_, s) = scan_all(&["│ Allow `ls`? │\r\n╰──────╯\r\n".as_bytes()]);
        assert_eq!(s.last_line(), "Allow `ls`?");
    }

    #[test]
    fn text_after_the_last_notification_is_reported() {
        let mut s = SignalScanner::new();
        assert!(!s.scan(b"question?\x07\r\n").text_after);
        assert!(s.scan(b"\x07more output").text_after);
        assert!(s.scan(b"plain").text_after);
        assert!(!s.scan(b"\x1b[H\x1b[2J").text_after);
    }
}
