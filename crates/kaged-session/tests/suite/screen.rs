//! The terminal model: a screen viewer gets the screen, then the stream from exactly there;
//! a gap brings the screen back; the model agrees with tmux on the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use kaged_session::{Snapshot, ViewerEvent};
use pretty_assertions::assert_eq;

use super::fixture::{Fixture, contains, read_until};

/// What tmux shows after `bytes` are written to a `cols`×`rows` pane: the screen and the last
/// `history` lines above it, with attributes (`capture-pane -e -p`), the cursor and whether
/// the alternate screen is on.
fn tmux_view(dir: &Path, name: &str, bytes: &[u8], cols: u16, rows: u16, history: usize) -> String {
    let file = dir.join(format!("{name}.bytes"));
    std::fs::write(&file, bytes).unwrap();
    let socket = dir.join(format!("{name}.tmux"));
    let tmux = |args: &[&str]| {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env("HOME", dir)
            .env("SHELL", "/bin/sh")
            .env_remove("TMUX")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // Raw output (no ONLCR), so the pane gets exactly these bytes.
    let cmd = format!(
        "stty -opost -echo; cat '{}'; tmux -S '{}' wait-for -S fed; sleep 600",
        file.display(),
        socket.display()
    );
    let (c, r) = (cols.to_string(), rows.to_string());
    tmux(&["new-session", "-d", "-x", &c, "-y", &r, &cmd]);
    tmux(&["set-option", "-g", "history-limit", "5000"]);
    tmux(&["wait-for", "fed"]);
    let start = format!("-{history}");
    let history = tmux(&["capture-pane", "-e", "-p", "-N", "-S", &start, "-E", "-1"]);
    let screen = tmux(&["capture-pane", "-e", "-p", "-N"]);
    let state = tmux(&[
        "display-message",
        "-p",
        "#{cursor_x},#{cursor_y} alt=#{alternate_on}",
    ]);
    tmux(&["kill-server"]);
    normalize_palette(&format!(
        "{state}--- history\n{history}--- screen\n{screen}"
    ))
}

/// `capture-pane -e` output as cells: each line as `(char, attributes)` with trailing plain
/// blanks dropped. tmux prints the same screen in more than one way (where an attribute
/// change falls between lines, `48;5;1` or `41` for one palette colour, a written blank or
/// an empty cell); cells are what the screen is.
fn normalize_palette(s: &str) -> String {
    #[derive(Clone, Default, PartialEq, Debug)]
    struct Attr {
        fg: String,
        bg: String,
        flags: std::collections::BTreeSet<u16>,
    }
    fn palette(base: u16, n: u16) -> String {
        if n < 8 {
            (base + n).to_string()
        } else if n < 16 {
            (base + 60 + n - 8).to_string()
        } else {
            format!("{base}+{n}")
        }
    }
    let mut attr = Attr::default();
    let mut lines = Vec::new();
    for line in s.split('\n') {
        let mut cells: Vec<(char, Attr)> = Vec::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\x1b' {
                cells.push((c, attr.clone()));
                continue;
            }
            if chars.next() != Some('[') {
                continue;
            }
            let mut body = String::new();
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
                body.push(c);
            }
            let ps: Vec<u16> = body.split(';').map(|p| p.parse().unwrap_or(0)).collect();
            let mut i = 0;
            while i < ps.len() {
                match ps[i] {
                    0 => attr = Attr::default(),
                    n @ (1..=9) => {
                        attr.flags.insert(n);
                    }
                    n @ (21..=29) => {
                        let off: &[u16] = if n == 22 { &[1, 2] } else { &[n - 20] };
                        for f in off {
                            attr.flags.remove(f);
                        }
                    }
                    n @ (30..=37) => attr.fg = palette(30, n - 30),
                    n @ (90..=97) => attr.fg = palette(30, n - 90 + 8),
                    n @ (40..=47) => attr.bg = palette(40, n - 40),
                    n @ (100..=107) => attr.bg = palette(40, n - 100 + 8),
                    39 => attr.fg.clear(),
                    49 => attr.bg.clear(),
                    n @ (38 | 48) => {
                        let base = if n == 38 { 30 } else { 40 };
                        let color = match ps.get(i + 1) {
                            Some(5) => {
                                i += 2;
                                palette(base, ps.get(i).copied().unwrap_or(0))
                            }
                            Some(2) => {
                                i += 4;
                                format!("{base}rgb{:?}", &ps[i - 2..=i.min(ps.len() - 1)])
                            }
                            _ => String::new(),
                        };
                        if n == 38 {
                            attr.fg = color
                        } else {
                            attr.bg = color
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        while cells.last().is_some_and(|(c, a)| {
            *c == ' ' && a.bg.is_empty() && !a.flags.contains(&7) && !a.flags.contains(&4)
        }) {
            cells.pop();
        }
        lines.push(
            cells
                .iter()
                .map(|(c, a)| {
                    format!(
                        "{c}{}",
                        if *a == Attr::default() {
                            String::new()
                        } else {
                            format!("[{}/{}/{:?}]", a.fg, a.bg, a.flags)
                        }
                    )
                })
                .collect::<String>(),
        );
    }
    lines.join("\n")
}

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn first_screen(viewer: &mut kaged_session::Viewer) -> Snapshot {
    match viewer.next().await.unwrap() {
        ViewerEvent::Screen(snapshot) => snapshot,
        other => panic!("expected the screen first, got {other:?}"),
    }
}

/// Colours, attributes, a scroll of history, then a painted alternate screen with the cursor
/// left mid-screen: what a full-screen TUI does.
const PAINT: &str = r#"seq 1 3000 | sed 's/^\(.*\)$/\x1b[3\1%8m\1 line\x1b[m/' | tr -d '%'
printf '\033[1;32mgreen bold\033[m \033[4;38;2;255;128;0munder orange\033[m\n'
printf '\033[?1049h\033[?2004h\033[?1000;1006h\033]2;paint\007\033[2J\033[H'
for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do printf '\033[%d;%dH\033[48;5;%dm  \033[m' $((i / 8 + 2)) $((i % 8 * 3 + 2)) $i; done
printf '\033[7;3H\033[44;97m+--box--+\033[8;3H|  in   |\033[9;3H+-------+\033[m\033[12;10H\033[2;35mdim\033[m \033[9mstruck\033[m\033[6;20H'
printf 'PAINTED'
read line
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_viewer_gets_the_screen_then_the_stream_from_exactly_there() {
    if !have_tmux() {
        eprintln!("skipped: tmux is not installed (./dev test_packages installs it)");
        return;
    }
    // A small ring, so most of the output is known to the model only.
    let fx = Fixture::with(|cfg| cfg.scrollback_bytes = 128 << 10);
    let s = fx.spawn(&[
        "/bin/sh",
        "-c",
        &format!("{PAINT}\nprintf 'AFTER\\n'; read line"),
    ]);
    let mut watcher = s.attach(Some(0));
    let mut raw = read_until(&mut watcher, |b| b.ends_with(b"PAINTED"))
        .await
        .bytes;

    let mut viewer = s.attach_screen(None, Some((80, 24)));
    let snapshot = first_screen(&mut viewer).await;
    assert_eq!((snapshot.cols, snapshot.rows), (80, 24));
    assert_eq!(
        snapshot.offset,
        s.info().bytes_total,
        "the screen stands for every byte so far"
    );
    // The transcript is written in batches; wait for this one.
    let transcript = loop {
        let t = std::fs::read(s.transcript_path()).unwrap();
        if t.len() as u64 >= snapshot.offset {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };

    // The same bytes through tmux, and the model's dump through tmux, look the same.
    let dir = fx.home.path();
    let want = tmux_view(dir, "stream", &transcript, 80, 24, 1000);
    let got = tmux_view(dir, "snapshot", snapshot.bytes.as_bytes(), 80, 24, 1000);
    assert!(want.contains("PAINTED") && want.contains("alt=1"), "{want}");
    assert_eq!(got, want);

    // Then the live stream, from exactly the snapshot's offset.
    s.write_input(b"\n").await.unwrap();
    let live = read_until(&mut viewer, |b| contains(b, b"AFTER")).await;
    assert_eq!(live.gaps, vec![]);
    raw.extend(
        read_until(&mut watcher, |b| contains(b, b"AFTER"))
            .await
            .bytes,
    );
    assert!(raw[snapshot.offset as usize..].starts_with(&live.bytes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_viewer_that_falls_behind_gets_the_gap_then_the_screen() {
    let fx = Fixture::with(|cfg| cfg.scrollback_bytes = 256 << 10);
    let s = fx.spawn(&[
        "/bin/sh",
        "-c",
        "read line; seq 1 400000; printf 'DO%s\\n' NE; read line",
    ]);
    let mut slow = s.attach_screen(None, Some((100, 30)));
    let first = first_screen(&mut slow).await;
    let mut fast = s.attach(None);
    s.write_input(b"\n").await.unwrap();
    read_until(&mut fast, |b| b.ends_with(b"DONE\r\n")).await;

    let gap = slow.next().await.unwrap();
    let ViewerEvent::Gap { from, to } = gap else {
        panic!("expected a gap, got {gap:?}");
    };
    assert!(from >= first.offset && to > from);
    let snapshot = first_screen(&mut slow).await;
    assert_eq!(
        snapshot.offset, to,
        "the stream goes on where the screen stands"
    );
    assert_eq!((snapshot.cols, snapshot.rows), (100, 30));
    assert!(
        snapshot.bytes.contains("DONE"),
        "the screen is current: {:?}",
        &snapshot.bytes[snapshot.bytes.len().saturating_sub(300)..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_recently_active_viewer_sets_the_size_until_it_leaves() {
    let fx = Fixture::new();
    let s = fx.spawn(&["/bin/sh", "-c", "read line"]);
    let mut desktop = s.attach_screen(None, Some((120, 40)));
    first_screen(&mut desktop).await;
    assert_eq!((s.info().cols, s.info().rows), (120, 40));
    let mut phone = s.attach_screen(None, Some((40, 50)));
    let on_phone = first_screen(&mut phone).await;
    assert_eq!(
        (on_phone.cols, on_phone.rows),
        (40, 50),
        "the phone's screen is at its size"
    );
    assert_eq!(
        desktop.next().await.unwrap(),
        ViewerEvent::Size { cols: 40, rows: 50 }
    );
    // The desktop types: it is active again.
    desktop.activate();
    assert_eq!(
        desktop.next().await.unwrap(),
        ViewerEvent::Size {
            cols: 120,
            rows: 40
        }
    );
    phone.activate();
    assert_eq!(
        desktop.next().await.unwrap(),
        ViewerEvent::Size { cols: 40, rows: 50 }
    );
    drop(phone);
    assert_eq!(
        desktop.next().await.unwrap(),
        ViewerEvent::Size {
            cols: 120,
            rows: 40
        }
    );
    assert_eq!((s.info().cols, s.info().rows), (120, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vim_through_the_model_looks_as_it_does_through_tmux() {
    if !have_tmux() || !Path::new("/usr/bin/vim").exists() {
        eprintln!("skipped: tmux or vim is not installed (./dev test_packages installs both)");
        return;
    }
    let fx = Fixture::with(|cfg| cfg.scrollback_bytes = 64 << 10);
    let file = fx.home.path().join("notes.py");
    let text: String = (0..80)
        .map(|i| {
            format!(
                "def f{i}(x):\n    return x * {i}  # \"{}\"\n",
                "s".repeat(i % 30)
            )
        })
        .collect();
    std::fs::write(&file, text).unwrap();
    let mut spec = fx.spec(&[
        "/bin/sh",
        "-c",
        "seq 1 3000; printf 'before vim\\n'; exec vim -N -u NONE -i NONE -c 'syntax on' -c 'set number hlsearch ruler' -c '/return' notes.py",
    ]);
    for (k, v) in &mut spec.env {
        if k == "TERM" {
            *v = "xterm-256color".into();
        }
    }
    let s = fx.mgr.spawn(spec).unwrap();
    let mut watcher = s.attach(Some(0));
    read_until(&mut watcher, |b| contains(b, b"notes.py")).await;
    // Let vim finish drawing.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let snapshot = s.snapshot().unwrap();
    let transcript = loop {
        let t = std::fs::read(s.transcript_path()).unwrap();
        if t.len() as u64 >= snapshot.offset {
            break t[..snapshot.offset as usize].to_vec();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let dir = fx.home.path();
    let want = tmux_view(dir, "vim-stream", &transcript, 80, 24, 1000);
    let got = tmux_view(dir, "vim-snapshot", snapshot.bytes.as_bytes(), 80, 24, 1000);
    assert!(
        want.contains("alt=1") && snapshot.bytes.contains("\"notes.py\" 160L"),
        "{want}"
    );
    assert_eq!(got, want);
    s.terminate();
}
