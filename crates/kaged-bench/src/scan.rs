//! Finds the streamed file in a terminal byte stream and checks it byte for byte.
//!
//! The command prints `BEGIN<mark>>`, the file, then `END<mark>.`. The shell echoes the command
//! as typed (`printf 'BEGIN%s>' <mark>`), so the echo never contains a marker: the format string
//! and the mark are apart. Everything between the markers must be the file, exactly.

/// The shell command that streams `path` between the two markers, Enter included.
pub fn stream_command(path: &str, mark: &str) -> String {
    format!("printf 'BEGIN%s>' {mark}; cat {path}; printf 'END%s.' {mark}\r")
}

/// A fresh random mark, so that no earlier output can match.
pub fn new_mark() -> String {
    let mut b = [0u8; 8];
    // Without randomness the mark is still unique enough per process; the time stands in.
    if getrandom::fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = (nanos as u64).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for the begin marker.
    Pre,
    /// Comparing against the file; `pos` bytes matched so far.
    Body,
    /// Looking for the end marker.
    Post,
    Done,
}

#[derive(Debug)]
pub struct Scanner<'a> {
    file: &'a [u8],
    begin: Vec<u8>,
    end: Vec<u8>,
    state: State,
    /// Unmatched tail kept while searching for a marker, and the stream offset of its first byte.
    window: Vec<u8>,
    window_base: u64,
    pos: usize,
    /// Every byte fed so far.
    pub total: u64,
    /// Stream offset of the first file byte.
    pub body_start: Option<u64>,
    /// Stream offset of the end marker: `body_end - body_start` is the byte count.
    pub body_end: Option<u64>,
    /// First offset (within the file) where the stream differed from it.
    pub mismatch_at: Option<usize>,
    /// A gap (bytes the server no longer held) was reported inside the run.
    pub gapped: bool,
}

impl<'a> Scanner<'a> {
    pub fn new(file: &'a [u8], mark: &str) -> Scanner<'a> {
        Scanner {
            file,
            begin: format!("BEGIN{mark}>").into_bytes(),
            end: format!("END{mark}.").into_bytes(),
            state: State::Pre,
            window: Vec::new(),
            window_base: 0,
            pos: 0,
            total: 0,
            body_start: None,
            body_end: None,
            mismatch_at: None,
            gapped: false,
        }
    }

    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes counted between the markers.
    pub fn body_len(&self) -> Option<u64> {
        Some(self.body_end? - self.body_start?)
    }

    /// Every byte of the file arrived, in order, and nothing else between the markers.
    pub fn intact(&self) -> bool {
        self.done()
            && !self.gapped
            && self.mismatch_at.is_none()
            && self.body_len() == Some(self.file.len() as u64)
    }

    /// The server skipped bytes: from here on only the end marker matters.
    pub fn gap(&mut self) {
        self.gapped = true;
        if self.state != State::Done {
            self.state = State::Post;
            self.window.clear();
            self.window_base = self.total;
        }
    }

    /// Feeds the next chunk of the stream; returns whether the end marker has been seen.
    /// Long on purpose: one state machine over a chunk; splitting it would scatter the
    /// cursor arithmetic across functions.
    pub fn feed(&mut self, mut chunk: &[u8]) -> bool {
        let chunk_base = self.total;
        self.total += chunk.len() as u64;
        let mut at = chunk_base;
        while !chunk.is_empty() {
            match self.state {
                State::Done => return true,
                State::Pre | State::Post => {
                    let marker = if self.state == State::Pre {
                        &self.begin
                    } else {
                        &self.end
                    };
                    let m = marker.len();
                    if self.window.is_empty() {
                        self.window_base = at;
                    }
                    // A marker may straddle chunks: search the kept tail (< m bytes) joined with
                    // the chunk's head first, then the chunk itself, without copying it.
                    let head = &chunk[..chunk.len().min(m - 1)];
                    let mut joined = Vec::with_capacity(self.window.len() + head.len());
                    joined.extend_from_slice(&self.window);
                    joined.extend_from_slice(head);
                    let found = match memchr::memmem::find(&joined, marker) {
                        Some(i) => Some((self.window_base + i as u64, i + m - self.window.len())),
                        None => memchr::memmem::find(chunk, marker).map(|i| (at + i as u64, i + m)),
                    };
                    match found {
                        Some((marker_at, consumed)) => {
                            at += consumed as u64;
                            chunk = &chunk[consumed..];
                            self.window.clear();
                            if self.state == State::Pre {
                                self.body_start = Some(marker_at + m as u64);
                                self.state = State::Body;
                            } else {
                                self.body_end = Some(marker_at);
                                self.state = State::Done;
                            }
                        }
                        None => {
                            let keep = m - 1;
                            if chunk.len() >= keep {
                                self.window.clear();
                                self.window.extend_from_slice(&chunk[chunk.len() - keep..]);
                                self.window_base = at + (chunk.len() - keep) as u64;
                            } else {
                                self.window.extend_from_slice(chunk);
                                let drop = self.window.len().saturating_sub(keep);
                                self.window.drain(..drop);
                                self.window_base += drop as u64;
                            }
                            return false;
                        }
                    }
                }
                State::Body => {
                    let n = (self.file.len() - self.pos).min(chunk.len());
                    let (now, rest) = chunk.split_at(n);
                    if now != &self.file[self.pos..self.pos + n] {
                        let off = now
                            .iter()
                            .zip(&self.file[self.pos..])
                            .position(|(a, b)| a != b)
                            .unwrap_or(0);
                        self.mismatch_at = Some(self.pos + off);
                        // Whatever this is, the end marker still ends the run.
                        self.state = State::Post;
                        continue;
                    }
                    self.pos += n;
                    at += n as u64;
                    chunk = rest;
                    if self.pos == self.file.len() {
                        self.state = State::Post;
                    }
                }
            }
        }
        self.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(file: &[u8], mark: &str) -> Vec<u8> {
        let mut s = b"bash-5.2# printf 'BEGIN%s>' x; cat f\r\n".to_vec();
        s.extend_from_slice(format!("BEGIN{mark}>").as_bytes());
        s.extend_from_slice(file);
        s.extend_from_slice(format!("END{mark}.bash-5.2# ").as_bytes());
        s
    }

    #[test]
    fn counts_every_byte_whatever_the_chunking() {
        let file: Vec<u8> = (0..5000u32).map(|i| b'A' + (i % 26) as u8).collect();
        let s = stream(&file, "abc");
        for size in [1, 2, 3, 7, 64, 4096, s.len()] {
            let mut sc = Scanner::new(&file, "abc");
            let mut done = false;
            for c in s.chunks(size) {
                done = sc.feed(c);
            }
            assert!(done, "chunk size {size}");
            assert!(sc.intact(), "chunk size {size}: {sc:?}");
            assert_eq!(sc.body_len(), Some(file.len() as u64));
        }
    }

    #[test]
    fn a_lost_byte_is_reported() {
        let file = vec![b'x'; 1000];
        let mut s = stream(&file, "m");
        let at = s.len() - 40;
        s.remove(at);
        let mut sc = Scanner::new(&file, "m");
        for c in s.chunks(100) {
            sc.feed(c);
        }
        assert!(sc.done());
        assert!(!sc.intact());
        assert_eq!(sc.body_len(), Some(999));
    }

    #[test]
    fn a_changed_byte_is_reported_at_its_offset() {
        let file = vec![b'x'; 1000];
        let mut s = stream(&file, "m");
        let begin = s.windows(7).position(|w| w == b"BEGINm>").unwrap_or(0) + 7;
        s[begin + 500] = b'y';
        let mut sc = Scanner::new(&file, "m");
        sc.feed(&s);
        assert_eq!(sc.mismatch_at, Some(500));
        assert!(sc.done());
        assert!(!sc.intact());
    }

    #[test]
    fn the_echoed_command_does_not_match() {
        let cmd = stream_command("/f", "m1");
        let mut sc = Scanner::new(b"", "m1");
        sc.feed(cmd.as_bytes());
        assert!(sc.body_start.is_none());
    }
}
