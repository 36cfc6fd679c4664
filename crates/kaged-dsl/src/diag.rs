//! Diagnostics: every problem in a project, with where it is and what to do about it.
//!
//! The codes are a stable interface (the CLI, the API and editors match on them), so a
//! variant is never renamed; new ones are appended.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A stable, machine-readable diagnostic code. Serialised in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The project file (or the directory) could not be found.
    MissingFile,
    /// A file exists but could not be read.
    IoError,
    /// The file is not valid YAML (or not UTF-8).
    YamlSyntax,
    /// The file holds more than one YAML document.
    MultipleDocuments,
    /// A YAML tag other than the core schema's (`!!str`, `!!int`, ...).
    UnsupportedTag,
    /// The same key appears twice in one mapping.
    DuplicateKey,
    /// A key the schema does not know.
    UnknownKey,
    /// A value of the wrong type (a string where a list belongs, ...).
    TypeMismatch,
    /// A required key is absent.
    MissingKey,
    /// A value is outside its allowed set or range (`network: wifi`, `pids: 0`).
    BadValue,
    /// `version` is not `1`.
    BadVersion,
    /// `project` is not a slug.
    BadSlug,
    /// An agent, task, plugin or environment variable name is malformed.
    BadName,
    /// A string is longer than allowed.
    TooLong,
    /// A `command` argv is empty or holds an empty string.
    EmptyCommand,
    /// A tool `agent:NAME` names no child agent of that agent.
    UnknownAgent,
    /// `system_prompt` points at a file that does not exist in the project.
    MissingPromptFile,
    /// An absolute host path (`/home/...`, `~/...`) where a portable path belongs.
    AbsolutePath,
    /// A relative path without the `project:/` or `config:/` scheme.
    NakedPath,
    /// `..` climbs out of the project (or config) root.
    PathEscape,
    /// A path inside the project goes through a symlink that leads outside it.
    SymlinkEscape,
    /// A concrete `provider:model` id where a model alias belongs.
    ConcreteModelId,
    /// Something that looks like a credential.
    CredentialLike,
    /// The overlay tries to change `version` or `project`.
    OverrideForbidden,
    /// The file is larger than [`crate::MAX_FILE_BYTES`].
    TooLarge,
    /// Nesting deeper than [`crate::MAX_DEPTH`].
    TooDeep,
    /// Aliases expand to more than [`crate::MAX_ALIAS_NODES`] nodes.
    AliasBomb,
    /// More than [`crate::MAX_DIAGNOSTICS`] problems; the rest are counted, not listed.
    TooManyProblems,
}

impl Code {
    /// The code as it appears in output, e.g. `unknown_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::MissingFile => "missing_file",
            Code::IoError => "io_error",
            Code::YamlSyntax => "yaml_syntax",
            Code::MultipleDocuments => "multiple_documents",
            Code::UnsupportedTag => "unsupported_tag",
            Code::DuplicateKey => "duplicate_key",
            Code::UnknownKey => "unknown_key",
            Code::TypeMismatch => "type_mismatch",
            Code::MissingKey => "missing_key",
            Code::BadValue => "bad_value",
            Code::BadVersion => "bad_version",
            Code::BadSlug => "bad_slug",
            Code::BadName => "bad_name",
            Code::TooLong => "too_long",
            Code::EmptyCommand => "empty_command",
            Code::UnknownAgent => "unknown_agent",
            Code::MissingPromptFile => "missing_prompt_file",
            Code::AbsolutePath => "absolute_path",
            Code::NakedPath => "naked_path",
            Code::PathEscape => "path_escape",
            Code::SymlinkEscape => "symlink_escape",
            Code::ConcreteModelId => "concrete_model_id",
            Code::CredentialLike => "credential_like",
            Code::OverrideForbidden => "override_forbidden",
            Code::TooLarge => "too_large",
            Code::TooDeep => "too_deep",
            Code::AliasBomb => "alias_bomb",
            Code::TooManyProblems => "too_many_problems",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in one file. `line` and `column` are 1-based (column counts characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub code: Code,
    /// What is wrong and what to do about it.
    pub message: String,
    /// RFC 6901 JSON pointer into the (merged) document; `""` is the whole document.
    pub pointer: String,
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: code: message (at /pointer)`; the document root shows as `/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(
            f,
            "{}:{}:{}: {}: {} (at {})",
            self.file.display(),
            self.line,
            self.column,
            self.code,
            self.message,
            pointer
        )
    }
}

/// All problems found in one load, sorted by file, line and column.
///
/// This is the error type of the loaders: a project is either valid or comes back with
/// every diagnostic at once, so an operator fixes them in one round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The codes in order, handy for tests and summaries.
    pub fn codes(&self) -> Vec<Code> {
        self.0.iter().map(|d| d.code).collect()
    }

    pub(crate) fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (&a.file, a.line, a.column, a.code, &a.pointer)
                .cmp(&(&b.file, b.line, b.column, b.code, &b.pointer))
        });
        self.0.dedup();
    }
}

impl fmt::Display for Diagnostics {
    /// One diagnostic per line, as `kaged dsl validate` prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Which of the two files a node came from; the overlay merge keeps this per node so a
/// diagnostic always names the file the operator has to edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Src {
    Main,
    Overlay,
}

/// A 1-based position in one of the two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub src: Src,
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub fn start(src: Src) -> Pos {
        Pos {
            src,
            line: 1,
            column: 1,
        }
    }
}

/// Collects diagnostics while a load walks the document.
pub(crate) struct Sink<'a> {
    pub main: &'a Path,
    pub overlay: &'a Path,
    pub out: Vec<Diagnostic>,
    /// Diagnostics past [`crate::MAX_DIAGNOSTICS`], counted but not kept.
    dropped: usize,
}

impl<'a> Sink<'a> {
    pub fn new(main: &'a Path, overlay: &'a Path) -> Self {
        Sink {
            main,
            overlay,
            out: Vec::new(),
            dropped: 0,
        }
    }

    pub fn push(&mut self, pos: Pos, code: Code, pointer: &str, message: impl Into<String>) {
        if self.out.len() >= crate::MAX_DIAGNOSTICS {
            self.dropped += 1;
            return;
        }
        let file = match pos.src {
            Src::Main => self.main,
            Src::Overlay => self.overlay,
        };
        self.out.push(Diagnostic {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            code,
            message: message.into(),
            pointer: pointer.to_string(),
        });
    }

    pub fn finish(self) -> Diagnostics {
        let mut d = Diagnostics(self.out);
        d.sort();
        if self.dropped > 0 {
            d.0.push(Diagnostic {
                file: self.main.to_path_buf(),
                line: 1,
                column: 1,
                code: Code::TooManyProblems,
                message: format!(
                    "{} more problems are not shown; fix the ones above and validate again",
                    self.dropped
                ),
                pointer: String::new(),
            });
        }
        d
    }
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/` per RFC 6901.
pub(crate) fn child_pointer(parent: &str, token: &str) -> String {
    let mut p = String::with_capacity(parent.len() + token.len() + 1);
    p.push_str(parent);
    p.push('/');
    for c in token.chars() {
        match c {
            '~' => p.push_str("~0"),
            '/' => p.push_str("~1"),
            c => p.push(c),
        }
    }
    p
}
