//! Durable sessions: `kill -9` of a daemon running `n` caged sessions, a new daemon on the
//! same state dir, and how long until it has adopted them all (`readyz`: adoption happens
//! before it serves) and until a viewer gets the first screen of one of them (log-in and
//! attach included). The goal: 100 sessions, first screen within 1 s of the kill.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kaged_api::SessionList;

use crate::kaged::{Kaged, KagedOpts};

pub struct Adopted {
    /// From the new daemon's start to its `readyz` 200, with every session adopted.
    pub ready: Duration,
    /// From the kill to the first output bytes of the last session started, on a viewer
    /// that logged in and attached after the restart.
    pub first_screen: Duration,
    pub adopted: usize,
}

/// Each session prints a screenful, then waits for input.
const SCREEN: &str = "seq 1 40; exec cat";

pub fn once(bin: &Path, project: &Path, config: Option<String>, n: usize) -> Result<Adopted> {
    let opts = |on_stop: &str| KagedOpts {
        bin,
        command: "start",
        args: Vec::new(),
        env: vec![("KAGED_SESSIONS_ON_STOP".into(), on_stop.into())],
        config: config.clone(),
        login: true,
    };
    let (k, _) = Kaged::start(&opts("keep"))?;
    k.api.load_project(project)?;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(k.api.create_session(&["sh", "-c", SCREEN])?);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for id in &ids {
        while k.api.session(id)?.bytes_total < 100 {
            if Instant::now() > deadline {
                bail!("session {id} printed nothing in time; {}", k.log_tail());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // The new daemon ends the sessions when the bench stops it.
    let (k, killed_at, ready) = k.kill9_and_restart(&opts("end"))?;
    let last = ids.last().cloned().unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = k.attach(&last, Some(0)).await?;
        term.first_data(Duration::from_secs(10)).await
    })?;
    let first_screen = killed_at.elapsed();
    let list: SessionList = k.api.sessions()?;
    let adopted = list
        .sessions
        .iter()
        .filter(|s| s.adopted_at.is_some() && ids.contains(&s.id))
        .count();
    k.stop(Duration::from_secs(60));
    Ok(Adopted {
        ready,
        first_screen,
        adopted,
    })
}
