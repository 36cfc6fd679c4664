//! The terminal model of one session: what a viewer that attaches now must see (design §6).
//!
//! The model is `avt` (asciinema's virtual terminal): it reflows the primary screen on resize,
//! keeps scrollback and the alternate screen apart, and dumps its state as escape sequences.
//! What avt does not track but a viewer needs (bracketed paste, mouse and focus reporting,
//! the keypad mode, the title) is picked out of the byte stream by [`Modes`].
//!
//! The model is fed lazily, from the ring, in large batches (see `session::screen_keeper`), and
//! an idle model is kept as its own dump, a string of a few kilobytes, instead of a live grid.
//! It is fed from plain byte slices at known offsets, so a model can be rebuilt from any
//! stretch of output (a transcript tail) the same way.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::Instant;

use avt::{Color, Pen, Terminal};

/// Lines of primary-screen history the model keeps (xterm.js keeps 1000 by default).
pub(crate) const SCROLLBACK_LINES: usize = 1000;
/// A title longer than this is cut.
const TITLE_MAX: usize = 1024;
/// An escape sequence longer than this is not one the mode tracker cares about.
const SEQ_MAX: usize = TITLE_MAX + 16;

/// DEC private modes a viewer must get back, in the order they are restored: mouse
/// reporting (9, 1000–1003), focus events (1004), mouse encodings (1005, 1006, 1015, 1016)
/// and bracketed paste (2004). avt restores the others it knows (cursor keys, origin,
/// auto-wrap, cursor visibility, the alternate screen) in its own dump.
const TRACKED_DEC_MODES: [u16; 11] = [
    9, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1015, 1016, 2004,
];

/// One screen as escape sequences, at the offset where the live stream continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Output offset the snapshot stands for: the next live byte is this one.
    pub offset: u64,
    pub cols: u16,
    pub rows: u16,
    /// Written to a freshly reset terminal of `cols`×`rows`, these bytes rebuild its
    /// scrollback, screens, cursor, modes and title. They start with a full reset (RIS).
    pub bytes: String,
}

/// What avt leaves out, tracked from the raw bytes.
#[derive(Debug, Default, Clone)]
struct Modes {
    /// Bit `i` set when `TRACKED_DEC_MODES[i]` is on.
    dec: u16,
    keypad_application: bool,
    title: Option<String>,
    /// What the fast path of [`Screen::feed_segment`] assumes is off: a scroll region
    /// narrower than the screen, auto-wrap off, insert mode, newline mode.
    margins: bool,
    no_autowrap: bool,
    insert: bool,
    newline: bool,
    /// The screen's height, to tell a full-screen scroll region from a narrower one.
    rows: u16,
    /// An escape sequence cut by a chunk boundary.
    partial: Vec<u8>,
}

impl Modes {
    fn reset(&mut self) {
        self.dec = 0;
        self.keypad_application = false;
        self.title = None;
        self.margins = false;
        self.no_autowrap = false;
        self.insert = false;
        self.newline = false;
    }

    /// Whether plain text moves the cursor as the fast path assumes.
    fn plain_text_is_simple(&self) -> bool {
        !(self.margins || self.no_autowrap || self.insert || self.newline)
    }

    fn write(&self, out: &mut String) {
        for (i, mode) in TRACKED_DEC_MODES.iter().enumerate() {
            if self.dec & (1 << i) != 0 {
                let _ = write!(out, "\x1b[?{mode}h");
            }
        }
        if self.keypad_application {
            out.push_str("\x1b=");
        }
        if let Some(title) = &self.title {
            let _ = write!(out, "\x1b]2;{title}\x07");
        }
    }

    /// Scans `bytes` for the sequences this tracker owns. Everything else is skipped with
    /// `memchr`, so this costs little next to the model itself.
    fn scan(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        if !self.partial.is_empty() {
            let (used, seq) = finish_cut_sequence(&mut self.partial, rest, SEQ_MAX, sequence_len);
            if let Some(seq) = seq {
                self.dispatch(&seq);
            }
            rest = &rest[used..];
            if !self.partial.is_empty() {
                return;
            }
        }
        while let Some(at) = memchr::memchr(0x1b, rest) {
            let seq = &rest[at..];
            match sequence_len(seq) {
                Seq::Complete(n) => {
                    self.dispatch(&seq[..n]);
                    rest = &seq[n..];
                }
                Seq::Invalid => rest = &seq[1..],
                Seq::Incomplete => {
                    if seq.len() <= SEQ_MAX {
                        self.partial.extend_from_slice(seq);
                    }
                    return;
                }
            }
        }
    }

    fn dispatch(&mut self, seq: &[u8]) {
        match seq.get(1) {
            Some(b'c') => self.reset(),
            Some(b'=') => self.keypad_application = true,
            Some(b'>') => self.keypad_application = false,
            Some(b'[') => self.csi(&seq[2..]),
            Some(b']') => self.osc(&seq[2..]),
            _ => {}
        }
    }

    fn csi(&mut self, body: &[u8]) {
        let Some((&last, params)) = body.split_last() else {
            return;
        };
        let (private, params) = match params.split_first() {
            Some((b'?', rest)) => (true, rest),
            _ => (false, params),
        };
        match (private, last) {
            (true, b'h' | b'l') => {
                for p in params.split(|b| *b == b';') {
                    let Some(n) = number(p) else { continue };
                    if n == 7 {
                        self.no_autowrap = last == b'l';
                    }
                    if let Some(i) = TRACKED_DEC_MODES.iter().position(|m| *m == n) {
                        if last == b'h' {
                            self.dec |= 1 << i;
                        } else {
                            self.dec &= !(1 << i);
                        }
                    }
                }
            }
            // DECSTBM: the fast path assumes a line feed at the bottom scrolls the whole
            // screen, so it is off while a narrower region may be set.
            (false, b'r') => {
                let mut it = params.split(|b| *b == b';');
                let top = it.next().and_then(number).unwrap_or(1);
                let bottom = it.next().and_then(number).unwrap_or(0);
                self.margins = !(top <= 1 && (bottom == 0 || bottom >= self.rows));
            }
            (false, b'h' | b'l') => {
                for p in params.split(|b| *b == b';') {
                    match number(p) {
                        Some(4) => self.insert = last == b'h',
                        Some(20) => self.newline = last == b'h',
                        _ => {}
                    }
                }
            }
            // DECSTR (`CSI ! p`) resets the region and insert mode; it may turn auto-wrap off.
            (false, b'p') if params == b"!" => {
                self.margins = false;
                self.insert = false;
                self.no_autowrap = true;
            }
            _ => {}
        }
    }

    fn osc(&mut self, body: &[u8]) {
        // Strip the terminator (BEL or ESC \).
        let body = match body {
            [rest @ .., 0x07] => rest,
            [rest @ .., 0x1b, b'\\'] => rest,
            _ => body,
        };
        let Some(semi) = body.iter().position(|b| *b == b';') else {
            return;
        };
        if matches!(&body[..semi], b"0" | b"2") {
            let title: String = String::from_utf8_lossy(&body[semi + 1..])
                .chars()
                .filter(|c| !c.is_control())
                .take(TITLE_MAX)
                .collect();
            self.title = Some(title);
        }
    }
}

fn number(p: &[u8]) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(p).ok()?.parse().ok()
}

pub(crate) enum Seq {
    Complete(usize),
    Incomplete,
    Invalid,
}

/// Continues an escape sequence cut by the last chunk boundary, a byte at a time, as `len`
/// reads sequences: returns how many bytes of `bytes` it took, and the sequence once whole. One
/// that turns out invalid or longer than `max` is dropped.
pub(crate) fn finish_cut_sequence(
    partial: &mut Vec<u8>,
    bytes: &[u8],
    max: usize,
    len: fn(&[u8]) -> Seq,
) -> (usize, Option<Vec<u8>>) {
    for (i, &b) in bytes.iter().enumerate() {
        partial.push(b);
        match len(partial) {
            Seq::Complete(_) => return (i + 1, Some(std::mem::take(partial))),
            Seq::Invalid => {
                partial.clear();
                return (i + 1, None);
            }
            Seq::Incomplete if partial.len() > max => {
                partial.clear();
                return (i + 1, None);
            }
            Seq::Incomplete => {}
        }
    }
    (bytes.len(), None)
}

/// The length of the escape sequence at the start of `s` (which starts with ESC).
pub(crate) fn sequence_len(s: &[u8]) -> Seq {
    match s.get(1) {
        None => Seq::Incomplete,
        Some(b'[') => {
            for (i, b) in s.iter().enumerate().skip(2) {
                match b {
                    0x20..=0x3f => {}
                    0x40..=0x7e => return Seq::Complete(i + 1),
                    // Another ESC, CAN or SUB aborts the sequence; C0 controls inside it
                    // are executed by a terminal and do not end it.
                    0x1b | 0x18 | 0x1a => return Seq::Invalid,
                    0x00..=0x1f => {}
                    _ => return Seq::Invalid,
                }
            }
            Seq::Incomplete
        }
        Some(b']') => {
            for (i, b) in s.iter().enumerate().skip(2) {
                match b {
                    0x07 => return Seq::Complete(i + 1),
                    0x18 | 0x1a => return Seq::Invalid,
                    0x1b => {
                        return match s.get(i + 1) {
                            None => Seq::Incomplete,
                            Some(b'\\') => Seq::Complete(i + 2),
                            Some(_) => Seq::Invalid,
                        };
                    }
                    _ => {}
                }
            }
            Seq::Incomplete
        }
        // DCS, SOS, PM and APC strings run to ST; the fast path must not start inside one.
        Some(b'P' | b'X' | b'^' | b'_') => {
            match s.windows(2).skip(1).position(|w| w == b"\x1b\\") {
                Some(i) => Seq::Complete(i + 3),
                None => Seq::Incomplete,
            }
        }
        Some(_) => Seq::Complete(2),
    }
}

/// The model of one session's terminal.
pub(crate) struct Screen {
    /// The live grid while the model is busy; `None` when idle.
    live: Option<Box<Terminal>>,
    /// The model while idle: its scrollback and screens as escape sequences (without the
    /// modes, which live in [`Modes`]); a fresh terminal fed these is the same model again.
    compact: String,
    cols: u16,
    rows: u16,
    modes: Modes,
    /// The start of a UTF-8 character cut by a chunk boundary.
    utf8: Vec<u8>,
    /// Every output byte below this offset is in the model.
    fed: u64,
    /// Resizes not yet applied: `(offset, cols, rows)`, applied once the model reaches
    /// `offset` (the output end when the PTY was resized).
    resizes: VecDeque<(u64, u16, u16)>,
    /// When the model was last fed or read; an idle model is compacted.
    pub(crate) last_used: Instant,
    /// Whether [`Screen::feed_segment`] may skip text that scrolls away (off only to test it).
    fast_path: bool,
    /// Bytes the fast path did not need to draw.
    skipped: u64,
    /// Plain text past a cut that the fast path has not drawn yet: the model owes CR LF and
    /// then these bytes. Bulk output keeps piling up here (cut again as it grows) and is
    /// drawn once, when anything reads the model or other output follows, instead of
    /// drawing the last screens' worth of every batch.
    deferred: Vec<u8>,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screen")
            .field("live", &self.live.is_some())
            .field("size", &(self.cols, self.rows))
            .field("fed", &self.fed)
            .field("skipped", &self.skipped)
            .field("deferred", &self.deferred.len())
            .finish_non_exhaustive()
    }
}

impl Screen {
    /// An empty model of `cols`×`rows` at output offset `fed` (0 for a new session).
    pub(crate) fn new(cols: u16, rows: u16, fed: u64) -> Self {
        Screen {
            live: None,
            compact: String::new(),
            cols: cols.max(1),
            rows: rows.max(1),
            modes: Modes {
                rows: rows.max(1),
                ..Modes::default()
            },
            utf8: Vec::new(),
            fed,
            resizes: VecDeque::new(),
            last_used: Instant::now(),
            fast_path: true,
            skipped: 0,
            deferred: Vec::new(),
        }
    }

    pub(crate) fn fed(&self) -> u64 {
        self.fed
    }

    pub(crate) fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// The PTY became `cols`×`rows` when the output ended at `offset`.
    pub(crate) fn resize_at(&mut self, offset: u64, cols: u16, rows: u16) {
        self.resizes
            .push_back((offset.max(self.fed), cols.max(1), rows.max(1)));
        self.apply_due_resizes();
    }

    fn apply_due_resizes(&mut self) {
        while let Some(&(at, cols, rows)) = self.resizes.front() {
            if at > self.fed {
                break;
            }
            // The deferred text was written at the old size.
            self.draw_deferred();
            self.resizes.pop_front();
            if (cols, rows) != (self.cols, self.rows) {
                self.cols = cols;
                self.rows = rows;
                self.modes.rows = rows;
                if let Some(term) = self.terminal() {
                    term.resize(usize::from(cols), usize::from(rows));
                }
            }
        }
    }

    /// The live grid, rebuilt from the compact form if needed (`None` only if avt refused
    /// the size, which `new` rules out).
    fn terminal(&mut self) -> Option<&mut Terminal> {
        if self.live.is_none() {
            let mut term = Terminal::with_scrollback(
                usize::from(self.cols),
                usize::from(self.rows),
                Some(SCROLLBACK_LINES),
            )
            .ok()?;
            term.feed(std::mem::take(&mut self.compact).as_str());
            self.live = Some(Box::new(term));
        }
        self.live.as_deref_mut()
    }

    /// Feeds output that starts at `offset`. Bytes the model already has are skipped.
    pub(crate) fn feed(&mut self, offset: u64, bytes: &[u8]) {
        let skip = self.fed.saturating_sub(offset);
        if skip >= bytes.len() as u64 {
            return;
        }
        let mut rest = &bytes[skip as usize..];
        self.last_used = Instant::now();
        while !rest.is_empty() {
            // Split at the next pending resize so each byte is applied at the size it was
            // written for.
            let take = match self.resizes.front() {
                Some(&(at, _, _)) if at > self.fed => ((at - self.fed) as usize).min(rest.len()),
                _ => rest.len(),
            };
            let (now, later) = rest.split_at(take);
            self.feed_segment(now);
            self.fed += now.len() as u64;
            rest = later;
            self.apply_due_resizes();
        }
    }

    /// Feeds one stretch of output written at the current size.
    ///
    /// The fast path: a long run of plain text (printable ASCII, CR, LF) that scrolls the
    /// screen and the whole scrollback out more than once leaves only its last lines visible.
    /// The text before the last point that still does so is replaced by one CR LF: the model
    /// ends in the same state (every earlier line is evicted either way; the pen and modes do
    /// not change in plain text), without drawing what would scroll away. What follows the
    /// cut is kept in [`Screen::deferred`] and drawn only when needed, so bulk output such as
    /// `cat` of a big file costs the model a scan, not a parse.
    fn feed_segment(&mut self, now: &[u8]) {
        let plain_from = last_non_plain(now).map_or(0, |i| i + 1);
        if !self.deferred.is_empty() {
            if plain_from == 0 {
                self.defer(now);
                return;
            }
            self.draw_deferred();
        }
        if !self.fast_path || now.len() - plain_from < FAST_MIN {
            self.modes.scan(now);
            self.feed_text(now);
            return;
        }
        // A few plain bytes may still end an escape sequence the modes scanner does not
        // follow (`ESC ( B`); after them the parser is at rest.
        let settle = (plain_from + 16).min(now.len());
        self.modes.scan(&now[..settle]);
        self.feed_text(&now[..settle]);
        let rest = &now[settle..];
        let at_rest = self.modes.partial.is_empty()
            && self.utf8.is_empty()
            && self.modes.plain_text_is_simple();
        let col = self.live.as_ref().map(|t| t.cursor().col);
        match col
            .filter(|_| at_rest)
            .and_then(|c| plain_cut(rest, c, usize::from(self.cols), self.need()))
        {
            Some(cut) => {
                self.skipped += cut as u64;
                self.deferred.extend_from_slice(&rest[cut..]);
            }
            None => {
                self.modes.scan(rest);
                self.feed_text(rest);
            }
        }
    }

    /// Line advances that push every line now in the model out of its scrollback.
    fn need(&self) -> usize {
        2 * usize::from(self.rows) + SCROLLBACK_LINES + 2
    }

    /// More plain text after a cut: kept, and cut again once it has grown, so it stays a few
    /// screens' worth plus one batch.
    fn defer(&mut self, plain: &[u8]) {
        self.deferred.extend_from_slice(plain);
        if self.deferred.len() >= DEFER_CUT {
            self.cut_deferred();
        }
    }

    /// Drops the deferred text that would scroll away. It starts at column 0 of a fresh line
    /// (see `feed_segment`).
    fn cut_deferred(&mut self) {
        if let Some(cut) = plain_cut(&self.deferred, 0, usize::from(self.cols), self.need()) {
            self.skipped += cut as u64;
            self.deferred.drain(..cut);
        }
    }

    /// Draws what the fast path deferred: CR LF in place of what was cut, then the text.
    fn draw_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        self.cut_deferred();
        let text = std::mem::take(&mut self.deferred);
        self.feed_text(b"\r\n");
        self.feed_text(&text);
    }

    fn feed_text(&mut self, bytes: &[u8]) {
        let mut carry = std::mem::take(&mut self.utf8);
        if let Some(term) = self.terminal() {
            feed_utf8(term, &mut carry, bytes);
        }
        self.utf8 = carry;
    }

    /// The screen as a viewer of the same size must see it, at [`Screen::fed`].
    pub(crate) fn snapshot(&mut self) -> Snapshot {
        self.apply_due_resizes();
        self.draw_deferred();
        self.last_used = Instant::now();
        let mut bytes = String::from("\x1bc");
        self.modes.write(&mut bytes);
        match &self.live {
            None => bytes.push_str(&self.compact),
            Some(term) => bytes.push_str(&dump(term)),
        }
        Snapshot {
            offset: self.fed,
            cols: self.cols,
            rows: self.rows,
            bytes,
        }
    }

    /// What the screen shows (the active screen's text and the cursor), hashed: equal
    /// digests mean a viewer sees the same screen, whatever bytes redrew it.
    pub(crate) fn digest(&mut self) -> u64 {
        use std::hash::{Hash, Hasher};
        self.apply_due_resizes();
        self.draw_deferred();
        self.last_used = Instant::now();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        if let Some(term) = self.terminal() {
            for line in term.screen().visible_lines() {
                line.text().hash(&mut h);
            }
            let c = term.cursor();
            (c.col, c.row, c.visible).hash(&mut h);
        }
        h.finish()
    }

    /// Drops the live grid, keeping the model as its own dump.
    pub(crate) fn compact(&mut self) {
        self.draw_deferred();
        if let Some(term) = self.live.take() {
            self.compact = dump(&term);
        }
    }
}

/// A plain run shorter than this is fed as it is.
const FAST_MIN: usize = 64 << 10;
/// Deferred text is cut again once it is this long.
const DEFER_CUT: usize = 1 << 20;

/// Bytes whose effect on the screen the fast path can follow: printable ASCII, CR and LF.
fn is_plain(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | 0x20..=0x7e)
}

/// The position of the last byte that is not plain. Checks 64 bytes at a time without a
/// branch per byte (the compiler vectorises the fold), since it sees every byte of bulk output.
fn last_non_plain(bytes: &[u8]) -> Option<usize> {
    let mut end = bytes.len();
    while end > 0 {
        let start = end.saturating_sub(64);
        let block = &bytes[start..end];
        if block.iter().fold(false, |any, &b| any | !is_plain(b)) {
            return block.iter().rposition(|&b| !is_plain(b)).map(|i| start + i);
        }
        end = start;
    }
    None
}

/// In a plain run that starts at column `col` of a `cols`-wide screen: the last point after
/// which at least `need` line advances (line feeds and wraps) still follow, where the cursor
/// is at column 0 of a fresh line (after CR LF, or where the text wraps). `None` when the
/// run never advances that much.
fn plain_cut(run: &[u8], col: usize, cols: usize, need: usize) -> Option<usize> {
    let (total, _) = walk_plain(run, col, cols, usize::MAX);
    let limit = total.checked_sub(need)?;
    walk_plain(run, col, cols, limit).1
}

/// Walks a plain run a line at a time (`memchr` finds the CRs and LFs; a line's wraps are
/// arithmetic): returns the line advances up to where it stopped, and the last cut point
/// reached with at most `limit` advances before it. A line feed while a wrap is pending may
/// or may not cancel it; until the next CR the column is then not known, so wraps are not
/// counted (fewer advances: the safe side) and not cut at.
fn walk_plain(run: &[u8], col: usize, cols: usize, limit: usize) -> (usize, Option<usize>) {
    let cols = cols.max(1);
    let mut col = col.min(cols);
    let mut known = true;
    let mut advances = 0usize;
    let mut best = None;
    let mut pos = 0;
    while pos <= run.len() {
        let end = memchr::memchr2(b'\r', b'\n', &run[pos..]).map_or(run.len(), |n| pos + n);
        let len = end - pos;
        if known {
            // The first character that wraps, then one every `cols`; each wrap is a cut
            // point before the character, with the advances so far.
            let first = cols - col;
            if len > first {
                let wraps = (len - first - 1) / cols + 1;
                if advances > limit {
                    return (advances, best);
                }
                let last = (wraps - 1).min(limit - advances);
                best = Some(pos + first + last * cols);
                if last < wraps - 1 {
                    return (advances + last, best);
                }
                advances += wraps;
                col = len - first - (wraps - 1) * cols;
            } else {
                col += len;
            }
        }
        match run.get(end) {
            None => break,
            Some(b'\r') => {
                col = 0;
                known = true;
            }
            Some(_) => {
                if col >= cols {
                    known = false;
                }
                advances += 1;
                if known && col == 0 {
                    if advances > limit {
                        return (advances, best);
                    }
                    best = Some(end + 1);
                }
            }
        }
        pos = end + 1;
    }
    (advances, best)
}

/// Feeds bytes as text: UTF-8 cut by a chunk boundary is carried over, invalid bytes become
/// U+FFFD as in a terminal.
fn feed_utf8(term: &mut Terminal, carry: &mut Vec<u8>, mut input: &[u8]) {
    if let Some(&lead) = carry.first() {
        let width = match lead {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        };
        let need = width - carry.len();
        if input.len() < need {
            carry.extend_from_slice(input);
            return;
        }
        carry.extend_from_slice(&input[..need]);
        match std::str::from_utf8(carry) {
            Ok(s) => {
                term.feed(s);
                input = &input[need..];
            }
            // Not a character after all: replace the lead and read the rest anew.
            Err(_) => term.feed('\u{fffd}'),
        }
        carry.clear();
    }
    loop {
        match std::str::from_utf8(input) {
            Ok(s) => {
                term.feed(s);
                return;
            }
            Err(e) => {
                let (valid, after) = input.split_at(e.valid_up_to());
                if let Ok(s) = std::str::from_utf8(valid) {
                    term.feed(s);
                }
                match e.error_len() {
                    Some(n) => {
                        term.feed('\u{fffd}');
                        input = &after[n..];
                    }
                    None => {
                        carry.extend_from_slice(after);
                        return;
                    }
                }
            }
        }
    }
}

/// The primary screen's history, then avt's dump of both screens. Written to a reset
/// terminal of the same size: the history lines scroll into its scrollback, then the screen
/// is drawn from the top left.
fn dump(term: &Terminal) -> String {
    let (_, rows) = term.size();
    let primary = term.primary_screen();
    let history = primary.all_lines().count().saturating_sub(rows);
    let mut out = String::new();
    if history > 0 {
        let mut pen = Pen::default();
        for line in primary.all_lines().take(history) {
            let cells = line.cells();
            let len = if line.is_wrapped() {
                cells.len()
            } else {
                cells
                    .iter()
                    .rposition(|c| c.char() != ' ' || !c.pen().is_default())
                    .map_or(0, |i| i + 1)
            };
            for cell in &cells[..len] {
                if cell.width() == 0 {
                    continue;
                }
                if cell.pen() != &pen {
                    pen = *cell.pen();
                    write_sgr(&mut out, &pen);
                }
                out.push(cell.char());
            }
            if !line.is_wrapped() {
                if !pen.is_default() {
                    // A line feed that scrolls paints the new line with the background.
                    pen = Pen::default();
                    out.push_str("\x1b[m");
                }
                out.push_str("\r\n");
            }
        }
        if !pen.is_default() {
            out.push_str("\x1b[m");
        }
        // Push the last history line off the screen, then start drawing at the top.
        for _ in 1..rows {
            out.push('\n');
        }
        out.push_str("\x1b[H");
    }
    semicolon_sgr(&term.dump(), &mut out);
    out
}

/// avt writes extended colours in the colon form without a colour space (`38:2:r:g:b`),
/// which xterm.js reads as `38:2:<space>:r:g`; the semicolon form means the same everywhere.
fn semicolon_sgr(dump: &str, out: &mut String) {
    let mut rest = dump;
    while let Some(at) = rest.find("\x1b[") {
        out.push_str(&rest[..at + 2]);
        rest = &rest[at + 2..];
        let end = rest
            .bytes()
            .position(|b| !(b.is_ascii_digit() || b == b';' || b == b':'))
            .unwrap_or(rest.len());
        if rest.as_bytes().get(end) == Some(&b'm') {
            out.extend(rest[..end].chars().map(|c| if c == ':' { ';' } else { c }));
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
}

fn write_sgr(out: &mut String, pen: &Pen) {
    out.push_str("\x1b[0");
    for (on, code) in [
        (pen.is_bold(), "1"),
        (pen.is_faint(), "2"),
        (pen.is_italic(), "3"),
        (pen.is_underline(), "4"),
        (pen.is_blink(), "5"),
        (pen.is_inverse(), "7"),
        (pen.is_strikethrough(), "9"),
    ] {
        if on {
            out.push(';');
            out.push_str(code);
        }
    }
    for (color, base, bright, extended) in [
        (pen.foreground(), 30, 90, 38),
        (pen.background(), 40, 100, 48),
    ] {
        match color {
            None => {}
            Some(Color::Indexed(n)) if n < 8 => {
                let _ = write!(out, ";{}", base + u16::from(n));
            }
            Some(Color::Indexed(n)) if n < 16 => {
                let _ = write!(out, ";{}", bright + u16::from(n) - 8);
            }
            Some(Color::Indexed(n)) => {
                let _ = write!(out, ";{extended};5;{n}");
            }
            Some(Color::RGB(c)) => {
                let _ = write!(out, ";{extended};2;{};{};{}", c.r, c.g, c.b);
            }
        }
    }
    out.push('m');
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn text(screen: &mut Screen) -> Vec<String> {
        screen
            .terminal()
            .map(|t| t.screen().text())
            .unwrap_or_default()
    }

    #[test]
    fn utf8_cut_by_a_chunk_boundary_is_joined() {
        let mut screen = Screen::new(20, 3, 0);
        let bytes = "héllo → wörld".as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            screen.feed(i as u64, std::slice::from_ref(b));
        }
        assert_eq!(text(&mut screen)[0], "héllo → wörld");
        screen.feed(bytes.len() as u64, b"\r\n\xffx");
        assert_eq!(text(&mut screen)[1], "\u{fffd}x");
    }

    #[test]
    fn bytes_already_fed_are_not_fed_twice() {
        let mut screen = Screen::new(20, 3, 0);
        screen.feed(0, b"abc");
        screen.feed(1, b"bcdef");
        assert_eq!((text(&mut screen)[0].as_str(), screen.fed()), ("abcdef", 6));
    }

    #[test]
    fn modes_avt_ignores_are_restored_and_cut_sequences_count() {
        let mut screen = Screen::new(20, 3, 0);
        let stream = b"\x1b[?2004h\x1b[?1000;1006h\x1b=\x1b]0;my title\x07\x1b[?1000l\x1b[?10";
        screen.feed(0, stream);
        screen.feed(stream.len() as u64, b"02h");
        let snap = screen.snapshot();
        assert!(
            snap.bytes
                .starts_with("\x1bc\x1b[?1002h\x1b[?1006h\x1b[?2004h\x1b=\x1b]2;my title\x07"),
            "{:?}",
            snap.bytes
        );
        screen.feed(snap.offset, b"\x1bc");
        let b = screen.snapshot().bytes;
        assert!(
            !b.contains("2004h") && !b.contains("\x1b=") && !b.contains("title"),
            "{b:?}"
        );
    }

    #[test]
    fn a_compacted_model_is_the_same_model() {
        let mut screen = Screen::new(30, 5, 0);
        let mut stream = String::new();
        for i in 0..40 {
            stream.push_str(&format!(
                "\x1b[3{}mline {i}\x1b[m tail that wraps around the edge\r\n",
                i % 8
            ));
        }
        stream.push_str("\x1b[?1049h\x1b[2;3H\x1b[44malt\x1b[m");
        screen.feed(0, stream.as_bytes());
        let live = screen.snapshot();
        screen.compact();
        assert!(!screen.is_live());
        assert_eq!(screen.snapshot(), live);
        // Rehydrated, it goes on as before.
        screen.feed(live.offset, b"!");
        let mut reference = Screen::new(30, 5, 0);
        reference.feed(0, stream.as_bytes());
        reference.feed(live.offset, b"!");
        assert_eq!(screen.snapshot(), reference.snapshot());
    }

    #[test]
    fn true_colour_is_dumped_in_the_semicolon_form() {
        let mut screen = Screen::new(20, 3, 0);
        screen.feed(0, b"\x1b[?1049h\x1b[4;38;2;255;128;0mX");
        let snap = screen.snapshot();
        assert!(
            snap.bytes.contains("\x1b[38;2;255;128;0;4mX"),
            "{:?}",
            snap.bytes
        );
    }

    /// The fast path ends in exactly the state that feeding every byte does.
    #[test]
    fn skipping_text_that_scrolls_away_changes_nothing() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let cols = 37usize;
        let mut skipped = 0;
        for case in 0..12 {
            let mut stream = Vec::new();
            if case % 3 == 0 {
                stream.extend_from_slice(b"\x1b[1;33mcolour before\x1b[44m");
            }
            // A scroll region, auto-wrap off, insert or newline mode: the fast path must
            // stand aside (or the region be reset first, as `\x1b[r` and a full one do).
            stream.extend_from_slice(match case % 6 {
                1 => b"\x1b[3;8r\x1b[5H".as_slice(),
                2 => b"\x1b[?7l",
                4 => b"\x1b[3;8r\x1b[r\x1b[1;11r\x1b[4h\x1b[4l\x1b[20h\x1b[20l\x1b[?7l\x1b[?7h",
                5 => b"\x1b[4h",
                _ => b"",
            });
            while stream.len() < 400_000 {
                match rand(6) {
                    // A line of exactly the width, then LF alone: a pending wrap meets a LF.
                    0 => stream.extend(std::iter::repeat_n(b'w', cols).chain(*b"\n")),
                    1 => stream.extend_from_slice(b"\r\n"),
                    2 => stream.push(b'\n'),
                    3 => stream.push(b'\r'),
                    _ => {
                        let len = rand(if case % 2 == 0 { 200 } else { 3000 });
                        stream.extend((0..len).map(|i| b'!' + ((i + rand(90)) % 90) as u8));
                    }
                }
            }
            stream.extend_from_slice(b"\x1b[m tail\x1b[?2004h");
            let mut fast = Screen::new(cols as u16, 11, 0);
            let mut slow = Screen::new(cols as u16, 11, 0);
            slow.fast_path = false;
            for (i, chunk) in stream.chunks(150_000).enumerate() {
                fast.feed(fast.fed(), chunk);
                slow.feed(slow.fed(), chunk);
                // Deferred text is drawn at the size it was written for, and whenever the
                // model is read mid-stream.
                if case % 4 == 3 && i == 1 {
                    fast.resize_at(fast.fed(), cols as u16 + 13, 9);
                    slow.resize_at(slow.fed(), cols as u16 + 13, 9);
                }
                if rand(3) == 0 {
                    assert_eq!(fast.snapshot(), slow.snapshot(), "case {case} chunk {i}");
                }
            }
            assert_eq!(fast.snapshot(), slow.snapshot(), "case {case}");
            skipped += fast.skipped;
        }
        assert!(
            skipped > 1_000_000,
            "the fast path ran (skipped {skipped} bytes)"
        );
    }

    /// The walk as it was first written, a byte at a time: the reference for [`plain_cut`].
    fn plain_cut_bytewise(run: &[u8], col: usize, cols: usize, need: usize) -> Option<usize> {
        let walk = |at: &mut dyn FnMut(usize, usize) -> bool| -> usize {
            let mut col = col.min(cols);
            let mut known = true;
            let mut advances = 0usize;
            for (i, &b) in run.iter().enumerate() {
                match b {
                    b'\r' => {
                        col = 0;
                        known = true;
                    }
                    b'\n' => {
                        if col >= cols {
                            known = false;
                        }
                        advances += 1;
                        if known && col == 0 && !at(i + 1, advances) {
                            break;
                        }
                    }
                    _ => {
                        if col >= cols {
                            if known {
                                if !at(i, advances) {
                                    break;
                                }
                                advances += 1;
                            }
                            col = 0;
                        }
                        col += 1;
                    }
                }
            }
            advances
        };
        let total = walk(&mut |_, _| true);
        let limit = total.checked_sub(need)?;
        let mut best = None;
        walk(&mut |i, advances| {
            if advances > limit {
                return false;
            }
            best = Some(i);
            true
        });
        best
    }

    #[test]
    fn the_line_at_a_time_walk_cuts_where_the_byte_walk_does() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut cuts = 0;
        for _ in 0..3000 {
            let cols = 1 + rand(40) as usize;
            let mut run = Vec::new();
            let len = rand(600) as usize;
            while run.len() < len {
                match rand(7) {
                    0 => run.extend(std::iter::repeat_n(b'w', cols).chain(*b"\n")),
                    1 => run.extend_from_slice(b"\r\n"),
                    2 => run.push(b'\n'),
                    3 => run.push(b'\r'),
                    _ => run.extend((0..rand(3 * cols as u64 + 2)).map(|i| b'a' + (i % 26) as u8)),
                }
            }
            let col = rand(cols as u64 + 1) as usize;
            let need = rand(60) as usize;
            let want = plain_cut_bytewise(&run, col, cols, need);
            assert_eq!(
                plain_cut(&run, col, cols, need),
                want,
                "cols {cols} col {col} need {need} run {:?}",
                String::from_utf8_lossy(&run)
            );
            cuts += usize::from(want.is_some());
        }
        assert!(cuts > 500, "only {cuts} runs had a cut");
    }

    #[test]
    fn the_last_byte_that_is_not_plain_is_found_in_any_block() {
        let mut bytes = vec![b'x'; 300];
        assert_eq!(last_non_plain(&bytes), None);
        for at in [0, 1, 63, 64, 65, 127, 200, 236, 299] {
            bytes[at] = 0x1b;
            assert_eq!(last_non_plain(&bytes), Some(at), "at {at}");
        }
        assert_eq!(last_non_plain(b"\r\n ~\x7f"), Some(4));
        assert_eq!(last_non_plain(b""), None);
    }

    #[test]
    fn a_resize_applies_at_its_offset() {
        let mut screen = Screen::new(10, 3, 0);
        screen.feed(0, b"0123456789abc");
        screen.resize_at(13, 20, 3);
        screen.feed(13, b"\r\nxyz");
        let snap = screen.snapshot();
        assert_eq!((snap.cols, snap.rows, snap.offset), (20, 3, 18));
        assert_eq!(&text(&mut screen)[..2], ["0123456789abc", "xyz"]);
    }
}
