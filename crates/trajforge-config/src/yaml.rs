//! Pipeline YAML as a tree that remembers where every value came from.
//!
//! The file is parsed with `saphyr-parser` into [`Node`]s carrying their line and column (or
//! the `--set` argument that put them there) and their key path. `${VAR}` references are
//! substituted in scalars before plain scalars get their types, so `threshold: ${T}` is a
//! number when `T=0.8`. `--set` overrides edit the tree before it is read into typed structs
//! (see [`crate::de`]), so an override is checked exactly like the file.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File {
        line: usize,
        col: usize,
    },
    /// A `--set KEY=VALUE` argument.
    Set(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { line, col } => write!(f, "line {line}, column {col}"),
            Origin::Set(arg) => write!(f, "--set {arg}"),
        }
    }
}

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub at: Origin,
}

/// A value with its origin and key path (`steps[2].threshold`).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub at: Origin,
    pub path: String,
}

/// A problem found while reading the YAML itself.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub message: String,
    pub path: String,
    pub at: Option<Origin>,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)
    }
}

fn origin(span: &Span) -> Origin {
    Origin::File {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

pub fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Replaces `${VAR}` and `${VAR:-default}`; `$${` stays a literal `${`.
pub fn substitute_env(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(end) = tail.find('}') else {
                return Err(format!("unclosed ${{ in {text:?}"));
            };
            let inner = &tail[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} for a fallback)"
                    ));
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Types a plain scalar the way YAML 1.2's core schema does.
pub fn plain_scalar(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | "+.inf" => return Value::Float(f64::INFINITY),
        "-.inf" => return Value::Float(f64::NEG_INFINITY),
        ".nan" => return Value::Float(f64::NAN),
        _ => {}
    }
    let numeric = s
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if numeric {
        if let Ok(i) = s.parse::<i64>() {
            return Value::Int(i);
        }
        if let Ok(f) = s.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::Str(s.to_string())
}

enum Frame {
    Seq(Vec<Node>, Origin, usize),
    Map(Vec<(Key, Node)>, Origin, usize, Option<Key>),
}

struct Builder<'e> {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    env: &'e dyn Fn(&str) -> Option<String>,
}

impl Builder<'_> {
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Seq(items, _, _) => path = format!("{path}[{}]", items.len()),
                Frame::Map(_, _, _, Some(k)) => path = child_path(&path, &k.name),
                Frame::Map(_, _, _, None) => {}
            }
        }
        path
    }

    fn push_value(&mut self, node: Node, anchor: usize) -> Result<(), YamlError> {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(items, _, _)) => items.push(node),
            Some(Frame::Map(entries, _, _, key)) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => {
                    let Value::Str(name) = node.value else {
                        return Err(YamlError {
                            message: "mapping keys must be strings".into(),
                            path: node.path,
                            at: Some(node.at),
                        });
                    };
                    if entries.iter().any(|(k, _)| k.name == name) {
                        return Err(YamlError {
                            message: format!("duplicate key `{name}`"),
                            path: node.path,
                            at: Some(node.at),
                        });
                    }
                    *key = Some(Key { name, at: node.at });
                }
            },
        }
        Ok(())
    }

    fn scalar(&mut self, text: &str, style: ScalarStyle, at: Origin) -> Result<Value, YamlError> {
        let text = substitute_env(text, self.env).map_err(|message| YamlError {
            message,
            path: self.path(),
            at: Some(at.clone()),
        })?;
        Ok(match style {
            ScalarStyle::Plain => plain_scalar(&text),
            _ => Value::Str(text),
        })
    }

    fn event(&mut self, ev: Event, span: Span) -> Result<(), YamlError> {
        let at = origin(&span);
        match ev {
            Event::Scalar(text, style, anchor, _) => {
                let value = self.scalar(&text, style, at.clone())?;
                let path = self.path();
                self.push_value(Node { value, at, path }, anchor)?;
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(Vec::new(), at, anchor)),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(Vec::new(), at, anchor, None))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = self.stack.pop();
                let path = self.path();
                let (value, at, anchor) = match frame {
                    Some(Frame::Seq(items, at, a)) => (Value::Seq(items), at, a),
                    Some(Frame::Map(entries, at, a, _)) => (Value::Map(entries), at, a),
                    None => return Ok(()),
                };
                self.push_value(Node { value, at, path }, anchor)?;
            }
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id).cloned() else {
                    return Err(YamlError {
                        message: "alias to an unknown anchor".into(),
                        path: self.path(),
                        at: Some(at),
                    });
                };
                self.push_value(node, 0)?;
            }
            Event::DocumentStart(_) if self.root.is_some() => {
                return Err(YamlError {
                    message: "a pipeline file holds one YAML document".into(),
                    path: String::new(),
                    at: Some(at),
                });
            }
            _ => {}
        }
        Ok(())
    }
}

/// Parses YAML text into a located tree, substituting `${VAR}` through `env`.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Node, YamlError> {
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        env,
    };
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (ev, span) = next.map_err(|e| YamlError {
            message: e.info().to_string(),
            path: String::new(),
            at: Some(Origin::File {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            }),
        })?;
        builder.event(ev, span)?;
    }
    Ok(builder.root.unwrap_or(Node {
        value: Value::Null,
        at: Origin::File { line: 1, col: 1 },
        path: String::new(),
    }))
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Re-labels this node and its children with paths under `path`.
    pub fn relabel(&mut self, path: &str) {
        self.path = path.to_string();
        match &mut self.value {
            Value::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    item.relabel(&format!("{path}[{i}]"));
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    v.relabel(&child_path(path, &k.name));
                }
            }
            _ => {}
        }
    }

    /// A short description of the value's type for messages.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn values_remember_lines_and_paths() {
        let n = parse(
            "version: 1\nsteps:\n  - op: where\n    predicate: \"x > 1\"\n",
            &no_env,
        )
        .expect("parses");
        let steps = n.get("steps").expect("steps");
        let Value::Seq(items) = &steps.value else {
            panic!("steps is a list")
        };
        let pred = items[0].get("predicate").expect("predicate");
        assert_eq!(pred.value, Value::Str("x > 1".into()));
        assert_eq!(pred.path, "steps[0].predicate");
        assert_eq!(pred.at, Origin::File { line: 4, col: 16 });
        assert_eq!(
            n.get("version").map(|v| v.value.clone()),
            Some(Value::Int(1))
        );
    }

    #[test]
    fn plain_scalars_are_typed_after_substitution() {
        let env = |k: &str| (k == "T").then(|| "0.75".to_string());
        let n = parse("a: ${T}\nb: '${T}'\nc: ${U:-7}\nd: $${T}\n", &env).expect("parses");
        assert_eq!(
            n.get("a").map(|v| v.value.clone()),
            Some(Value::Float(0.75))
        );
        assert_eq!(
            n.get("b").map(|v| v.value.clone()),
            Some(Value::Str("0.75".into()))
        );
        assert_eq!(n.get("c").map(|v| v.value.clone()), Some(Value::Int(7)));
        assert_eq!(
            n.get("d").map(|v| v.value.clone()),
            Some(Value::Str("${T}".into()))
        );
    }

    #[test]
    fn missing_variables_and_duplicate_keys_are_located() {
        let e = parse("steps:\n  - op: ${NOPE}\n", &no_env).expect_err("unset");
        assert!(e.to_string().contains("NOPE is not set"), "{e}");
        assert_eq!(e.at, Some(Origin::File { line: 2, col: 9 }));
        let e = parse("a: 1\na: 2\n", &no_env).expect_err("duplicate");
        assert!(e.to_string().starts_with("line 2, column 1: "), "{e}");
        let e = parse("a: [1, 2\n", &no_env).expect_err("syntax");
        assert!(e.at.is_some());
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        assert_eq!(plain_scalar("0.8"), Value::Float(0.8));
        assert_eq!(plain_scalar("-3"), Value::Int(-3));
        assert_eq!(plain_scalar("~"), Value::Null);
        assert_eq!(plain_scalar("yes"), Value::Str("yes".into()));
        assert_eq!(plain_scalar("1e3"), Value::Float(1000.0));
        assert_eq!(plain_scalar("inf"), Value::Str("inf".into()));
    }
}
