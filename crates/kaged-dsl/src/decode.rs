//! Walks the merged document into the typed [`Project`], reporting every problem instead of
//! stopping at the first (which is why this is not a serde `Deserialize`).
//!
//! On a problem a field falls back to its default and the walk goes on; the caller throws
//! the result away whenever anything was reported, so the fallbacks are never seen.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::diag::{Code, Sink, child_pointer};
use kaged_api::worktree::{Workspace, branch_template_problem, ref_name_problem};
use kaged_api::{EnvNameError, check_env_name};

use crate::portability::{
    concrete_model_reason, holds_secret_value, is_secret_key, symlink_escape,
};
use crate::yaml::{Entry, Node, Value};
use crate::{
    Access, AgentSpec, ByteSize, Cage, CagePolicy, EgressRules, FsGrant, HostPattern,
    LimitEnforcement, Limits, MAX_CPU, MAX_DESCRIPTION_CHARS, MAX_PIDS, Network, PathError,
    PathScheme, Plugin, PortablePath, Project, State, Task, Walltime,
};

const TOP_KEYS: &[&str] = &[
    "version",
    "project",
    "description",
    "primary",
    "tasks",
    "plugins",
];
const AGENT_KEYS: &[&str] = &[
    "model",
    "system_prompt",
    "command",
    "cage",
    "tools",
    "agents",
    "workspace",
    "base",
    "branch",
];
const TASK_KEYS: &[&str] = &[
    "command",
    "description",
    "cage",
    "env",
    "workspace",
    "base",
    "branch",
];
const PLUGIN_KEYS: &[&str] = &["name", "command"];
const POLICY_KEYS: &[&str] = &[
    "fs",
    "network",
    "state",
    "limits",
    "env",
    "writable_policy_and_git_hooks",
];
const GRANT_KEYS: &[&str] = &["path", "access"];
const NETWORK_KEYS: &[&str] = &["allow", "deny"];
const LIMIT_KEYS: &[&str] = &["walltime", "memory", "pids", "cpu", "enforce"];

pub(crate) struct Decoder<'s, 'a> {
    pub sink: &'s mut Sink<'a>,
    /// Canonical project root, when the project is on disk (enables file checks).
    pub root: Option<&'s Path>,
}

/// A present, non-null value. `key: ~` means the same as leaving the key out, which is
/// also how the overlay removes keys.
fn field<'n>(entries: &'n [Entry], key: &str) -> Option<&'n Node> {
    entries
        .iter()
        .find(|e| e.key == key)
        .map(|e| &e.value)
        .filter(|v| !matches!(v.value, Value::Null))
}

fn display_scalar(node: &Node) -> String {
    match &node.value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => format!("{s:?}"),
        Value::Seq(_) => "a list".into(),
        Value::Map(_) => "a mapping".into(),
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

pub(crate) fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (2..=64).contains(&b.len())
        && edge(b[0])
        && edge(b[b.len() - 1])
        && b.iter().all(|&c| edge(c) || c == b'-')
}

pub(crate) fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Home directories are the clearest sign of an operator-local path in an argv.
fn home_path(arg: &str) -> bool {
    ["/home/", "/Users/", "/root/", "~/"]
        .iter()
        .any(|p| arg.starts_with(p))
        || arg == "~"
}

impl Decoder<'_, '_> {
    fn report(&mut self, node: &Node, code: Code, ptr: &str, message: String) {
        self.sink.push(node.pos, code, ptr, message);
    }

    /// The entries of a mapping, after reporting keys outside `allowed`.
    fn entries<'n>(
        &mut self,
        node: &'n Node,
        ptr: &str,
        what: &str,
        allowed: &[&str],
    ) -> Option<&'n [Entry]> {
        let Value::Map(entries) = &node.value else {
            self.report(
                node,
                Code::TypeMismatch,
                ptr,
                format!("{what} must be a mapping, not {}", node.kind()),
            );
            return None;
        };
        for e in entries {
            if allowed.contains(&e.key.as_str()) {
                continue;
            }
            // A secret-looking key with a value is reported once, as a credential.
            if is_secret_key(&e.key) && holds_secret_value(&e.value) {
                continue;
            }
            if e.key == "<<" {
                self.sink.push(
                    e.key_pos,
                    Code::UnknownKey,
                    &child_pointer(ptr, &e.key),
                    "YAML merge keys (`<<`) are not supported; alias the whole value \
                     (`cage: *shared`) or write the keys out"
                        .to_string(),
                );
                continue;
            }
            let hint = allowed
                .iter()
                .map(|a| (levenshtein(&e.key, a), a))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, a)| format!("did you mean `{a}`? "))
                .unwrap_or_default();
            self.sink.push(
                e.key_pos,
                Code::UnknownKey,
                &child_pointer(ptr, &e.key),
                format!(
                    "unknown key `{}` in {what}; {hint}allowed keys are: {}",
                    e.key,
                    allowed.join(", ")
                ),
            );
        }
        Some(entries)
    }

    fn required<'n>(
        &mut self,
        map: &Node,
        entries: &'n [Entry],
        key: &str,
        ptr: &str,
        what: &str,
        hint: &str,
    ) -> Option<&'n Node> {
        let found = field(entries, key);
        if found.is_none() {
            self.report(
                map,
                Code::MissingKey,
                ptr,
                format!("{what} needs `{key}`: {hint}"),
            );
        }
        found
    }

    fn string(&mut self, node: &Node, ptr: &str, what: &str) -> String {
        match &node.value {
            Value::Str(s) => s.clone(),
            _ => {
                let quote = match node.value {
                    Value::Bool(_) | Value::Int(_) | Value::Float(_) => "; quote it",
                    _ => "",
                };
                self.report(
                    node,
                    Code::TypeMismatch,
                    ptr,
                    format!("{what} must be a string, not {}{quote}", node.kind()),
                );
                String::new()
            }
        }
    }

    fn description(&mut self, node: &Node, ptr: &str) -> String {
        let s = self.string(node, ptr, "description");
        let n = s.chars().count();
        if n > MAX_DESCRIPTION_CHARS {
            self.report(
                node,
                Code::TooLong,
                ptr,
                format!(
                    "description is {n} characters; at most {MAX_DESCRIPTION_CHARS} are \
                     allowed, shorten it (longer text belongs in a README)"
                ),
            );
        }
        s
    }

    fn argv(&mut self, node: &Node, ptr: &str) -> Vec<String> {
        let items = match &node.value {
            Value::Seq(items) => items,
            Value::Str(s) => {
                self.report(
                    node,
                    Code::TypeMismatch,
                    ptr,
                    format!(
                        "command must be an argv list, not a string (no shell splits it); \
                         write it as {:?}",
                        s.split_whitespace().collect::<Vec<_>>()
                    ),
                );
                return Vec::new();
            }
            _ => {
                self.report(
                    node,
                    Code::TypeMismatch,
                    ptr,
                    format!(
                        "command must be an argv list such as [\"bash\", \"-l\"], not {}",
                        node.kind()
                    ),
                );
                return Vec::new();
            }
        };
        if items.is_empty() {
            self.report(
                node,
                Code::EmptyCommand,
                ptr,
                "command is empty; give at least the program to run, e.g. [\"bash\"]".into(),
            );
        }
        let mut argv = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let p = child_pointer(ptr, &i.to_string());
            let arg = self.string(item, &p, "a command argument");
            if matches!(item.value, Value::Str(_)) && arg.is_empty() {
                self.report(
                    item,
                    Code::EmptyCommand,
                    &p,
                    "an empty command argument is almost always a mistake; remove it".into(),
                );
            } else if home_path(&arg) {
                self.report(
                    item,
                    Code::AbsolutePath,
                    &p,
                    format!(
                        "`{arg}` is a path in one operator's home directory and does not exist \
                         on other machines (nor in the cage); refer to files in the project \
                         relative to the working directory"
                    ),
                );
            }
            argv.push(arg);
        }
        argv
    }

    fn path(&mut self, node: &Node, ptr: &str, what: &str, project_only: bool) -> PortablePath {
        let s = self.string(node, ptr, what);
        let allowed = if project_only {
            "project:/…"
        } else {
            "project:/… (in the project) or config:/… (the operator's kaged config directory)"
        };
        let fallback = PortablePath::project_root;
        if !matches!(node.value, Value::Str(_)) {
            return fallback();
        }
        let p = match PortablePath::parse(&s) {
            Ok(p) => p,
            Err(PathError::Absolute) => {
                self.report(
                    node,
                    Code::AbsolutePath,
                    ptr,
                    format!(
                        "`{s}` is an absolute host path, which exists only on one machine; \
                         use {allowed}"
                    ),
                );
                return fallback();
            }
            Err(PathError::Naked) => {
                let rest = s.split_once(':').map_or(s.as_str(), |(_, r)| r);
                let rest = rest.trim_start_matches('/');
                self.report(
                    node,
                    Code::NakedPath,
                    ptr,
                    format!(
                        "`{s}` is not a portable path; write `project:/{rest}` for a file in \
                         the project (allowed: {allowed})"
                    ),
                );
                return fallback();
            }
            Err(PathError::Escape) => {
                self.report(
                    node,
                    Code::PathEscape,
                    ptr,
                    format!(
                        "`{s}` climbs out of its root with `..`; a project may only refer to \
                         files inside it"
                    ),
                );
                return fallback();
            }
        };
        if project_only && p.scheme() == PathScheme::Config {
            self.report(
                node,
                Code::BadValue,
                ptr,
                format!("{what} must be a project:/ path, so it travels with the project"),
            );
        }
        if let (Some(root), PathScheme::Project) = (self.root, p.scheme())
            && let Some(link) = symlink_escape(root, p.relative())
        {
            self.report(
                node,
                Code::SymlinkEscape,
                ptr,
                format!(
                    "`{s}` goes through the symlink `project:/{link}`, which points \
                     outside the project; other machines and the cage cannot follow it, \
                     so copy the target into the project or remove the link"
                ),
            );
        }
        p
    }

    pub fn project(&mut self, root: &Node) -> Project {
        let mut project = Project {
            version: 1,
            project: String::new(),
            description: None,
            primary: None,
            tasks: BTreeMap::new(),
            plugins: Vec::new(),
        };
        let Some(entries) = self.entries(root, "", "the project file", TOP_KEYS) else {
            return project;
        };
        if let Some(v) = self.required(
            root,
            entries,
            "version",
            "",
            "the project file",
            "add `version: 1`",
        ) && v.value != Value::Int(1)
        {
            self.report(
                v,
                Code::BadVersion,
                "/version",
                format!(
                    "version must be the number 1 (the only format version), not {}{}",
                    display_scalar(v),
                    if matches!(v.value, Value::Str(_)) {
                        "; write it without quotes"
                    } else {
                        ""
                    }
                ),
            );
        }
        if let Some(p) = self.required(
            root,
            entries,
            "project",
            "",
            "the project file",
            "add a slug such as `project: my-app`",
        ) {
            let slug = self.string(p, "/project", "project");
            if matches!(p.value, Value::Str(_)) && !is_slug(&slug) {
                self.report(
                    p,
                    Code::BadSlug,
                    "/project",
                    format!(
                        "project {slug:?} is not a slug: use 2–64 lowercase letters, digits and \
                         inner dashes, e.g. `my-app`"
                    ),
                );
            }
            project.project = slug;
        }
        if let Some(d) = field(entries, "description") {
            project.description = Some(self.description(d, "/description"));
        }
        if let Some(p) = field(entries, "primary") {
            project.primary = Some(self.agent(p, "/primary", "primary"));
        }
        if let Some(t) = field(entries, "tasks") {
            project.tasks = self.tasks(t, "/tasks");
        }
        if let Some(p) = field(entries, "plugins") {
            project.plugins = self.plugins(p, "/plugins");
        }
        project
    }

    fn named<'n>(&mut self, node: &'n Node, ptr: &str, what: &str) -> Vec<(&'n Entry, String)> {
        let Value::Map(entries) = &node.value else {
            self.report(
                node,
                Code::TypeMismatch,
                ptr,
                format!(
                    "{what} must be a mapping of names to definitions, not {}",
                    node.kind()
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let p = child_pointer(ptr, &e.key);
            if !is_name(&e.key) {
                self.sink.push(
                    e.key_pos,
                    Code::BadName,
                    &p,
                    format!(
                        "name {:?} in {what} is not allowed: use 1–64 letters, digits, `.`, `_` \
                         or `-`, starting with a letter or digit",
                        e.key
                    ),
                );
            }
            out.push((e, p));
        }
        out
    }

    // Long on purpose: one arm per key of this mapping, each with its own diagnostic.
    fn agent(&mut self, node: &Node, ptr: &str, name: &str) -> AgentSpec {
        let mut spec = AgentSpec {
            model: None,
            system_prompt: None,
            command: Vec::new(),
            cage: Cage::default(),
            tools: Vec::new(),
            agents: BTreeMap::new(),
            workspace: Workspace::Project,
            base: None,
            branch: None,
        };
        let what = format!("agent `{name}`");
        let Some(entries) = self.entries(node, ptr, &what, AGENT_KEYS) else {
            return spec;
        };
        if let Some(m) = field(entries, "model") {
            let p = child_pointer(ptr, "model");
            let model = self.string(m, &p, "model");
            if let Some(reason) = concrete_model_reason(&model) {
                self.report(
                    m,
                    Code::ConcreteModelId,
                    &p,
                    format!(
                        "model {model:?} is a concrete model id ({reason}); use an alias such \
                         as `fast` or `smart` and let each operator map it in local.toml \
                         [models]"
                    ),
                );
            } else if matches!(m.value, Value::Str(_)) && !is_name(&model) {
                self.report(
                    m,
                    Code::BadValue,
                    &p,
                    format!(
                        "model alias {model:?} may only use 1–64 letters, digits, `.`, `_` or `-`"
                    ),
                );
            }
            spec.model = Some(model);
        }
        if let Some(sp) = field(entries, "system_prompt") {
            let p = child_pointer(ptr, "system_prompt");
            let path = self.path(sp, &p, "system_prompt", true);
            if let (Some(root), PathScheme::Project, Value::Str(s)) =
                (self.root, path.scheme(), &sp.value)
            {
                let host = path.resolve(root, root);
                if PortablePath::parse(s).is_ok() && !host.is_file() {
                    self.report(
                        sp,
                        Code::MissingPromptFile,
                        &p,
                        format!(
                            "system prompt `{path}` does not exist (looked for {}); create the \
                             file or fix the path",
                            host.display()
                        ),
                    );
                }
            }
            spec.system_prompt = Some(path);
        }
        if let Some(c) = self.required(
            node,
            entries,
            "command",
            ptr,
            &what,
            "the program to run as an argv list, e.g. [\"bash\", \"-l\"]",
        ) {
            spec.command = self.argv(c, &child_pointer(ptr, "command"));
        }
        if let Some(c) = field(entries, "cage") {
            spec.cage = self.cage(c, &child_pointer(ptr, "cage"));
        }
        (spec.workspace, spec.base, spec.branch) = self.workspace(entries, ptr);
        let mut tool_nodes = Vec::new();
        if let Some(t) = field(entries, "tools") {
            let p = child_pointer(ptr, "tools");
            spec.tools = self.string_list(t, &p, "tools", "a tool name");
            if let Value::Seq(items) = &t.value {
                tool_nodes = items.iter().enumerate().collect();
            }
        }
        if let Some(a) = field(entries, "agents") {
            let p = child_pointer(ptr, "agents");
            for (e, cp) in self.named(a, &p, "agents") {
                let child = self.agent(&e.value, &cp, &format!("{name}.{}", e.key));
                spec.agents.insert(e.key.clone(), child);
            }
        }
        for (i, t) in tool_nodes {
            let Value::Str(tool) = &t.value else { continue };
            let Some(target) = tool.strip_prefix("agent:") else {
                continue;
            };
            if !spec.agents.contains_key(target) {
                let known = if spec.agents.is_empty() {
                    "it has none".to_string()
                } else {
                    format!(
                        "it has: {}",
                        spec.agents.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                };
                self.report(
                    t,
                    Code::UnknownAgent,
                    &child_pointer(&child_pointer(ptr, "tools"), &i.to_string()),
                    format!(
                        "tool `{tool}` names no child agent of {what} ({known}); define \
                         `{target}` under `agents:` or fix the name"
                    ),
                );
            }
        }
        spec
    }

    /// `workspace`, `base` and `branch` of an agent or a task. `base` and `branch` also count
    /// without `workspace: worktree`: the operator may pick a worktree for one start.
    fn workspace(
        &mut self,
        entries: &[Entry],
        ptr: &str,
    ) -> (Workspace, Option<String>, Option<String>) {
        let workspace = match field(entries, "workspace") {
            Some(w) => self.word(
                w,
                &child_pointer(ptr, "workspace"),
                "workspace",
                &[
                    ("project", Workspace::Project),
                    ("worktree", Workspace::Worktree),
                ],
                Workspace::Project,
            ),
            None => Workspace::Project,
        };
        let base = field(entries, "base").map(|b| {
            let p = child_pointer(ptr, "base");
            let base = self.string(b, &p, "base");
            if let (Value::Str(_), Some(why)) = (&b.value, ref_name_problem(&base)) {
                self.report(
                    b,
                    Code::BadValue,
                    &p,
                    format!("base {base:?} is not a branch name git accepts: it {why}"),
                );
            }
            base
        });
        let branch = field(entries, "branch").map(|b| {
            let p = child_pointer(ptr, "branch");
            let template = self.string(b, &p, "branch");
            if let (Value::Str(_), Some(why)) = (&b.value, branch_template_problem(&template)) {
                self.report(b, Code::BadValue, &p, why);
            }
            template
        });
        (workspace, base, branch)
    }

    fn string_list(&mut self, node: &Node, ptr: &str, what: &str, item: &str) -> Vec<String> {
        let Value::Seq(items) = &node.value else {
            self.report(
                node,
                Code::TypeMismatch,
                ptr,
                format!(
                    "{what} must be a list of strings such as [a, b], not {}",
                    node.kind()
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, n) in items.iter().enumerate() {
            let p = child_pointer(ptr, &i.to_string());
            let s = self.string(n, &p, item);
            if matches!(n.value, Value::Str(_)) && s.is_empty() {
                self.report(n, Code::BadValue, &p, format!("{item} must not be empty"));
            }
            out.push(s);
        }
        out
    }

    fn cage(&mut self, node: &Node, ptr: &str) -> Cage {
        match &node.value {
            Value::Str(s) if s == "disabled" => Cage::Disabled,
            Value::Map(_) => Cage::Policy(self.policy(node, ptr)),
            Value::Str(s) => {
                self.report(
                    node,
                    Code::BadValue,
                    ptr,
                    format!("cage must be a policy mapping or the string \"disabled\", not {s:?}"),
                );
                Cage::default()
            }
            _ => {
                self.report(
                    node,
                    Code::TypeMismatch,
                    ptr,
                    format!(
                        "cage must be a policy mapping or the string \"disabled\", not {}",
                        node.kind()
                    ),
                );
                Cage::default()
            }
        }
    }

    fn word<T: Copy>(
        &mut self,
        node: &Node,
        ptr: &str,
        what: &str,
        choices: &[(&str, T)],
        default: T,
    ) -> T {
        let s = self.string(node, ptr, what);
        if !matches!(node.value, Value::Str(_)) {
            return default;
        }
        match choices.iter().find(|(w, _)| *w == s) {
            Some((_, v)) => *v,
            None => {
                let words: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
                self.report(
                    node,
                    Code::BadValue,
                    ptr,
                    format!("{what} must be one of {}, not {s:?}", words.join(", ")),
                );
                default
            }
        }
    }

    // Long on purpose: one arm per key of this mapping, each with its own diagnostic.
    fn policy(&mut self, node: &Node, ptr: &str) -> CagePolicy {
        let mut policy = CagePolicy::default();
        let Some(entries) = self.entries(node, ptr, "the cage policy", POLICY_KEYS) else {
            return policy;
        };
        if let Some(fs) = field(entries, "fs") {
            let p = child_pointer(ptr, "fs");
            policy.fs = match &fs.value {
                Value::Seq(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, g)| self.grant(g, &child_pointer(&p, &i.to_string())))
                    .collect(),
                _ => {
                    self.report(
                        fs,
                        Code::TypeMismatch,
                        &p,
                        format!(
                            "fs must be a list of grants such as {{path: \"project:/\", access: \
                             rw}}, not {}",
                            fs.kind()
                        ),
                    );
                    Vec::new()
                }
            };
        }
        if let Some(n) = field(entries, "network") {
            policy.network = self.network(n, &child_pointer(ptr, "network"));
        }
        if let Some(s) = field(entries, "state") {
            policy.state = self.word(
                s,
                &child_pointer(ptr, "state"),
                "state",
                &[
                    ("ephemeral", State::Ephemeral),
                    ("persistent", State::Persistent),
                ],
                State::Ephemeral,
            );
        }
        if let Some(l) = field(entries, "limits") {
            policy.limits = self.limits(l, &child_pointer(ptr, "limits"));
        }
        if let Some(w) = field(entries, "writable_policy_and_git_hooks") {
            let p = child_pointer(ptr, "writable_policy_and_git_hooks");
            match w.value {
                Value::Bool(b) => policy.writable_policy_and_git_hooks = b,
                _ => self.report(
                    w,
                    Code::TypeMismatch,
                    &p,
                    format!(
                        "writable_policy_and_git_hooks must be true or false, not {}",
                        display_scalar(w)
                    ),
                ),
            }
        }
        if let Some(e) = field(entries, "env") {
            let p = child_pointer(ptr, "env");
            policy.env = self.string_list(e, &p, "env", "an environment variable name");
            if let Value::Seq(items) = &e.value {
                for (i, (n, name)) in items.iter().zip(&policy.env).enumerate() {
                    if !matches!(n.value, Value::Str(_)) || name.is_empty() {
                        continue;
                    }
                    let message = match check_env_name(name) {
                        Ok(()) => continue,
                        Err(EnvNameError::Invalid { .. }) => format!(
                            "{name:?} is not an environment variable name; list NAMES only \
                             (letters, digits and `_`), never NAME=value"
                        ),
                        Err(e @ EnvNameError::Reserved { .. }) => {
                            format!("{e}; remove it from the list")
                        }
                    };
                    self.report(
                        n,
                        Code::BadName,
                        &child_pointer(&p, &i.to_string()),
                        message,
                    );
                }
            }
        }
        policy
    }

    /// `none`, `host`, or `{allow: [...], deny: [...]}` with each entry a host pattern.
    fn network(&mut self, node: &Node, ptr: &str) -> Network {
        if !matches!(node.value, Value::Map(_)) {
            #[derive(Clone, Copy)]
            enum Word {
                None,
                Host,
            }
            let w = self.word(
                node,
                ptr,
                "network",
                &[("none", Word::None), ("host", Word::Host)],
                Word::None,
            );
            return match w {
                Word::None => Network::None,
                Word::Host => Network::Host,
            };
        }
        let mut rules = EgressRules::default();
        let Some(entries) = self.entries(node, ptr, "the network policy", NETWORK_KEYS) else {
            return Network::None;
        };
        for (key, out) in [("allow", &mut rules.allow), ("deny", &mut rules.deny)] {
            let Some(list) = field(entries, key) else {
                continue;
            };
            let p = child_pointer(ptr, key);
            *out = self.string_list(list, &p, key, "a host pattern");
            let Value::Seq(items) = &list.value else {
                continue;
            };
            for (i, (n, entry)) in items.iter().zip(out.iter()).enumerate() {
                if entry.is_empty() {
                    continue;
                }
                if let Err(e) = HostPattern::parse(entry) {
                    self.report(
                        n,
                        Code::BadValue,
                        &child_pointer(&p, &i.to_string()),
                        e.to_string(),
                    );
                }
            }
        }
        Network::Filtered(rules)
    }

    fn grant(&mut self, node: &Node, ptr: &str) -> FsGrant {
        let mut grant = FsGrant {
            path: PortablePath::project_root(),
            access: Access::Ro,
        };
        let Some(entries) = self.entries(node, ptr, "an fs grant", GRANT_KEYS) else {
            return grant;
        };
        if let Some(p) = self.required(
            node,
            entries,
            "path",
            ptr,
            "an fs grant",
            "the path to make visible, e.g. `path: \"project:/docs\"`",
        ) {
            grant.path = self.path(p, &child_pointer(ptr, "path"), "path", false);
        }
        if let Some(a) = field(entries, "access") {
            grant.access = self.word(
                a,
                &child_pointer(ptr, "access"),
                "access",
                &[("ro", Access::Ro), ("rw", Access::Rw)],
                Access::Ro,
            );
        }
        grant
    }

    // Long on purpose: one arm per key of this mapping, each with its own diagnostic.
    fn limits(&mut self, node: &Node, ptr: &str) -> Limits {
        let mut limits = Limits::default();
        let Some(entries) = self.entries(node, ptr, "limits", LIMIT_KEYS) else {
            return limits;
        };
        if let Some(w) = field(entries, "walltime") {
            let p = child_pointer(ptr, "walltime");
            let parsed = match &w.value {
                Value::Int(i) => u64::try_from(*i).ok().filter(|&v| v > 0).map(Walltime),
                Value::Str(s) => Walltime::parse(s),
                _ => None,
            };
            if parsed.is_none() {
                self.report(
                    w,
                    Code::BadValue,
                    &p,
                    format!(
                        "walltime {} is not a duration; write seconds or a number with s, m or \
                         h, e.g. 90, 30s, 10m, 2h",
                        display_scalar(w)
                    ),
                );
            }
            limits.walltime = parsed;
        }
        if let Some(m) = field(entries, "memory") {
            let p = child_pointer(ptr, "memory");
            let parsed = match &m.value {
                Value::Int(i) => u64::try_from(*i).ok().filter(|&v| v > 0).map(ByteSize),
                Value::Str(s) => ByteSize::parse(s),
                _ => None,
            };
            if parsed.is_none() {
                self.report(
                    m,
                    Code::BadValue,
                    &p,
                    format!(
                        "memory {} is not a size; write bytes or a number with K, M, G or T, \
                         e.g. 512M or 2G",
                        display_scalar(m)
                    ),
                );
            }
            limits.memory = parsed;
        }
        if let Some(n) = field(entries, "pids") {
            let p = child_pointer(ptr, "pids");
            match n.value {
                Value::Int(i) if (1..=MAX_PIDS).contains(&i) => {
                    limits.pids = u32::try_from(i).ok();
                }
                _ => self.report(
                    n,
                    Code::BadValue,
                    &p,
                    format!(
                        "pids must be a whole number from 1 to {MAX_PIDS}, not {}",
                        display_scalar(n)
                    ),
                ),
            }
        }
        if let Some(c) = field(entries, "cpu") {
            let p = child_pointer(ptr, "cpu");
            let v = match c.value {
                Value::Int(i) => Some(i as f64),
                Value::Float(f) => Some(f),
                _ => None,
            };
            match v {
                Some(f) if f > 0.0 && f <= MAX_CPU => limits.cpu = Some(f),
                _ => self.report(
                    c,
                    Code::BadValue,
                    &p,
                    format!(
                        "cpu must be a number of CPUs above 0 and at most {MAX_CPU}, e.g. 1.5, \
                         not {}",
                        display_scalar(c)
                    ),
                ),
            }
        }
        if let Some(e) = field(entries, "enforce") {
            limits.enforce = self.word(
                e,
                &child_pointer(ptr, "enforce"),
                "enforce",
                &[
                    ("strict", LimitEnforcement::Strict),
                    ("best-effort", LimitEnforcement::BestEffort),
                ],
                LimitEnforcement::Strict,
            );
        }
        limits
    }

    fn tasks(&mut self, node: &Node, ptr: &str) -> BTreeMap<String, Task> {
        let mut tasks = BTreeMap::new();
        for (e, p) in self.named(node, ptr, "tasks") {
            let task = self.task(&e.value, &p, &e.key);
            tasks.insert(e.key.clone(), task);
        }
        tasks
    }

    fn task(&mut self, node: &Node, ptr: &str, name: &str) -> Task {
        let mut task = Task {
            command: Vec::new(),
            description: None,
            cage: Cage::default(),
            env: BTreeMap::new(),
            workspace: Workspace::Project,
            base: None,
            branch: None,
        };
        let what = format!("task `{name}`");
        let Some(entries) = self.entries(node, ptr, &what, TASK_KEYS) else {
            return task;
        };
        if let Some(c) = self.required(
            node,
            entries,
            "command",
            ptr,
            &what,
            "the program to run as an argv list, e.g. [\"cargo\", \"test\"]",
        ) {
            task.command = self.argv(c, &child_pointer(ptr, "command"));
        }
        if let Some(d) = field(entries, "description") {
            task.description = Some(self.description(d, &child_pointer(ptr, "description")));
        }
        if let Some(c) = field(entries, "cage") {
            task.cage = self.cage(c, &child_pointer(ptr, "cage"));
        }
        (task.workspace, task.base, task.branch) = self.workspace(entries, ptr);
        if let Some(env) = field(entries, "env") {
            let p = child_pointer(ptr, "env");
            let Value::Map(vars) = &env.value else {
                self.report(
                    env,
                    Code::TypeMismatch,
                    &p,
                    format!("env must be a mapping of NAME: value, not {}", env.kind()),
                );
                return task;
            };
            for v in vars {
                let vp = child_pointer(&p, &v.key);
                match check_env_name(&v.key) {
                    Ok(()) => {}
                    Err(EnvNameError::Invalid { .. }) => self.sink.push(
                        v.key_pos,
                        Code::BadName,
                        &vp,
                        format!(
                            "{:?} is not an environment variable name (letters, digits and `_`)",
                            v.key
                        ),
                    ),
                    Err(e @ EnvNameError::Reserved { .. }) => {
                        self.sink
                            .push(v.key_pos, Code::BadName, &vp, format!("{e}; remove it"))
                    }
                }
                if is_secret_key(&v.key) && holds_secret_value(&v.value) {
                    // Reported as a credential by the credential scan.
                    continue;
                }
                let value = self.string(&v.value, &vp, "an environment value");
                task.env.insert(v.key.clone(), value);
            }
        }
        task
    }

    fn plugins(&mut self, node: &Node, ptr: &str) -> Vec<Plugin> {
        let Value::Seq(items) = &node.value else {
            self.report(
                node,
                Code::TypeMismatch,
                ptr,
                format!(
                    "plugins must be a list of {{name, command}} entries, not {}",
                    node.kind()
                ),
            );
            return Vec::new();
        };
        let mut plugins: Vec<Plugin> = Vec::with_capacity(items.len());
        let mut names = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let p = child_pointer(ptr, &i.to_string());
            let mut plugin = Plugin {
                name: String::new(),
                command: Vec::new(),
            };
            let Some(entries) = self.entries(item, &p, "a plugin", PLUGIN_KEYS) else {
                continue;
            };
            if let Some(n) = self.required(
                item,
                entries,
                "name",
                &p,
                "a plugin",
                "a name such as `name: linter`",
            ) {
                let np = child_pointer(&p, "name");
                let name = self.string(n, &np, "name");
                if matches!(n.value, Value::Str(_)) && !is_name(&name) {
                    self.report(
                        n,
                        Code::BadName,
                        &np,
                        format!(
                            "plugin name {name:?} is not allowed: use 1–64 letters, digits, \
                             `.`, `_` or `-`"
                        ),
                    );
                } else if !names.insert(name.clone()) {
                    self.report(
                        n,
                        Code::DuplicateKey,
                        &np,
                        format!("plugin `{name}` is declared twice; keep one"),
                    );
                }
                plugin.name = name;
            }
            if let Some(c) = self.required(
                item,
                entries,
                "command",
                &p,
                "a plugin",
                "the program to run as an argv list",
            ) {
                plugin.command = self.argv(c, &child_pointer(&p, "command"));
            }
            plugins.push(plugin);
        }
        plugins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_checks_match_their_documented_shapes() {
        assert!(is_slug("my-app"));
        assert!(is_slug("a1"));
        assert!(!is_slug("a"));
        assert!(!is_slug("-app"));
        assert!(!is_slug("app-"));
        assert!(!is_slug("My-App"));
        assert!(is_name("test.unit"));
        assert!(!is_name("_x"));
    }

    #[test]
    fn suggestions_use_edit_distance() {
        assert_eq!(levenshtein("comand", "command"), 1);
        assert_eq!(levenshtein("systm_prompt", "system_prompt"), 1);
        assert_eq!(levenshtein("abc", "xyz"), 3);
    }
}
