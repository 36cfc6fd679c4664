//! Transcripts and metadata on disk: complete, private, and readable after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;

use kaged_session::{EndReason, SessionManager, SessionState};
use pretty_assertions::assert_eq;

use super::fixture::{Fixture, config, contains, read_to_end, read_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transcript_is_complete_after_a_large_output() {
    let fx = Fixture::new();
    let s = fx.spawn(&["/bin/sh", "-c", "head -c 20000000 /dev/urandom | base64"]);
    let info = s.wait().await;
    // 20 000 000 bytes -> 26 666 668 base64 characters in 350 878 lines of at most 76,
    // each ended by "\r\n" on a terminal.
    let expected_total = 26_666_668 + 2 * 350_878;
    assert_eq!(info.bytes_total, expected_total);
    assert!(info.transcript_complete);
    let on_disk = std::fs::read(s.transcript_path()).unwrap();
    assert_eq!(on_disk.len() as u64, expected_total);
    let payload = on_disk
        .iter()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .count();
    assert_eq!(payload, 26_666_668);
    assert!(on_disk.ends_with(b"\r\n"));

    let head = s.read_transcript(0, 1000).await.unwrap();
    assert_eq!(&head[..], &on_disk[..1000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_manager_lists_past_sessions_and_replays_their_transcripts() {
    let fx = Fixture::new();
    let done = fx.spawn(&["/bin/sh", "-c", "echo persisted-output; exit 5"]);
    let done_info = done.wait().await;
    let running = fx.spawn(&["/bin/sh", "-c", "echo still-running; sleep 100"]);
    let mut v = running.attach(None);
    read_until(&mut v, |b| contains(b, b"still-running\r\n")).await;
    // Wait for the transcript batch to reach the disk, as it would before a crash.
    while running.read_transcript(0, 100).await.unwrap().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // A second manager over the same directory, as after a daemon restart.
    let again = SessionManager::open(config(&fx.sessions_dir())).unwrap();
    let listed = again.list(Some("proj"));
    assert_eq!(listed.len(), 2);
    let past_done = listed.iter().find(|i| i.id == done.id()).unwrap();
    assert_eq!(past_done, &done_info);
    let past_running = listed.iter().find(|i| i.id == running.id()).unwrap();
    assert_eq!(
        (
            past_running.state,
            past_running.end_reason,
            past_running.transcript_complete,
            past_running.bytes_total
        ),
        (
            SessionState::Exited,
            Some(EndReason::DaemonRestart),
            false,
            b"still-running\r\n".len() as u64
        )
    );
    assert_eq!(again.list(Some("other")), vec![]);

    for from in [Some(0), None] {
        let past = again.get(done.id()).unwrap();
        let replayed = read_to_end(&mut past.attach(from)).await;
        assert_eq!(replayed.bytes, b"persisted-output\r\n");
        assert_eq!(replayed.exit, Some((Some(5), None)));
    }
    assert!(matches!(
        again.get(done.id()).unwrap().write_input(b"x").await,
        Err(kaged_session::SessionError::NotRunning { .. })
    ));

    fx.mgr.shutdown().await;
    assert_eq!(running.info().end_reason, Some(EndReason::Shutdown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_files_are_private() {
    let fx = Fixture::new();
    let s = fx.spawn(&["/bin/sh", "-c", "echo secret"]);
    s.wait().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = fx.sessions_dir().join(s.id());
    assert_eq!(
        (
            mode(&fx.sessions_dir()),
            mode(&dir),
            mode(&dir.join("meta.json")),
            mode(&dir.join("transcript"))
        ),
        (0o700, 0o700, 0o600, 0o600)
    );
    assert_eq!(s.id().len(), 32);
    assert!(s.id().bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_that_cannot_be_written_is_reported_and_viewers_lose_nothing() {
    let fx = Fixture::new();
    let s = fx.spawn(&["/bin/sh", "-c", "read line; seq 1 3000"]);
    let mut v = s.attach(Some(0));
    // Root ignores permission bits, so break the file by putting a directory in its place.
    std::fs::remove_file(s.transcript_path()).unwrap();
    std::fs::create_dir(s.transcript_path()).unwrap();
    s.write_input(b"\n").await.unwrap();
    let seen = read_to_end(&mut v).await;
    let mut expected = b"\r\n".to_vec();
    expected.extend_from_slice(&super::fixture::seq_output(3000));
    assert!(
        seen.bytes == expected,
        "{:?}",
        String::from_utf8_lossy(&seen.bytes)
    );
    assert_eq!(seen.exit, Some((Some(0), None)));
    let info = s.wait().await;
    assert_eq!(
        (info.transcript_complete, info.bytes_total),
        (false, expected.len() as u64)
    );
    // The scrollback is kept, since the transcript cannot stand in for it.
    let replay = read_to_end(&mut s.attach(Some(0))).await;
    assert!(replay.bytes == expected);
}
