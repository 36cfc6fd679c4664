//! A small YAML document tree with a position on every node and every key.
//!
//! It is built from `saphyr-parser`'s spanned event stream rather than from a ready-made
//! tree so that the limits are enforced *while* building: nesting depth is checked on every
//! collection start and alias expansion is charged against a node budget before anything is
//! copied, so neither a deep file nor a billion-laughs file ever gets to allocate much.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use crate::diag::{Code, Pos, Sink, Src, child_pointer};
use crate::{MAX_ALIAS_NODES, MAX_DEPTH};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

impl Node {
    pub fn null(pos: Pos) -> Node {
        Node {
            value: Value::Null,
            pos,
        }
    }

    /// A short noun for messages: "a string", "a list", ...
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            // JSON has no NaN or infinity.
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// Nodes in this subtree, and its height; used to charge alias expansion.
    fn measure(&self) -> (usize, usize) {
        match &self.value {
            Value::Seq(items) => items.iter().fold((1, 1), |(n, h), c| {
                let (cn, ch) = c.measure();
                (n + cn, h.max(ch + 1))
            }),
            Value::Map(entries) => entries.iter().fold((1, 1), |(n, h), e| {
                let (cn, ch) = e.value.measure();
                (n + cn + 1, h.max(ch + 1))
            }),
            _ => (1, 0),
        }
    }
}

fn pos(src: Src, span: &Span) -> Pos {
    Pos {
        src,
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

enum Key {
    Text(String, Pos),
    /// A non-scalar key; already reported, its value is dropped.
    Invalid,
}

enum Frame {
    Seq {
        pos: Pos,
        ptr: String,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        ptr: String,
        anchor: usize,
        entries: Vec<Entry>,
        /// Keys so far, so duplicate detection stays linear in a wide mapping.
        seen: HashSet<String>,
        key: Option<Key>,
    },
}

/// A stored anchor: the node plus its measured size and height.
struct Anchored {
    node: Node,
    size: usize,
    height: usize,
}

struct Builder<'s, 'a> {
    src: Src,
    sink: &'s mut Sink<'a>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Anchored>,
    alias_nodes: usize,
    root: Option<Node>,
}

/// Why building stopped early; the diagnostic has already been pushed.
struct Fatal;

impl Builder<'_, '_> {
    fn fatal(&mut self, at: Pos, code: Code, message: String) -> Fatal {
        let ptr = self.next_ptr();
        self.sink.push(at, code, &ptr, message);
        Fatal
    }

    /// The JSON pointer of the node that will be attached next.
    fn next_ptr(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Seq { ptr, items, .. }) => child_pointer(ptr, &items.len().to_string()),
            Some(Frame::Map { ptr, key, .. }) => match key {
                Some(Key::Text(k, _)) => child_pointer(ptr, k),
                Some(Key::Invalid) | None => ptr.clone(),
            },
        }
    }

    fn open(&mut self, frame: Frame, at: Pos) -> Result<(), Fatal> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.fatal(
                at,
                Code::TooDeep,
                format!(
                    "the document nests deeper than {MAX_DEPTH} levels; a project file never \
                     needs that, flatten it"
                ),
            ));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            let (size, height) = node.measure();
            self.anchors.insert(
                anchor,
                Anchored {
                    node: node.clone(),
                    size,
                    height,
                },
            );
        }
    }

    /// Places a finished node: as the document root, a list item, a key or a value.
    fn attach(&mut self, node: Node, raw_key: Option<&str>) {
        let Some(top) = self.stack.last_mut() else {
            self.root = Some(node);
            return;
        };
        match top {
            Frame::Seq { items, .. } => items.push(node),
            Frame::Map {
                entries,
                key,
                ptr,
                seen,
                ..
            } => match key.take() {
                None => {
                    *key = Some(match raw_key {
                        Some(text) => Key::Text(text.to_string(), node.pos),
                        None => {
                            let at = node.pos;
                            self.sink.push(
                                at,
                                Code::TypeMismatch,
                                ptr,
                                format!(
                                    "a mapping key must be a plain string, not {}; write the \
                                     key as text",
                                    node.kind()
                                ),
                            );
                            Key::Invalid
                        }
                    });
                }
                Some(Key::Text(k, key_pos)) => {
                    if !seen.insert(k.clone()) {
                        let at = child_pointer(ptr, &k);
                        self.sink.push(
                            key_pos,
                            Code::DuplicateKey,
                            &at,
                            format!(
                                "key `{k}` appears twice in the same mapping; keep one (YAML \
                                 would silently use the last)"
                            ),
                        );
                    } else {
                        entries.push(Entry {
                            key: k,
                            key_pos,
                            value: node,
                        });
                    }
                }
                Some(Key::Invalid) => {}
            },
        }
    }

    fn tag_ok(&mut self, tag: &Option<Cow<'_, Tag>>, expected: &[&str], at: Pos) -> bool {
        match tag {
            None => true,
            Some(t) if t.is_yaml_core_schema() && expected.contains(&t.suffix.as_str()) => true,
            Some(t) => {
                let ptr = self.next_ptr();
                self.sink.push(
                    at,
                    Code::UnsupportedTag,
                    &ptr,
                    format!(
                        "YAML tag `{t}` is not supported here; remove it (project files use \
                         plain YAML values)"
                    ),
                );
                false
            }
        }
    }

    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        tag: &Option<Cow<'_, Tag>>,
        at: Pos,
    ) -> Value {
        let core = ["str", "int", "float", "bool", "null"];
        if !self.tag_ok(tag, &core, at) {
            return Value::Str(text.to_string());
        }
        let forced = tag.as_ref().map(|t| t.suffix.as_str());
        match (forced, style) {
            (Some("str"), _) => Value::Str(text.to_string()),
            (None, ScalarStyle::Plain) => resolve_plain(text),
            (None, _) => Value::Str(text.to_string()),
            (Some(want), _) => {
                let v = resolve_plain(text);
                let fits = matches!(
                    (want, &v),
                    ("int", Value::Int(_))
                        | ("float", Value::Float(_) | Value::Int(_))
                        | ("bool", Value::Bool(_))
                        | ("null", Value::Null)
                );
                if fits {
                    match (want, v) {
                        ("float", Value::Int(i)) => Value::Float(i as f64),
                        (_, v) => v,
                    }
                } else {
                    let ptr = self.next_ptr();
                    self.sink.push(
                        at,
                        Code::TypeMismatch,
                        &ptr,
                        format!("`{text}` is not a valid !!{want}; fix the value or drop the tag"),
                    );
                    Value::Str(text.to_string())
                }
            }
        }
    }

    // Long on purpose: one arm per YAML event kind, as the parser emits them.
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Fatal> {
        let at = pos(self.src, &span);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {}
            Event::Scalar(text, style, anchor, tag) => {
                let value = self.scalar(&text, style, &tag, at);
                let node = Node { value, pos: at };
                self.remember(anchor, &node);
                self.attach(node, Some(&text));
            }
            Event::Alias(id) => {
                let Some(a) = self.anchors.get(&id) else {
                    // The parser rejects unknown anchors; an anchor that is still open
                    // (a recursive alias) is the only way to get here.
                    return Err(self.fatal(
                        at,
                        Code::AliasBomb,
                        "an alias refers to the collection that contains it; YAML cannot \
                         express that, remove the alias"
                            .into(),
                    ));
                };
                let (size, height) = (a.size, a.height);
                self.alias_nodes = self.alias_nodes.saturating_add(size);
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(self.fatal(
                        at,
                        Code::AliasBomb,
                        format!(
                            "aliases expand to more than {MAX_ALIAS_NODES} nodes (a \"billion \
                             laughs\" pattern); write the values out or use fewer aliases"
                        ),
                    ));
                }
                if self.stack.len() + height > MAX_DEPTH {
                    return Err(self.fatal(
                        at,
                        Code::TooDeep,
                        format!(
                            "this alias would nest the document deeper than {MAX_DEPTH} \
                             levels; flatten it"
                        ),
                    ));
                }
                let node = a.node.clone();
                let raw = match &node.value {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                };
                self.attach(node, raw.as_deref());
            }
            Event::SequenceStart(anchor, tag) => {
                self.tag_ok(&tag, &["seq"], at);
                let ptr = self.next_ptr();
                self.open(
                    Frame::Seq {
                        pos: at,
                        ptr,
                        anchor,
                        items: Vec::new(),
                    },
                    at,
                )?;
            }
            Event::MappingStart(anchor, tag) => {
                self.tag_ok(&tag, &["map"], at);
                let ptr = self.next_ptr();
                self.open(
                    Frame::Map {
                        pos: at,
                        ptr,
                        anchor,
                        entries: Vec::new(),
                        seen: HashSet::new(),
                        key: None,
                    },
                    at,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        pos, anchor, items, ..
                    }) => (
                        Node {
                            value: Value::Seq(items),
                            pos,
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            value: Value::Map(entries),
                            pos,
                        },
                        anchor,
                    ),
                    None => return Ok(()),
                };
                self.remember(anchor, &node);
                self.attach(node, None);
            }
        }
        Ok(())
    }
}

/// Parses one YAML document. Returns `None` when a fatal problem (syntax, depth, aliases)
/// stopped parsing; the diagnostic is in `sink`. An empty file is a null node.
pub(crate) fn parse(text: &str, src: Src, sink: &mut Sink<'_>) -> Option<Node> {
    let mut b = Builder {
        src,
        sink,
        stack: Vec::new(),
        anchors: HashMap::new(),
        alias_nodes: 0,
        root: None,
    };
    let mut documents = 0usize;
    for item in Parser::new_from_str(text) {
        match item {
            Err(e) => {
                let (line, col) = (e.marker().line().max(1), e.marker().col());
                let (at, message) = match indentation_tab(text, line, col, e.info()) {
                    Some((line, column)) => (
                        Pos { src, line, column },
                        "YAML syntax error: a tab in the indentation; indent with spaces, \
                         not tabs"
                            .to_string(),
                    ),
                    None => (
                        Pos {
                            src,
                            line,
                            column: col + 1,
                        },
                        format!("YAML syntax error: {}; fix the YAML here", e.info()),
                    ),
                };
                b.sink.push(at, Code::YamlSyntax, "", message);
                return None;
            }
            Ok((Event::DocumentStart(_), span)) => {
                documents += 1;
                if documents > 1 {
                    let at = pos(src, &span);
                    b.sink.push(
                        at,
                        Code::MultipleDocuments,
                        "",
                        "a project file holds exactly one YAML document; remove this `---` \
                         and everything after it",
                    );
                    break;
                }
            }
            Ok((event, span)) => {
                if b.event(event, span).is_err() {
                    return None;
                }
            }
        }
    }
    Some(b.root.unwrap_or_else(|| Node::null(Pos::start(src))))
}

/// The 1-based line and column of the tab that caused a syntax error, when a tab in the
/// indentation caused it. saphyr marks such errors away from the tab: at the start of the
/// plain scalar before the tab's line, or past the whitespace on the tab's line.
/// `line` is 1-based and `col` 0-based, as in saphyr's marker.
fn indentation_tab(text: &str, line: usize, col: usize, info: &str) -> Option<(usize, usize)> {
    // Tabs are fine inside flow collections, so only tab and block errors can be a tab's fault.
    let about_tab = info.contains("tab");
    if !about_tab && !info.contains("block") {
        return None;
    }
    let leading = |l: &str| l.len() - l.trim_start_matches([' ', '\t']).len();
    let mut lines = text.lines().skip(line - 1);
    let first = lines.next()?;
    // Leading whitespace is ASCII, so its byte offsets are also character columns.
    let width = leading(first);
    if col <= width
        && let Some(c) = first[..width].find('\t')
    {
        return Some((line, c + 1));
    }
    // A marker on a tab after content is already right, and that tab is no indentation.
    if !about_tab || first.chars().nth(col) == Some('\t') {
        return None;
    }
    // The tab is on a later line that a plain scalar or block scalar runs into. Blank and
    // comment-only lines may hold tabs. A continuation line may hold tabs deeper than the
    // scalar's parent, so prefer a tab no deeper than the marked line's indentation.
    let mut deeper = None;
    for (i, l) in lines.enumerate() {
        let n = leading(l);
        if n == l.len() || l[n..].starts_with('#') {
            continue;
        }
        if let Some(c) = l[..n].find('\t') {
            let at = (line + 1 + i, c + 1);
            if c <= width {
                return Some(at);
            }
            deeper.get_or_insert(at);
        }
    }
    deeper
}

/// YAML 1.2 core-schema resolution of a plain scalar.
fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits(unsigned, 10) {
        return match s.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => s.parse::<f64>().map_or(Value::Str(s.into()), Value::Float),
        };
    }
    if let Some(h) = s.strip_prefix("0x").filter(|h| digits(h, 16)) {
        return i64::from_str_radix(h, 16).map_or(Value::Str(s.into()), Value::Int);
    }
    if let Some(o) = s.strip_prefix("0o").filter(|o| digits(o, 8)) {
        return i64::from_str_radix(o, 8).map_or(Value::Str(s.into()), Value::Int);
    }
    if is_core_float(unsigned)
        && let Ok(f) = s.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(s.to_string())
}

/// `( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?` — Rust's float parser
/// also takes `inf` and `nan`, which YAML spells differently.
fn is_core_float(s: &str) -> bool {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => all_digits(int) && all_digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && all_digits(int),
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && all_digits(e)
        }
    };
    mantissa_ok && exp_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse_ok(text: &str) -> Node {
        let p = Path::new("t.yaml");
        let mut sink = Sink::new(p, p);
        let n = parse(text, Src::Main, &mut sink);
        assert!(sink.out.is_empty(), "{:?}", sink.out);
        n.unwrap_or_else(|| Node::null(Pos::start(Src::Main)))
    }

    #[test]
    fn plain_scalars_resolve_per_core_schema() {
        assert_eq!(resolve_plain("1"), Value::Int(1));
        assert_eq!(resolve_plain("-12"), Value::Int(-12));
        assert_eq!(resolve_plain("0x1F"), Value::Int(31));
        assert_eq!(resolve_plain("1.5"), Value::Float(1.5));
        assert_eq!(resolve_plain("1e3"), Value::Float(1000.0));
        assert_eq!(resolve_plain("~"), Value::Null);
        assert_eq!(resolve_plain("True"), Value::Bool(true));
        assert_eq!(resolve_plain("inf"), Value::Str("inf".into()));
        assert_eq!(resolve_plain("yes"), Value::Str("yes".into()));
        assert_eq!(resolve_plain("2h"), Value::Str("2h".into()));
    }

    #[test]
    fn keys_and_values_carry_one_based_positions() {
        let n = parse_ok("a: 1\nbb:\n  - x\n");
        let Value::Map(entries) = n.value else {
            panic!("not a map")
        };
        assert_eq!((entries[0].key_pos.line, entries[0].key_pos.column), (1, 1));
        assert_eq!(
            (entries[0].value.pos.line, entries[0].value.pos.column),
            (1, 4)
        );
        let Value::Seq(items) = &entries[1].value.value else {
            panic!("not a seq")
        };
        assert_eq!((items[0].pos.line, items[0].pos.column), (3, 5));
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let n = parse_ok("a: '1'\n");
        let Value::Map(entries) = n.value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].value.value, Value::Str("1".into()));
    }

    #[test]
    fn indentation_tabs_are_found_in_the_text() {
        // Past the whitespace on the tab's own line.
        assert_eq!(
            indentation_tab("a:\n  b: 1\n \t c: 2\n", 3, 3, "tabs disallowed"),
            Some((3, 2))
        );
        // At the plain scalar before it, with a blank tab line and a comment in between.
        assert_eq!(
            indentation_tab("a:\n  b: x\n\t\n\t# c\n\tc: 2\n", 2, 5, "found a tab"),
            Some((5, 1))
        );
        // A tab deeper than the scalar's parent continues it; the shallower one is the fault.
        assert_eq!(
            indentation_tab("a: x\n \ty\n\tz\n", 1, 3, "found a tab"),
            Some((3, 1))
        );
        // Tabs are allowed in flow collections, and a tab after content is no indentation.
        assert_eq!(
            indentation_tab("a: [x,\n\t}\n", 2, 1, "did not find expected node content"),
            None
        );
        assert_eq!(
            indentation_tab("? \tx\n: 1\nb:\n\tc: 2\n", 1, 2, "tabs disallowed"),
            None
        );
    }

    #[test]
    fn small_aliases_expand() {
        let n = parse_ok("a: &x [1, 2]\nb: *x\n");
        let Value::Map(entries) = n.value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].value.value, entries[1].value.value);
    }
}
