//! The two output forms of a diagnostic: the CLI line and the JSON for `--json` / the API.

use std::path::Path;

use pretty_assertions::assert_eq;
use serde_json::json;

use kaged_dsl::parse_project_str;

const TWO_FAULTS: &str = "version: 1\nproject: Bad\nprimary:\n  command: [bash]\n  cage:\n    fs:\n      - {path: /srv/data, access: ro}\n";

#[test]
fn display_is_file_line_col_code_message_pointer() {
    let err = parse_project_str(Path::new("p/.kaged/project.yaml"), TWO_FAULTS).unwrap_err();
    let lines: Vec<String> = err.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "p/.kaged/project.yaml:2:10: bad_slug: project \"Bad\" is not a slug: use 2–64 \
             lowercase letters, digits and inner dashes, e.g. `my-app` (at /project)",
            "p/.kaged/project.yaml:7:16: absolute_path: `/srv/data` is an absolute host path, \
             which exists only on one machine; use project:/… (in the project) or config:/… \
             (the operator's kaged config directory) (at /primary/cage/fs/0/path)",
        ]
    );
    assert_eq!(err.to_string(), lines.join("\n"));
}

#[test]
fn json_is_a_list_of_flat_objects() {
    let err = parse_project_str(Path::new("p.yaml"), TWO_FAULTS).unwrap_err();
    let v = serde_json::to_value(&err).unwrap();
    assert_eq!(v[0]["file"], json!("p.yaml"));
    assert_eq!(v[0]["line"], json!(2));
    assert_eq!(v[0]["column"], json!(10));
    assert_eq!(v[0]["code"], json!("bad_slug"));
    assert_eq!(v[0]["pointer"], json!("/project"));
    assert_eq!(v.as_array().unwrap().len(), 2);
}

#[test]
fn the_root_pointer_is_empty_in_json_and_slash_on_screen() {
    let err = parse_project_str(Path::new("p.yaml"), "project: ok\n").unwrap_err();
    assert_eq!(err.iter().next().unwrap().pointer, "");
    assert!(err.to_string().ends_with("(at /)"), "{err}");
}

#[test]
fn pointers_escape_slashes_and_tildes() {
    let err = parse_project_str(
        Path::new("p.yaml"),
        "version: 1\nproject: ok\ntasks:\n  \"a/b~c\":\n    command: [x]\n",
    )
    .unwrap_err();
    assert_eq!(err.iter().next().unwrap().pointer, "/tasks/a~1b~0c");
}

#[test]
fn a_tab_in_the_indentation_is_reported_where_the_tab_is() {
    // saphyr marks these at the scalar before the tab's line, or past the tab.
    let cases = [
        (
            concat!(
                "version: 1\nproject: ok\nprimary:\n  command: [bash]\n",
                "  cage:\n    network: none\n\tfs: []\n",
            ),
            "p.yaml:7:1",
        ),
        (
            "version: 1\nprimary:\n  command: [bash]\n  \tmodel: fast\nproject: ok\n",
            "p.yaml:4:3",
        ),
        (
            "version: 1\nproject: ok\nprimary:\n  command:\n  \t- bash\n",
            "p.yaml:5:3",
        ),
    ];
    for (yaml, at) in cases {
        let err = parse_project_str(Path::new("p.yaml"), yaml).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{at}: yaml_syntax: YAML syntax error: a tab in the indentation; indent with \
                 spaces, not tabs (at /)"
            ),
            "{yaml:?}"
        );
    }
}

#[test]
fn other_syntax_errors_keep_their_position_and_message() {
    let err = parse_project_str(
        Path::new("p.yaml"),
        "version: 1\nproject: ok\nprimary: {command: [bash,\n\t}\n",
    )
    .unwrap_err();
    let d = err.iter().next().unwrap();
    assert_eq!((d.line, d.column), (4, 2));
    assert!(d.message.ends_with("; fix the YAML here"), "{}", d.message);
}

#[test]
fn worktree_keys_are_checked_where_they_are_written() {
    let yaml = "version: 1\nproject: ok\nprimary:\n  command: [bash]\n  workspace: tree\n  base: \"-main\"\n  branch: \"kaged/{agent}/{run}\"\n";
    let err = parse_project_str(Path::new("p.yaml"), yaml).unwrap_err();
    let lines: Vec<String> = err.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "p.yaml:5:14: bad_value: workspace must be one of project, worktree, not \"tree\" \
             (at /primary/workspace)",
            "p.yaml:6:9: bad_value: base \"-main\" is not a branch name git accepts: it starts \
             with `-` (at /primary/base)",
            "p.yaml:7:11: bad_value: unknown placeholder {run} in branch template \
             \"kaged/{agent}/{run}\"; only {agent} and {n} exist (at /primary/branch)",
        ]
    );
    let ok = "version: 1\nproject: ok\ntasks:\n  fix:\n    command: [make]\n    workspace: worktree\n    base: main\n    branch: \"fix/{n}\"\n";
    let p = parse_project_str(Path::new("p.yaml"), ok).unwrap();
    let task = &p.tasks["fix"];
    assert_eq!(
        (task.workspace, task.base.as_deref(), task.branch.as_deref()),
        (
            kaged_dsl::Workspace::Worktree,
            Some("main"),
            Some("fix/{n}")
        )
    );
}
