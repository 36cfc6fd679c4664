//! The `project.local.yaml` overlay: objects deep-merge, arrays (and scalars) replace, and
//! `null` removes a key. `version` and `project` identify the project, so an overlay that
//! could change them would make one checkout a different project on each machine.

use std::collections::HashMap;

use crate::diag::{Code, Sink, child_pointer};
use crate::yaml::{Entry, Node, Value};

const FIXED: [&str; 2] = ["version", "project"];

/// Merges `overlay` over `base`. Node positions are kept, so diagnostics about a value that
/// came from the overlay point into the overlay file.
pub(crate) fn merge(base: Node, overlay: Node, sink: &mut Sink<'_>) -> Node {
    let entries = match overlay.value {
        Value::Null => return base,
        Value::Map(entries) => entries,
        _ => {
            sink.push(
                overlay.pos,
                Code::TypeMismatch,
                "",
                format!(
                    "the overlay must be a mapping of keys to override, not {}; it is ignored \
                     until fixed",
                    overlay.kind()
                ),
            );
            return base;
        }
    };
    let mut allowed = Vec::with_capacity(entries.len());
    for e in entries {
        if FIXED.contains(&e.key.as_str()) {
            sink.push(
                e.key_pos,
                Code::OverrideForbidden,
                &child_pointer("", &e.key),
                format!(
                    "`{}` cannot be set in the overlay; it is fixed by project.yaml, remove it \
                     here",
                    e.key
                ),
            );
        } else {
            allowed.push(e);
        }
    }
    let over = Node {
        value: Value::Map(allowed),
        pos: overlay.pos,
    };
    merge_node(Some(base), over).unwrap_or_else(|| Node::null(overlay.pos))
}

fn merge_node(base: Option<Node>, over: Node) -> Option<Node> {
    match (base, over.value) {
        (_, Value::Null) => None,
        (
            Some(Node {
                value: Value::Map(mut entries),
                pos,
            }),
            Value::Map(over_entries),
        ) => {
            // Slots keep the base order; an index keeps the merge linear in wide maps.
            let index: HashMap<String, usize> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.key.clone(), i))
                .collect();
            let mut slots: Vec<Option<Entry>> = entries.drain(..).map(Some).collect();
            for o in over_entries {
                match index.get(&o.key) {
                    Some(&i) => {
                        if let Some(existing) = slots[i].take() {
                            slots[i] =
                                merge_node(Some(existing.value), o.value).map(|value| Entry {
                                    key: existing.key,
                                    key_pos: existing.key_pos,
                                    value,
                                });
                        }
                    }
                    None => {
                        if !matches!(o.value.value, Value::Null) {
                            slots.push(Some(o));
                        }
                    }
                }
            }
            entries.extend(slots.into_iter().flatten());
            Some(Node {
                value: Value::Map(entries),
                pos,
            })
        }
        (_, value) => Some(Node {
            value,
            pos: over.pos,
        }),
    }
}
