//! Portability lint (ADR-0011): a project must carry nothing that belongs to one operator —
//! no host paths, no concrete model ids, no credentials — and nothing that reaches out of
//! the project through `..` or a symlink.

use std::path::{Component, Path, PathBuf};

use crate::diag::{Code, Sink, child_pointer};
use crate::yaml::{Node, Value};

/// Why a model string is a concrete id rather than an alias, or `None` if it is an alias.
pub(crate) fn concrete_model_reason(model: &str) -> Option<&'static str> {
    if model.contains(':') || model.contains('/') || model.contains('@') {
        return Some("it names a provider");
    }
    let lower = model.to_ascii_lowercase();
    let families = [
        "claude-",
        "gpt-",
        "gemini-",
        "o1-",
        "o3-",
        "o4-",
        "llama",
        "mistral-",
        "deepseek-",
        "qwen",
        "command-r",
    ];
    let vendor_like = families.iter().any(|f| lower.starts_with(f));
    if vendor_like && lower.chars().any(|c| c.is_ascii_digit()) {
        return Some("it is a vendor's model id");
    }
    None
}

/// Key names that hold secrets, compared after lowercasing and dropping `-`, `_`, `.`.
const SECRET_KEY_WORDS: [&str; 9] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "accesskey",
    "credential",
    "bearer",
];

pub(crate) fn is_secret_key(key: &str) -> bool {
    let norm: String = key
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_KEY_WORDS.iter().any(|w| norm.contains(w))
}

/// What kind of secret `s` looks like; the description never includes the value itself.
pub(crate) fn secret_kind(s: &str) -> Option<&'static str> {
    if s.contains("-----BEGIN") && s.contains("PRIVATE KEY") {
        return Some("a PEM private key");
    }
    if let Some(i) = s.find("://") {
        let authority = s[i + 3..].split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && userinfo.contains(':')
        {
            return Some("a URL with an embedded password");
        }
    }
    s.split(|c: char| c.is_whitespace() || matches!(c, '=' | '"' | '\'' | ',' | ';'))
        .find_map(token_kind)
}

fn token_kind(t: &str) -> Option<&'static str> {
    let tail_len = |prefix: &str| {
        t.strip_prefix(prefix).map_or(0, |rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .count()
        })
    };
    let prefixes: [(&str, usize, &'static str); 12] = [
        ("sk-", 20, "an API secret key (sk-…)"),
        ("ghp_", 20, "a GitHub token"),
        ("gho_", 20, "a GitHub token"),
        ("ghu_", 20, "a GitHub token"),
        ("ghs_", 20, "a GitHub token"),
        ("ghr_", 20, "a GitHub token"),
        ("github_pat_", 20, "a GitHub token"),
        ("glpat-", 20, "a GitLab token"),
        ("xoxb-", 10, "a Slack token"),
        ("xoxp-", 10, "a Slack token"),
        ("AIza", 30, "a Google API key"),
        ("hf_", 30, "a Hugging Face token"),
    ];
    for (prefix, min, kind) in prefixes {
        if tail_len(prefix) >= min {
            return Some(kind);
        }
    }
    for prefix in ["AKIA", "ASIA"] {
        if let Some(rest) = t.strip_prefix(prefix) {
            let n = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                .count();
            if n >= 16 {
                return Some("an AWS access key id");
            }
        }
    }
    if is_high_entropy(t) {
        return Some("a long random string (high entropy)");
    }
    None
}

/// A 32+ character run of base64/url-safe characters mixing upper, lower and digits with
/// more than 4.2 bits of entropy per character: the shape of a generated secret, not of
/// words, paths, hex digests or UUIDs.
fn is_high_entropy(t: &str) -> bool {
    let n = t.chars().count();
    if n < 32
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-'))
    {
        return false;
    }
    let has = |f: fn(&char) -> bool| t.chars().any(|c| f(&c));
    if !(has(char::is_ascii_uppercase)
        && has(char::is_ascii_lowercase)
        && has(char::is_ascii_digit))
    {
        return false;
    }
    let mut counts = [0usize; 128];
    for b in t.bytes() {
        counts[usize::from(b & 0x7f)] += 1;
    }
    let len = n as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / len;
            -p * p.log2()
        })
        .sum();
    entropy > 4.2
}

/// Whether a value under a secret-looking key could itself be the secret.
pub(crate) fn holds_secret_value(node: &Node) -> bool {
    matches!(&node.value, Value::Str(s) if !s.is_empty())
        || matches!(node.value, Value::Int(_) | Value::Float(_))
}

/// Scans every key and string in the merged document for credentials.
pub(crate) fn scan_credentials(node: &Node, ptr: &str, sink: &mut Sink<'_>) {
    match &node.value {
        Value::Str(s) => {
            if let Some(kind) = secret_kind(s) {
                sink.push(
                    node.pos,
                    Code::CredentialLike,
                    ptr,
                    format!(
                        "this value looks like {kind}; credentials never go in a project file: \
                         remove it, rotate it if it was committed, and pass it by name through \
                         the operator's environment (cage.env) or local.toml"
                    ),
                );
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                scan_credentials(item, &child_pointer(ptr, &i.to_string()), sink);
            }
        }
        Value::Map(entries) => {
            for e in entries {
                let p = child_pointer(ptr, &e.key);
                if holds_secret_value(&e.value) && is_secret_key(&e.key) {
                    sink.push(
                        e.key_pos,
                        Code::CredentialLike,
                        &p,
                        format!(
                            "`{}` looks like a credential; credentials never go in a project \
                             file: remove the value and list the variable's name under \
                             cage.env so it is passed from the operator's environment",
                            e.key
                        ),
                    );
                } else {
                    scan_credentials(&e.value, &p, sink);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
    }
}

/// Lexically cleans `path` (no symlinks resolved).
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// If a component of `root/relative` is a symlink that leads outside `root`, the first such
/// component (relative to `root`). `root` must be canonical.
pub(crate) fn symlink_escape(root: &Path, relative: &str) -> Option<String> {
    let mut current = root.to_path_buf();
    let mut shown = Vec::new();
    for part in relative.split('/').filter(|p| !p.is_empty()) {
        current.push(part);
        shown.push(part);
        let Ok(meta) = std::fs::symlink_metadata(&current) else {
            return None;
        };
        if meta.file_type().is_symlink() {
            let target = match std::fs::canonicalize(&current) {
                Ok(t) => t,
                // Dangling: judge the link text itself.
                Err(_) => match std::fs::read_link(&current) {
                    Ok(t) => clean(&current.parent().unwrap_or(root).join(t)),
                    Err(_) => return None,
                },
            };
            if !target.starts_with(root) {
                return Some(shown.join("/"));
            }
            current = target;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_aliases_pass_and_concrete_ids_do_not() {
        assert_eq!(concrete_model_reason("fast"), None);
        assert_eq!(concrete_model_reason("smart-review"), None);
        assert!(concrete_model_reason("anthropic:claude-3-opus").is_some());
        assert!(concrete_model_reason("openai/gpt-4o").is_some());
        assert!(concrete_model_reason("gpt-4o").is_some());
        assert!(concrete_model_reason("claude-3-5-sonnet-20240620").is_some());
    }

    #[test]
    fn secrets_are_recognised_without_flagging_ordinary_text() {
        assert!(secret_kind("sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx").is_some());
        assert!(secret_kind("ghp_0123456789abcdefghijABCDEFGHIJ012345").is_some());
        assert!(secret_kind("AKIAIOSFODNN7EXAMPLE").is_some());
        assert!(secret_kind("--key=Zx8Qm2Lp9Vb4Nc7Rt1Ys6Wd3Kf5Hg0JaUe").is_some());
        assert!(secret_kind("https://bob:hunter2@example.com/repo.git").is_some());
        assert!(secret_kind("Runs the unit tests with cargo nextest").is_none());
        assert!(secret_kind("project:/docs/architecture/overview-of-everything.md").is_none());
        assert!(secret_kind("3f786850e387550fdab836ed7e6dc881de23001b").is_none());
        assert!(secret_kind("123e4567-e89b-12d3-a456-426614174000").is_none());
        assert!(secret_kind("https://example.com/a/b").is_none());
    }

    #[test]
    fn secret_key_names_are_matched_loosely() {
        assert!(is_secret_key("api_key"));
        assert!(is_secret_key("GITHUB_TOKEN"));
        assert!(is_secret_key("db-password"));
        assert!(!is_secret_key("description"));
        assert!(!is_secret_key("RUST_LOG"));
    }
}
