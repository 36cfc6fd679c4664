//! The scrollback ring: the one copy of a session's recent output that every viewer reads from.
//!
//! Bytes are addressed by a monotonically increasing offset from the start of the session, so a
//! viewer is just a cursor and never owns a queue. Chunks are the reader's coalesced reads, kept
//! as `Bytes`, so a viewer that keeps up gets a zero-copy clone.
//!
//! The ring must never drop bytes the transcript writer has not persisted yet (the transcript on
//! disk is complete by contract), so eviction stops at `persisted`; the reader is throttled
//! instead (see `unpersisted`).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// What each chunk costs beyond its bytes (deque slot, `Bytes` header, allocator rounding).
/// Charged against the cap so that a stream of one-byte chunks cannot hold far more memory
/// than the configured scrollback.
pub(crate) const CHUNK_OVERHEAD: usize = 64;

/// The outcome of reading the ring at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RingRead {
    /// The requested bytes were evicted; the oldest byte still held is `to`.
    Gap { from: u64, to: u64 },
    /// Bytes starting at `offset`.
    Data { offset: u64, bytes: Bytes },
    /// Nothing newer than the offset yet.
    CaughtUp,
}

#[derive(Debug)]
pub(crate) struct Ring {
    /// `(start offset, bytes)`, contiguous and in order.
    chunks: VecDeque<(u64, Bytes)>,
    start: u64,
    end: u64,
    charged: usize,
    cap: usize,
    persisted: u64,
    /// Set when the transcript can no longer be written: eviction then ignores `persisted`
    /// rather than holding memory for a writer that will never catch up.
    persist_disabled: bool,
    /// Set once the storage was dropped after the transcript took over (exited sessions).
    released: bool,
}

impl Ring {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            chunks: VecDeque::new(),
            start: 0,
            end: 0,
            charged: 0,
            cap,
            persisted: 0,
            persist_disabled: false,
            released: false,
        }
    }

    /// A ring for a session whose bytes live only in its transcript (past sessions).
    pub(crate) fn released_at(end: u64, cap: usize) -> Self {
        let mut ring = Self::new(cap);
        ring.start = end;
        ring.end = end;
        ring.persisted = end;
        ring.released = true;
        ring
    }

    /// An empty ring whose next byte has offset `at`: a session adopted from its holder
    /// carries on at the offsets its transcript ends with.
    pub(crate) fn resumed_at(at: u64, cap: usize) -> Self {
        let mut ring = Self::new(cap);
        ring.start = at;
        ring.end = at;
        ring.persisted = at;
        ring
    }

    #[cfg(test)]
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Where a viewer that names no offset starts: the oldest byte held, or, once the bytes
    /// live only in the transcript, about one scrollback's worth before the end (what the
    /// ring would have held).
    pub(crate) fn default_start(&self) -> u64 {
        if self.released {
            self.end.saturating_sub(self.cap as u64)
        } else {
            self.start
        }
    }

    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    pub(crate) fn is_released(&self) -> bool {
        self.released
    }

    /// Bytes appended but not yet written to the transcript.
    pub(crate) fn unpersisted(&self) -> u64 {
        self.end - self.persisted
    }

    pub(crate) fn persisted(&self) -> u64 {
        self.persisted
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Memory charged against the cap (bytes plus per-chunk overhead).
    #[cfg(test)]
    pub(crate) fn charged(&self) -> usize {
        self.charged
    }

    pub(crate) fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let len = bytes.len();
        self.chunks.push_back((self.end, bytes));
        self.end += len as u64;
        self.charged += len + CHUNK_OVERHEAD;
        if self.persist_disabled {
            self.persisted = self.end;
        }
        self.evict();
    }

    /// Records that the transcript holds every byte below `upto`, and evicts what that allows.
    pub(crate) fn mark_persisted(&mut self, upto: u64) {
        self.persisted = self.persisted.max(upto.min(self.end));
        self.evict();
    }

    /// Stops waiting for the transcript: from now on the ring evicts by the cap alone.
    pub(crate) fn disable_persistence(&mut self) {
        self.persist_disabled = true;
        self.persisted = self.end;
        self.evict();
    }

    /// Drops the storage; every byte is now only in the transcript.
    pub(crate) fn release(&mut self) {
        self.chunks = VecDeque::new();
        self.start = self.end;
        self.charged = 0;
        self.released = true;
    }

    fn evict(&mut self) {
        // The newest chunk always stays, even when it alone exceeds a tiny cap, so that a
        // viewer that keeps up can still read it.
        while self.charged > self.cap && self.chunks.len() > 1 {
            let Some((offset, front)) = self.chunks.front() else {
                break;
            };
            let front_end = offset + front.len() as u64;
            if front_end > self.persisted {
                break;
            }
            self.charged -= front.len() + CHUNK_OVERHEAD;
            self.start = front_end;
            self.chunks.pop_front();
        }
    }

    /// Reads from `from`, returning at most `max` bytes (at least one whole chunk's tail when
    /// that is all there is). A viewer that keeps up gets a zero-copy slice of one chunk; one
    /// that is behind gets several chunks joined into one frame so it catches up in fewer
    /// sends.
    pub(crate) fn read(&self, from: u64, max: usize) -> RingRead {
        if from < self.start {
            return RingRead::Gap {
                from,
                to: self.start,
            };
        }
        if from >= self.end {
            return RingRead::CaughtUp;
        }
        let idx = self
            .chunks
            .partition_point(|(offset, bytes)| offset + bytes.len() as u64 <= from);
        let Some((offset, first)) = self.chunks.get(idx) else {
            return RingRead::CaughtUp;
        };
        let skip = (from - offset) as usize;
        let first = first.slice(skip..);
        if first.len() >= max || idx + 1 == self.chunks.len() {
            let take = first.len().min(max.max(1));
            return RingRead::Data {
                offset: from,
                bytes: first.slice(..take),
            };
        }
        let want = ((self.end - from) as usize).min(max);
        let mut joined = BytesMut::with_capacity(want);
        joined.extend_from_slice(&first);
        for (_, chunk) in self.chunks.range(idx + 1..) {
            let room = want - joined.len();
            if room == 0 {
                break;
            }
            joined.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        RingRead::Data {
            offset: from,
            bytes: joined.freeze(),
        }
    }

    /// The unpersisted chunks from `from`, at most about `max` bytes, for one transcript write.
    pub(crate) fn unpersisted_chunks(&self, max: usize) -> Vec<Bytes> {
        let from = self.persisted;
        let idx = self
            .chunks
            .partition_point(|(offset, bytes)| offset + bytes.len() as u64 <= from);
        let mut out = Vec::new();
        let mut total = 0usize;
        for (offset, chunk) in self.chunks.range(idx..) {
            if total >= max {
                break;
            }
            let skip = from.saturating_sub(*offset) as usize;
            let part = chunk.slice(skip..);
            total += part.len();
            out.push(part);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn data(offset: u64, s: &str) -> RingRead {
        RingRead::Data {
            offset,
            bytes: Bytes::copy_from_slice(s.as_bytes()),
        }
    }

    #[test]
    fn offsets_grow_monotonically_and_reads_resume_mid_chunk() {
        let mut ring = Ring::new(1 << 20);
        ring.push(Bytes::from_static(b"hello "));
        ring.push(Bytes::from_static(b"world"));
        assert_eq!((ring.start(), ring.end()), (0, 11));
        assert_eq!(ring.read(0, 1024), data(0, "hello world"));
        assert_eq!(ring.read(3, 1024), data(3, "lo world"));
        assert_eq!(ring.read(6, 1024), data(6, "world"));
        assert_eq!(ring.read(8, 2), data(8, "rl"));
        assert_eq!(ring.read(11, 1024), RingRead::CaughtUp);
    }

    #[test]
    fn a_viewer_that_keeps_up_gets_the_chunk_itself() {
        let mut ring = Ring::new(1 << 20);
        ring.push(Bytes::from_static(b"abc"));
        let chunk = Bytes::from(vec![7u8; 100]);
        let ptr = chunk.as_ptr();
        ring.push(chunk);
        match ring.read(3, 1 << 16) {
            RingRead::Data { offset, bytes } => {
                assert_eq!(offset, 3);
                assert_eq!(bytes.as_ptr(), ptr, "expected a zero-copy slice");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn eviction_waits_for_the_transcript_then_reports_gaps() {
        let cap = 2 * (10 + CHUNK_OVERHEAD);
        let mut ring = Ring::new(cap);
        for i in 0..5u8 {
            ring.push(Bytes::from(vec![b'a' + i; 10]));
        }
        // Nothing persisted: nothing may be evicted, whatever the cap says.
        assert_eq!((ring.start(), ring.end(), ring.unpersisted()), (0, 50, 50));
        let first = ring.unpersisted_chunks(usize::MAX);
        assert_eq!(first.iter().map(Bytes::len).sum::<usize>(), 50);

        ring.mark_persisted(30);
        assert_eq!(ring.start(), 30);
        assert_eq!(ring.read(5, 1024), RingRead::Gap { from: 5, to: 30 });
        assert_eq!(ring.read(30, 1024), data(30, "ddddddddddeeeeeeeeee"));
        ring.mark_persisted(50);
        assert_eq!(ring.start(), 30);
        assert_eq!(ring.charged(), cap);
    }

    #[test]
    fn unpersisted_chunks_start_mid_chunk_and_respect_the_batch_size() {
        let mut ring = Ring::new(1 << 20);
        ring.push(Bytes::from_static(b"0123456789"));
        ring.push(Bytes::from_static(b"abcdefghij"));
        ring.push(Bytes::from_static(b"KLMNOPQRST"));
        ring.mark_persisted(4);
        let batch: Vec<u8> = ring.unpersisted_chunks(8).concat();
        assert_eq!(batch, b"456789abcdefghij".to_vec());
    }

    #[test]
    fn tiny_chunks_are_charged_their_overhead() {
        let mut ring = Ring::new(10 * (1 + CHUNK_OVERHEAD));
        ring.disable_persistence();
        for _ in 0..100 {
            ring.push(Bytes::from_static(b"x"));
        }
        assert_eq!((ring.start(), ring.end()), (90, 100));
    }

    #[test]
    fn the_newest_chunk_stays_even_above_the_cap() {
        let mut ring = Ring::new(4);
        ring.disable_persistence();
        ring.push(Bytes::from_static(b"first"));
        ring.push(Bytes::from_static(b"second"));
        assert_eq!(ring.read(0, 100), RingRead::Gap { from: 0, to: 5 });
        assert_eq!(ring.read(5, 100), data(5, "second"));
    }

    #[test]
    fn lagging_reads_join_chunks_up_to_the_frame_limit() {
        let mut ring = Ring::new(1 << 20);
        for s in ["ab", "cd", "ef", "gh"] {
            ring.push(Bytes::copy_from_slice(s.as_bytes()));
        }
        assert_eq!(ring.read(1, 5), data(1, "bcdef"));
        assert_eq!(ring.read(1, 100), data(1, "bcdefgh"));
    }

    #[test]
    fn release_drops_storage_but_keeps_offsets() {
        let mut ring = Ring::new(1 << 20);
        ring.push(Bytes::from_static(b"abc"));
        ring.mark_persisted(3);
        ring.release();
        assert!(ring.is_released());
        assert_eq!((ring.start(), ring.end(), ring.charged()), (3, 3, 0));
        assert_eq!(ring.default_start(), 0);
        let past = Ring::released_at(42, 10);
        assert_eq!((past.start(), past.end(), past.unpersisted()), (42, 42, 0));
        assert_eq!(past.default_start(), 32);
    }
}
