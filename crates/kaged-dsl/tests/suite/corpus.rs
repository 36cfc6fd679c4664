//! Golden diagnostics: each file in `tests/corpus/` has exactly one fault, and
//! `tests/corpus/EXPECTED` holds the one line it must produce:
//! `file code line:column pointer` (`-` for the document root).

use pretty_assertions::assert_eq;

use super::fixture;

#[test]
fn every_broken_corpus_file_yields_exactly_its_expected_diagnostic() {
    let dir = fixture::crate_dir().join("tests/corpus");
    let table = std::fs::read_to_string(dir.join("EXPECTED")).unwrap();
    let expected: Vec<String> = table
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();

    let mut actual = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    names.sort();
    for path in names {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        // A real prompt file exists so that only the deliberate fault is reported.
        let project = fixture::project(&text, None, &[(".kaged/prompts/primary.md", "hi")]);
        let diags = kaged_dsl::load_project(project.path())
            .expect_err(&format!("{name} must not validate"));
        for (code, line, col, pointer) in fixture::summary(&diags) {
            let pointer = if pointer.is_empty() {
                "-".into()
            } else {
                pointer
            };
            actual.push(format!("{name} {code} {line}:{col} {pointer}"));
        }
    }
    assert_eq!(actual.join("\n"), expected.join("\n"));
}
