//! The project file's model (design §9, ADR-0011) and the API's view of a loaded project.
//!
//! These types are also the source of the JSON Schema served at `GET /api/v1/dsl/schema`, so
//! the schema and the parser describe one format. Values are normalised: defaults are filled
//! in (an omitted `cage` is the default policy), paths are lexically cleaned, `walltime` is
//! seconds and `memory` is bytes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::cage::{Cage, ENV_NAME_PATTERN, PortablePath};
use crate::timestamp::Timestamp;
use crate::worktree::Workspace;

/// The directory inside a project root that holds the project files.
pub const PROJECT_DIR: &str = ".kaged";
/// The project file, inside [`PROJECT_DIR`].
pub const PROJECT_FILE: &str = "project.yaml";
/// The optional, gitignored overlay, inside [`PROJECT_DIR`].
pub const OVERLAY_FILE: &str = "project.local.yaml";

/// `project` slugs: lowercase, digits and inner dashes, 2 to 64 characters.
pub const SLUG_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$";
/// Agent, task and plugin names.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";
/// Model aliases: no `:` or `/`, which is what keeps concrete `provider:model` ids out.
pub const ALIAS_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";
/// Longest allowed `description`, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 280;

/// A whole project: `<root>/.kaged/project.yaml` with its overlay applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "kaged project",
    description = "A portable kaged project (.kaged/project.yaml). Nothing in it is \
                   operator-local: model aliases, paths and credentials are resolved by each \
                   operator's local.toml."
)]
pub struct Project {
    /// Format version; only `1` exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// The project's slug.
    #[schemars(regex(pattern = SLUG_PATTERN))]
    pub project: String,
    /// One line for humans, at most 280 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 280))]
    pub description: Option<String>,
    /// The agent (or shell) a session of this project runs by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<AgentSpec>,
    /// Named runnable commands (test, lint, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub tasks: BTreeMap<String, Task>,
    /// Supervised plugin subprocesses (ADR-0008).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<Plugin>,
}

/// An agent: what to run, with which model alias and prompt, in which cage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// A model alias (e.g. `fast`) that the operator's local.toml maps to a concrete id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ALIAS_PATTERN))]
    pub model: Option<String>,
    /// The system prompt file, a `project:/` path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^project:/"))]
    pub system_prompt: Option<PortablePath>,
    /// The program to run, as an argv (no shell parsing).
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub command: Vec<String>,
    /// The cage policy, or `"disabled"` to run uncaged (audited).
    #[serde(default)]
    pub cage: Cage,
    /// Tools the agent may use; `agent:NAME` delegates to the child agent NAME.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1)))]
    pub tools: Vec<String>,
    /// Child agents by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub agents: BTreeMap<String, AgentSpec>,
    /// `worktree`: each run gets its own git worktree on a new branch (default `project`:
    /// the project's own checkout).
    #[serde(default, skip_serializing_if = "Workspace::is_project")]
    pub workspace: Workspace,
    /// The branch a worktree starts from; default: the branch checked out in the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The worktree's branch, a template with `{agent}` and `{n}`; default
    /// `kaged/{agent}/{n}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// A declared command, started as a session in its own cage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// The program to run, as an argv.
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 280))]
    pub description: Option<String>,
    #[serde(default)]
    pub cage: Cage,
    /// Extra environment for the task. Values are literal and portable; credentials never
    /// belong here (allowlist the variable's name under `cage.env` instead).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": ENV_NAME_PATTERN }))]
    pub env: BTreeMap<String, String>,
    /// `worktree`: each run gets its own git worktree on a new branch (default `project`:
    /// the project's own checkout).
    #[serde(default, skip_serializing_if = "Workspace::is_project")]
    pub workspace: Workspace,
    /// The branch a worktree starts from; default: the branch checked out in the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The worktree's branch, a template with `{agent}` and `{n}`; default
    /// `kaged/{agent}/{n}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// A plugin: a supervised subprocess speaking JSON-RPC over stdio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub name: String,
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub command: Vec<String>,
}

impl Project {
    /// Every agent with its dotted name: `primary`, `primary.reviewer`, ... in a stable
    /// order, for listing and for starting sessions.
    pub fn agents(&self) -> Vec<(String, &AgentSpec)> {
        fn walk<'a>(name: String, spec: &'a AgentSpec, out: &mut Vec<(String, &'a AgentSpec)>) {
            for (child, c) in &spec.agents {
                walk(format!("{name}.{child}"), c, out);
            }
            out.push((name, spec));
        }
        let mut out = Vec::new();
        if let Some(p) = &self.primary {
            walk("primary".into(), p, &mut out);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// An agent's model alias that the operator's `local.toml` does not define.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct UnknownAlias {
    /// Dotted agent name, e.g. `primary.reviewer`.
    pub agent: String,
    pub alias: String,
}

/// A declared agent, as something to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct AgentView {
    /// Dotted name: `primary`, `primary.reviewer`.
    pub name: String,
    pub command: Vec<String>,
    pub model: Option<String>,
    pub caged: bool,
    pub cage: Cage,
    /// Where a run works unless the start says otherwise.
    pub workspace: Workspace,
}

/// A declared task, as something to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct TaskView {
    pub name: String,
    pub command: Vec<String>,
    pub description: Option<String>,
    pub caged: bool,
    pub cage: Cage,
    /// Where a run works unless the start says otherwise.
    pub workspace: Workspace,
}

/// A loaded project: its file, what can be started from it, and its model aliases resolved
/// against this operator's `local.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct ProjectView {
    /// The project's slug.
    pub id: String,
    pub name: String,
    /// The canonical project directory on this host.
    #[ts(type = "string")]
    pub root: PathBuf,
    pub description: Option<String>,
    pub agents: Vec<AgentView>,
    pub tasks: Vec<TaskView>,
    /// Alias → concrete model id, for the aliases that resolve.
    pub models: BTreeMap<String, String>,
    pub unknown_model_aliases: Vec<UnknownAlias>,
    pub loaded_at: Timestamp,
    pub loaded_by: String,
    /// The project file as parsed, defaults filled in.
    pub definition: Project,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct ProjectList {
    pub projects: Vec<ProjectView>,
}

/// `POST /api/v1/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct LoadProject {
    /// The project's root directory: absolute, holding `.kaged/project.yaml`.
    #[ts(type = "string")]
    pub path: PathBuf,
}

/// `DELETE /api/v1/projects/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct Unloaded {
    pub unloaded: String,
}
