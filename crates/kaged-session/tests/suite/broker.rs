//! The broker: one reader, a ring with offsets, and viewers that never hold each other up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kaged_session::ViewerEvent;
use pretty_assertions::assert_eq;

use super::fixture::{Fixture, contains, read_to_end, read_until, seq_output};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_command_output_reaches_the_viewer() {
    let fx = Fixture::new();
    let s = fx.shell();
    let mut v = s.attach(None);
    read_until(&mut v, |b| b.ends_with(b"$ ")).await;
    s.write_input(b"echo hi\n").await.unwrap();
    let seen = read_until(&mut v, |b| contains(b, b"\r\nhi\r\n")).await;
    assert!(seen.gaps.is_empty());
    s.write_input(b"exit 3\n").await.unwrap();
    let rest = read_to_end(&mut v).await;
    assert_eq!(rest.exit, Some((Some(3), None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_viewers_both_see_every_byte() {
    let fx = Fixture::new();
    let s = fx.spawn(&["/bin/sh", "-c", "seq 1 20000"]);
    let mut a = s.attach(Some(0));
    let mut b = s.attach(Some(0));
    let (sa, sb) = tokio::join!(read_to_end(&mut a), read_to_end(&mut b));
    let expected = seq_output(20000);
    assert_eq!(sa.bytes.len(), expected.len());
    assert!(sa.bytes == expected, "viewer a saw different bytes");
    assert!(sb.bytes == expected, "viewer b saw different bytes");
    assert_eq!((sa.gaps, sa.exit), (vec![], Some((Some(0), None))));
    assert_eq!((sb.gaps, sb.exit), (vec![], Some((Some(0), None))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_never_reads_stalls_nothing_and_later_gets_a_gap() {
    let fx = Fixture::with(|cfg| cfg.scrollback_bytes = 1 << 20);
    let mut expected = seq_output(800_000);
    expected.extend_from_slice(b"DONE\r\n");
    // About 5.3 MB of output, then the shell waits for a line so the session stays live.
    let s = fx.spawn(&[
        "/bin/sh",
        "-c",
        "seq 1 800000; printf 'DO%s\\n' NE; read line; echo bye",
    ]);
    let mut stalled = s.attach(Some(0));
    let mut fast = s.attach(Some(0));
    let seen = read_until(&mut fast, |b| b.ends_with(b"DONE\r\n")).await;
    assert_eq!(
        seen.gaps,
        vec![],
        "the fast viewer kept up and lost nothing"
    );
    assert!(
        seen.bytes == expected,
        "the fast viewer saw different bytes"
    );

    let first = stalled.next().await.unwrap();
    let ViewerEvent::Gap { from, to } = first else {
        panic!("expected a gap first, got {first:?}");
    };
    assert_eq!(from, 0);
    assert!(
        to > 0 && to < expected.len() as u64,
        "gap {from}..{to} of {}",
        expected.len()
    );
    let tail = read_until(&mut stalled, |b| b.ends_with(b"DONE\r\n")).await;
    assert!(
        tail.bytes == expected[to as usize..],
        "after the gap the viewer resumes from the oldest byte held"
    );

    s.write_input(b"\n").await.unwrap();
    let end = read_to_end(&mut fast).await;
    assert!(contains(&end.bytes, b"bye\r\n"));
    assert_eq!(end.exit, Some((Some(0), None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattach_from_an_offset_replays_exactly() {
    let fx = Fixture::new();
    let s = fx.spawn(&["/bin/sh", "-c", "seq 1 5000; read line"]);
    let mut first = s.attach(None);
    let expected = seq_output(5000);
    let full = read_until(&mut first, |b| b.len() >= expected.len()).await;
    assert!(full.bytes == expected);
    drop(first);

    for offset in [0u64, 1, 1234, expected.len() as u64 - 1] {
        let mut again = s.attach(Some(offset));
        assert_eq!(again.offset(), offset);
        let seen = read_until(&mut again, |b| {
            b.len() as u64 >= expected.len() as u64 - offset
        })
        .await;
        assert!(
            seen.bytes == expected[offset as usize..],
            "replay from {offset} differs"
        );
    }
    // An offset beyond the end (say, from before a restart) starts at the end.
    let beyond = s.attach(Some(u64::MAX));
    assert_eq!(beyond.offset(), expected.len() as u64);

    s.write_input(b"\n").await.unwrap();
    let info = s.wait().await;
    // After the exit the bytes come from the transcript, still by offset.
    let mut late = s.attach(Some(1234));
    let seen = read_to_end(&mut late).await;
    assert_eq!(seen.bytes.len() as u64, info.bytes_total - 1234);
    assert!(seen.bytes.starts_with(&expected[1234..]));
    assert_eq!(seen.exit, Some((Some(0), None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_reaches_the_child() {
    let fx = Fixture::new();
    let s = fx.shell();
    let mut v = s.attach(None);
    read_until(&mut v, |b| b.ends_with(b"$ ")).await;
    s.write_input(b"stty size\n").await.unwrap();
    read_until(&mut v, |b| contains(b, b"24 80\r\n")).await;
    s.resize(100, 40).unwrap();
    assert_eq!((s.info().cols, s.info().rows), (100, 40));
    s.write_input(b"stty size\n").await.unwrap();
    read_until(&mut v, |b| contains(b, b"40 100\r\n")).await;
    s.terminate();
    s.wait().await;
}
