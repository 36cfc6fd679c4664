//! Any text must come back as a project or as diagnostics: never a panic, a hang, or
//! unbounded memory (libFuzzer's -rss_limit_mb and -timeout catch the last two).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("fuzz/.kaged/project.yaml");
    match kaged_dsl::parse_project_str(file, text) {
        Ok(project) => {
            // A valid project must serialise, and the result must read back unchanged.
            let json = serde_json_roundtrip(&project);
            assert_eq!(json, project);
        }
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty());
            for d in &diagnostics {
                assert!(d.line >= 1 && d.column >= 1, "{d}");
            }
        }
    }
    let _ = kaged_dsl::document_json(file, text);
});

fn serde_json_roundtrip(p: &kaged_dsl::Project) -> kaged_dsl::Project {
    let v = serde_json::to_value(p).unwrap();
    serde_json::from_value(v).unwrap()
}
