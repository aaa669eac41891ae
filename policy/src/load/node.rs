//! A YAML/JSON document as a tree of nodes that remember their line and column.

use crate::load::errors::Pos;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One value of the document.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub pos: Option<Pos>,
}

/// The shape of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order, each with its own position.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A node without a source position (built from flags rather than a document).
    pub fn synthetic(kind: Kind) -> Self {
        Self { kind, pos: None }
    }

    /// The string a scalar key or value spells, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// What kind of value this is, for messages.
    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a map",
        }
    }
}

/// Parses YAML (and so JSON, which this loader reads as YAML flow style) into one node.
/// Anchors and aliases are refused: a policy has no use for them.
pub(crate) fn load(source: &str) -> Result<Node, (Option<Pos>, String)> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(source);
    if let Err(e) = parser.load(&mut builder, false) {
        let m = e.marker();
        return Err((Some(pos(m)), e.info().to_string()));
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.done.unwrap_or_else(|| Node::synthetic(Kind::Null)))
}

fn pos(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

enum Open {
    Seq(Node),
    Map(Node, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    done: Option<Node>,
    error: Option<(Option<Pos>, String)>,
}

impl Builder {
    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.done.is_none() {
                    self.done = Some(node);
                }
            }
            Some(Open::Seq(seq)) => {
                if let Kind::Seq(items) = &mut seq.kind {
                    items.push(node);
                }
            }
            Some(Open::Map(map, key)) => match key.take() {
                None => *key = Some(node),
                Some(k) => {
                    if let Kind::Map(entries) = &mut map.kind {
                        entries.push((k, node));
                    }
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let p = Some(pos(&mark));
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                if anchor != 0 && self.error.is_none() {
                    self.error = Some((p, "YAML anchors are not supported in policies".into()));
                }
                let kind = if style == TScalarStyle::Plain {
                    plain_scalar(value)
                } else {
                    Kind::Str(value)
                };
                self.push(Node { kind, pos: p });
            }
            Event::SequenceStart(..) => self.stack.push(Open::Seq(Node {
                kind: Kind::Seq(Vec::new()),
                pos: p,
            })),
            Event::MappingStart(..) => self.stack.push(Open::Map(
                Node {
                    kind: Kind::Map(Vec::new()),
                    pos: p,
                },
                None,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(Open::Seq(node) | Open::Map(node, _)) = self.stack.pop() {
                    self.push(node);
                }
            }
            Event::Alias(_) if self.error.is_none() => {
                self.error = Some((p, "YAML aliases are not supported in policies".into()));
            }
            _ => {}
        }
    }
}

/// YAML 1.2 core-schema resolution of an unquoted scalar.
fn plain_scalar(value: String) -> Kind {
    match value.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Kind::Null,
        "true" | "True" | "TRUE" => Kind::Bool(true),
        "false" | "False" | "FALSE" => Kind::Bool(false),
        v => {
            if let Ok(i) = v.parse::<i64>() {
                Kind::Int(i)
            } else if v.contains(['.', 'e', 'E'])
                && v.trim_start_matches(['-', '+'])
                    .starts_with(|c: char| c.is_ascii_digit())
            {
                v.parse::<f64>().map_or(Kind::Str(value), Kind::Float)
            } else {
                Kind::Str(value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_nodes_carry_positions() {
        let n = load("a:\n  - 1\n  - 'x'\nb: true\n").unwrap();
        let Kind::Map(entries) = &n.kind else {
            panic!("map expected")
        };
        assert_eq!(entries[0].0.as_str(), Some("a"));
        let Kind::Seq(items) = &entries[0].1.kind else {
            panic!("seq expected")
        };
        assert_eq!(items[1].kind, Kind::Str("x".into()));
        assert_eq!(items[1].pos, Some(Pos { line: 3, col: 5 }));
        assert_eq!(entries[1].1.kind, Kind::Bool(true));
    }

    #[test]
    fn json_loads_too() {
        let n = load(r#"{"on_http_request": [{"actions": [{"type": "deny"}]}]}"#).unwrap();
        assert!(matches!(n.kind, Kind::Map(_)));
    }

    #[test]
    fn syntax_errors_are_located() {
        let (pos, _) = load("a: [1, 2\nb: c").unwrap_err();
        assert!(pos.is_some());
    }
}
