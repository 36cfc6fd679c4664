//! The smoke mode runs against the real binaries, so the benchmark keeps working. It checks
//! that the tool measured something sane (every byte counted, nothing lost); it never asserts
//! on timings, which belong to the benchmark, not to a test.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BENCH: &str = env!("CARGO_BIN_EXE_kaged-bench");

/// The real `kaged` binary, freshly built next to this test's own binaries.
///
/// `CARGO_BIN_EXE_kaged` exists only inside the kaged package, and cargo has no stable
/// artifact dependencies, so the test asks cargo itself (the same cargo that runs it, same
/// profile, same target dir). When the workspace is already built this is a no-op check.
fn kaged_binary() -> PathBuf {
    let bench = Path::new(BENCH);
    let profile_dir = bench.parent().expect("kaged-bench lives in a profile dir");
    let target_dir = profile_dir
        .parent()
        .expect("the profile dir lives in a target dir");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "kaged",
        "--bin",
        "kaged",
        "--target-dir",
    ])
    .arg(target_dir)
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build -p kaged");
    assert!(status.success(), "cargo build -p kaged failed: {status}");
    let kaged = profile_dir.join("kaged");
    assert!(kaged.is_file(), "no kaged binary at {}", kaged.display());
    kaged
}

fn values(r: &Value, target: &str, metric: &str) -> Vec<f64> {
    r["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter(|s| s["target"] == target && s["metric"] == metric)
        .filter_map(|s| s["value"].as_f64())
        .collect()
}

fn one(r: &Value, target: &str, metric: &str) -> f64 {
    let v = values(r, target, metric);
    assert_eq!(
        v.len(),
        1,
        "{target}/{metric}: expected one sample, got {v:?}"
    );
    v[0]
}

#[test]
fn smoke_run_counts_every_byte_through_the_raw_pty_kaged_and_terminado() {
    let kaged = kaged_binary();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("results.json");
    let md = dir.path().join("BENCHMARKS.md");
    let out = Command::new(BENCH)
        .arg("smoke")
        .arg("--kaged")
        .arg(&kaged)
        .arg("--work")
        .arg(dir.path().join("work"))
        .arg("--json")
        .arg(&json)
        .arg("--out")
        .arg(&md)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kaged-bench smoke failed:\n{stderr}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["errors"], serde_json::json!([]), "{stderr}");
    assert_eq!(r["meta"]["file_bytes"], 1 << 20);

    // Terminado runs when its venv exists (scripts/bench installs it); the tool says when not.
    let terminado = !values(&r, "terminado", "throughput_mibs").is_empty();
    if !terminado {
        eprintln!("terminado was skipped: {}", r["meta"]["skipped"]);
    }
    let mut targets = vec!["raw", "kaged"];
    if terminado {
        targets.push("terminado");
    }
    for t in &targets {
        // Bytes counted between the markers == the file's size, and every byte matched.
        assert_eq!(one(&r, t, "throughput_bytes"), f64::from(1 << 20), "{t}");
        assert_eq!(
            one(&r, t, "throughput_file_bytes"),
            f64::from(1 << 20),
            "{t}"
        );
        assert_eq!(
            one(&r, t, "throughput_intact"),
            1.0,
            "{t}: bytes lost or changed"
        );
        assert!(one(&r, t, "throughput_mibs") > 0.0, "{t}");
        assert_eq!(one(&r, t, "echo_samples"), 50.0, "{t}");
        let (p50, p99) = (one(&r, t, "echo_p50_ms"), one(&r, t, "echo_p99_ms"));
        assert!(p50 > 0.0 && p50 <= p99, "{t}: p50 {p50} p99 {p99}");
    }
    for t in targets.iter().filter(|t| **t != "raw") {
        assert!(one(&r, t, "cpu_ms_per_mib") >= 0.0, "{t}");
        // 1 MiB fits the scrollback: every one of the 50 viewers keeps up.
        assert_eq!(one(&r, t, "fanout_viewers"), 50.0, "{t}");
        assert_eq!(one(&r, t, "fanout_intact"), 50.0, "{t}");
        assert_eq!(one(&r, t, "slow_fast_intact"), 1.0, "{t}");
        assert!(one(&r, t, "slow_read_mib") > 0.0, "{t}");
        for n in [0, 1, 5] {
            assert!(one(&r, t, &format!("idle_rss_mib_{n}")) > 1.0, "{t} at {n}");
        }
        assert!(one(&r, t, "start_ms") > 0.0, "{t}");
        assert_eq!(values(&r, t, "cold_readyz_ms").len(), 2, "{t}");
    }
    assert_eq!(one(&r, "kaged", "slow_transcript_complete"), 1.0);
    for m in ["start_bash_ms", "start_bwrap_bash_ms", "bwrap_true_ms"] {
        assert!(one(&r, "raw", m) > 0.0, "{m}");
    }
    // The auth-cost section runs whenever wrk is installed: the ungated baseline is this
    // bench binary's own `serve-ungated`, nothing else to build.
    let wrk = Command::new("wrk").arg("--version").output().is_ok();
    if !wrk {
        eprintln!("the auth cost was skipped: {}", r["meta"]["skipped"]);
    }
    for mode in ["ungated", "loopback", "sidecar", "insecure"] {
        let rps = values(&r, mode, "status_rps");
        assert!(!wrk || !rps.is_empty(), "{mode}: no auth-cost sample");
        for v in rps {
            assert!(v > 0.0, "{mode}");
        }
        let cpu = values(&r, mode, "status_cpu_us");
        assert!(!wrk || !cpu.is_empty(), "{mode}: no CPU-per-request sample");
        for v in cpu {
            assert!(v.is_finite() && v >= 0.0, "{mode}: CPU per request {v}");
        }
    }
    // The gate in memory needs nothing installed: it runs in every smoke run.
    for mode in ["loopback", "sidecar", "insecure"] {
        for metric in ["gate_us", "gate_us_ungated_pair"] {
            let v = values(&r, mode, metric);
            assert!(!v.is_empty(), "{mode}: no {metric} sample");
            assert!(v.iter().all(|x| *x > 0.0), "{mode} {metric}: {v:?}");
        }
    }
    // Durable sessions: every session of the killed daemon was adopted by the next one.
    assert_eq!(
        one(&r, "kaged", "adopt_adopted"),
        one(&r, "kaged", "adopt_sessions")
    );
    assert!(one(&r, "kaged", "adopt_first_screen_ms") > 0.0);
    let table = std::fs::read_to_string(&md).unwrap();
    assert!(table.contains("kaged-bench:begin") && table.contains("| throughput, `cat` 1 MiB"));
}
