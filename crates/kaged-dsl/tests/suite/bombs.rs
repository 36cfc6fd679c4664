//! Hostile input is refused quickly, with one clear diagnostic, before it can allocate
//! much: oversized files, deep nesting and alias expansion are all bounded.

use std::path::Path;
use std::time::{Duration, Instant};

use kaged_dsl::{Code, MAX_FILE_BYTES, load_project, parse_project_str};

use super::fixture;

const QUICK: Duration = Duration::from_millis(500);

fn billion_laughs(levels: usize) -> String {
    let mut s = String::from(
        "version: 1\nproject: lol\nl0: &l0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
    );
    for i in 1..levels {
        let refs = vec![format!("*l{}", i - 1); 9].join(", ");
        s.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
    }
    s
}

#[test]
fn billion_laughs_is_refused_in_well_under_a_second() {
    let yaml = billion_laughs(10); // 9^10 ≈ 3.5 billion "lol"s if expanded
    let start = Instant::now();
    let err = parse_project_str(Path::new("lol.yaml"), &yaml).unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(err.codes(), vec![Code::AliasBomb]);
    assert!(elapsed < QUICK, "took {elapsed:?}");
}

#[test]
fn a_flat_flood_of_aliases_is_refused_too() {
    let mut yaml = String::from("version: 1\nproject: lol\nx: &x lol\ny: [");
    yaml.push_str(&vec!["*x"; 50_000].join(","));
    yaml.push_str("]\n");
    let start = Instant::now();
    let err = parse_project_str(Path::new("flood.yaml"), &yaml).unwrap_err();
    assert_eq!(err.codes(), vec![Code::AliasBomb]);
    assert!(start.elapsed() < QUICK * 2, "took {:?}", start.elapsed());
}

#[test]
fn modest_aliases_are_fine() {
    let yaml = "version: 1\nproject: shared\ntasks:\n  a:\n    command: [make, a]\n    cage: &cage {network: none, limits: {walltime: 10m}}\n  b:\n    command: [make, b]\n    cage: *cage\n";
    let p = parse_project_str(Path::new("ok.yaml"), yaml).unwrap();
    assert_eq!(p.tasks["a"].cage, p.tasks["b"].cage);
}

#[test]
fn deep_flow_nesting_is_refused_quickly() {
    let depth = 200_000;
    let yaml = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let start = Instant::now();
    let err = parse_project_str(Path::new("deep.yaml"), &yaml).unwrap_err();
    assert!(start.elapsed() < QUICK, "took {:?}", start.elapsed());
    // Either our depth bound or the scanner's own recursion limit stops it first.
    assert!(
        matches!(err.codes().as_slice(), [Code::TooDeep] | [Code::YamlSyntax]),
        "{err}"
    );
}

#[test]
fn deep_block_nesting_is_refused_at_the_depth_limit() {
    let mut yaml = String::new();
    for i in 0..100 {
        yaml.push_str(&" ".repeat(i));
        yaml.push_str("k:\n");
    }
    let err = parse_project_str(Path::new("deep.yaml"), &yaml).unwrap_err();
    assert_eq!(err.codes(), vec![Code::TooDeep]);
    let d = err.iter().next().unwrap();
    assert_eq!((d.line, d.column), (65, 65), "{d}");
}

#[test]
fn oversized_string_input_is_refused_before_parsing() {
    let yaml = format!(
        "version: 1\nproject: big\ndescription: \"{}\"\n",
        "x".repeat(MAX_FILE_BYTES as usize)
    );
    let start = Instant::now();
    let err = parse_project_str(Path::new("big.yaml"), &yaml).unwrap_err();
    assert!(start.elapsed() < QUICK);
    assert_eq!(err.codes(), vec![Code::TooLarge]);
}

#[test]
fn oversized_project_file_on_disk_is_refused_without_reading_it_all() {
    let dir = fixture::project("version: 1\nproject: big\n", None, &[]);
    let path = dir.path().join(".kaged/project.yaml");
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.set_len(64 * MAX_FILE_BYTES).unwrap(); // sparse: 64 MiB of NULs
    let start = Instant::now();
    let err = load_project(dir.path()).unwrap_err();
    assert!(start.elapsed() < QUICK);
    assert_eq!(err.codes(), vec![Code::TooLarge]);
    assert!(
        err.to_string().contains(&(64 * MAX_FILE_BYTES).to_string()),
        "{err}"
    );
}

#[test]
fn a_flood_of_problems_is_capped_with_a_count_of_the_rest() {
    let mut yaml = String::from("version: 1\nproject: noisy\n");
    for i in 0..1000 {
        yaml.push_str(&format!("junk{i}: 1\n"));
    }
    let err = parse_project_str(Path::new("noisy.yaml"), &yaml).unwrap_err();
    assert_eq!(err.len(), kaged_dsl::MAX_DIAGNOSTICS + 1);
    let last = err.iter().last().unwrap();
    assert_eq!(last.code, Code::TooManyProblems);
    assert!(last.message.starts_with("800 more problems"), "{last}");
}

#[test]
fn non_utf8_is_reported_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".kaged")).unwrap();
    std::fs::write(
        dir.path().join(".kaged/project.yaml"),
        b"version: 1\nproject: x\xff\n",
    )
    .unwrap();
    let err = load_project(dir.path()).unwrap_err();
    assert_eq!(
        fixture::summary(&err),
        vec![("yaml_syntax".into(), 2, 11, String::new())]
    );
}

/// Wide documents must not go quadratic (duplicate-key checks and overlay merges once
/// did: 76 s and 14 s for these inputs). A release build parses 1 MiB in about 0.2 s; the
/// bound is loose because tests run unoptimised on a shared 2-core machine.
const LINEAR: Duration = Duration::from_secs(12);

#[test]
fn a_megabyte_of_distinct_keys_parses_in_linear_time() {
    let mut yaml = String::from("version: 1\nproject: wide\ntasks:\n");
    let mut i = 0;
    while yaml.len() < MAX_FILE_BYTES as usize - 64 {
        yaml.push_str(&format!("  t{i}: {{command: [x]}}\n"));
        i += 1;
    }
    let start = Instant::now();
    let p = parse_project_str(Path::new("wide.yaml"), &yaml).unwrap();
    assert_eq!(p.tasks.len(), i);
    assert!(start.elapsed() < LINEAR, "took {:?}", start.elapsed());
}

#[test]
fn a_wide_overlay_over_a_wide_project_merges_in_linear_time() {
    let mut base = String::from("version: 1\nproject: wide\ntasks:\n");
    let mut over = String::from("tasks:\n");
    for i in 0..30_000 {
        base.push_str(&format!("  t{i}: {{command: [x]}}\n"));
        over.push_str(&format!("  t{i}: {{description: d}}\n"));
    }
    let dir = fixture::project(&base, Some(&over), &[]);
    let start = Instant::now();
    let p = load_project(dir.path()).unwrap();
    assert_eq!(p.tasks["t29999"].description.as_deref(), Some("d"));
    assert!(start.elapsed() < LINEAR, "took {:?}", start.elapsed());
}
