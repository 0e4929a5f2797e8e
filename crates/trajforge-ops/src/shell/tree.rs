//! The grammar path: a script parsed with tree-sitter-bash, and every `command` node in it
//! visited — in lists, pipelines, compound statements, loops, `case` arms, functions, subshells,
//! command and process substitutions, assignments and here-document bodies. Each command comes
//! out with its words unquoted and, where the script shows it, what its standard input is: a
//! here-document or here-string, or the command before it in a pipeline. A broken script still
//! parses (tree-sitter recovers around `ERROR` nodes), and the commands around the break are
//! read as well.

use std::cell::RefCell;

use tree_sitter::{Node, Parser};

use super::{Command, Stdin};

thread_local! {
    static PARSER: RefCell<Option<Parser>> = const { RefCell::new(None) };
}

/// Nodes nested deeper than this are not visited: a pathological `((((…` cannot exhaust the
/// stack, and no real command nests this deep.
const MAX_NESTING: usize = 256;

/// The simple commands of `script`, in source order (a command before the ones nested in it).
pub(super) fn commands(script: &str) -> Vec<Command> {
    let Some(tree) = parse(script) else {
        return Vec::new();
    };
    let mut walker = Walker {
        src: script,
        out: Vec::new(),
    };
    walker.walk(tree.root_node(), None, 0);
    walker.out
}

/// Whether the grammar reads `script` without an error to recover from.
#[cfg(test)]
pub(super) fn parses_cleanly(script: &str) -> bool {
    parse(script).is_some_and(|t| !t.root_node().has_error())
}

fn parse(script: &str) -> Option<tree_sitter::Tree> {
    PARSER.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            let mut parser = Parser::new();
            // Fails only if the linked grammar and the tree-sitter runtime disagree on the ABI,
            // which the build fixes; with no language, `parse` returns None below.
            let _ = parser.set_language(&tree_sitter_bash::LANGUAGE.into());
            *cell = Some(parser);
        }
        cell.as_mut().and_then(|p| p.parse(script, None))
    })
}

struct Walker<'s> {
    src: &'s str,
    out: Vec<Command>,
}

impl<'s> Walker<'s> {
    fn text(&self, node: Node) -> &'s str {
        self.src.get(node.byte_range()).unwrap_or("")
    }

    /// Visits `node`; `stdin` reaches the simple command the node ends with. Returns that
    /// command's index, which a pipeline feeds to the next command.
    fn walk(&mut self, node: Node, stdin: Option<Stdin>, depth: usize) -> Option<usize> {
        if depth > MAX_NESTING {
            return None;
        }
        match node.kind() {
            "command" => Some(self.command(node, stdin, depth)),
            "redirected_statement" => self.redirected(node, stdin, depth),
            "pipeline" => self.pipeline(node, None, stdin, depth),
            "list" => {
                let last = last_named_child(node);
                let mut tail = None;
                for child in named_children(node) {
                    let feed = if Some(child) == last {
                        stdin.clone()
                    } else {
                        None
                    };
                    tail = self.walk(child, feed, depth + 1);
                }
                tail
            }
            _ => {
                self.walk_children(node, depth);
                None
            }
        }
    }

    fn walk_children(&mut self, node: Node, depth: usize) {
        for child in named_children(node) {
            self.walk(child, None, depth + 1);
        }
    }

    fn command(&mut self, node: Node, stdin: Option<Stdin>, depth: usize) -> usize {
        let index = self.out.len();
        self.out.push(Command {
            words: Vec::new(),
            stdin,
        });
        let mut words = Vec::new();
        let mut cursor = node.walk();
        for (i, child) in node.children(&mut cursor).enumerate() {
            let field = u32::try_from(i)
                .ok()
                .and_then(|i| node.field_name_for_child(i));
            match (field, child.kind()) {
                (Some("name" | "argument"), _) => words.push(self.word(child)),
                (_, "herestring_redirect") => {
                    if let Some(text) = last_named_child(child) {
                        let text = self.word(text);
                        if let Some(command) = self.out.get_mut(index) {
                            command.stdin = Some(Stdin::Text(text));
                        }
                    }
                }
                _ => {}
            }
            if child.is_named() {
                // Substitutions in a name, an argument, an assignment or a redirection run.
                self.walk(child, None, depth + 1);
            }
        }
        if let Some(command) = self.out.get_mut(index) {
            command.words = words;
        }
        index
    }

    /// `BODY REDIRECT…`: a here-document or here-string feeds the command the body ends with;
    /// what follows a here-document's start on its line (`| bash`, `&& python f.py`) continues
    /// the statement.
    fn redirected(&mut self, node: Node, stdin: Option<Stdin>, depth: usize) -> Option<usize> {
        let mut fed = stdin;
        let mut extra_words = Vec::new();
        let mut cursor = node.walk();
        for redirect in node.children_by_field_name("redirect", &mut cursor) {
            match redirect.kind() {
                "heredoc_redirect" => {
                    let body = named_children(redirect).find(|c| c.kind() == "heredoc_body");
                    fed = Some(Stdin::Text(body.map_or("", |b| self.text(b)).to_string()));
                }
                "herestring_redirect" => {
                    let text = last_named_child(redirect).map(|t| self.word(t));
                    fed = text.map(Stdin::Text);
                }
                // `ls > out b`: bash reads every word after the first target as an argument.
                "file_redirect" => {
                    let mut c = redirect.walk();
                    let targets = redirect.children_by_field_name("destination", &mut c);
                    extra_words.extend(targets.skip(1).map(|t| self.word(t)));
                }
                _ => {}
            }
        }
        let body = node.child_by_field_name("body");
        let tail = body.and_then(|b| self.walk(b, fed, depth + 1));
        if let Some(command) = tail.and_then(|t| self.out.get_mut(t)) {
            command.words.extend(extra_words);
        }
        let mut cursor = node.walk();
        for redirect in node.children_by_field_name("redirect", &mut cursor) {
            for part in named_children(redirect) {
                match part.kind() {
                    "heredoc_start" | "heredoc_end" => {}
                    "pipeline" => {
                        self.pipeline(part, tail, None, depth + 1);
                    }
                    _ => {
                        self.walk(part, None, depth + 1);
                    }
                }
            }
        }
        tail
    }

    /// Commands joined by `|`, each reading the one before it (`from` feeds the first).
    fn pipeline(
        &mut self,
        node: Node,
        from: Option<usize>,
        stdin: Option<Stdin>,
        depth: usize,
    ) -> Option<usize> {
        let last = last_named_child(node);
        let mut previous = from;
        for child in named_children(node) {
            let feed = match previous {
                Some(p) => Some(Stdin::Pipe(p)),
                None if Some(child) == last => stdin.clone(),
                None => None,
            };
            previous = self.walk(child, feed, depth + 1);
        }
        previous
    }

    /// A word as the shell passes it: quotes removed, escapes applied, expansions as written.
    fn word(&self, node: Node) -> String {
        let text = self.text(node);
        match node.kind() {
            "command_name" => node
                .named_child(0)
                .map_or_else(String::new, |w| self.word(w)),
            "word" => unescape_bare(text),
            "raw_string" => strip(text, "'", "'").to_string(),
            "string" => unescape_double(strip(text, "\"", "\"")),
            "translated_string" => unescape_double(strip(text, "$\"", "\"")),
            "ansi_c_string" => decode_ansi_c(strip(text, "$'", "'")),
            "concatenation" => {
                let mut cursor = node.walk();
                let parts = node.children(&mut cursor);
                parts.map(|p| self.word(p)).collect()
            }
            _ => text.to_string(),
        }
    }
}

fn named_child_count(node: Node) -> u32 {
    u32::try_from(node.named_child_count()).unwrap_or(u32::MAX)
}

fn named_children(node: Node) -> impl Iterator<Item = Node> {
    (0..named_child_count(node)).filter_map(move |i| node.named_child(i))
}

fn last_named_child(node: Node) -> Option<Node> {
    named_child_count(node)
        .checked_sub(1)
        .and_then(|i| node.named_child(i))
}

fn strip<'t>(text: &'t str, open: &str, close: &str) -> &'t str {
    let inner = text.strip_prefix(open).unwrap_or(text);
    inner.strip_suffix(close).unwrap_or(inner)
}

/// An unquoted word: `\x` is `x`, and a backslash before a newline joins the lines.
fn unescape_bare(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(n) => out.push(n),
            },
            _ => out.push(c),
        }
    }
    out
}

/// Inside `"…"`: a backslash escapes only `$`, `` ` ``, `"`, `\` and a newline.
fn unescape_double(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('\n') => {
                chars.next();
            }
            Some(&n @ ('$' | '`' | '"' | '\\')) => {
                out.push(n);
                chars.next();
            }
            _ => out.push('\\'),
        }
    }
    out
}

/// `$'…'`: C escapes, so that `$'\x70ython'` reads as `python`.
fn decode_ansi_c(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            out.push('\\');
            break;
        };
        let simple = match e {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'e' | 'E' => Some('\x1b'),
            'f' => Some('\x0c'),
            'v' => Some('\x0b'),
            '\\' | '\'' | '"' | '?' => Some(e),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        let (radix, max) = match e {
            'x' => (16, 2),
            'u' => (16, 4),
            'U' => (16, 8),
            '0'..='7' => (8, 2),
            _ => {
                out.extend(['\\', e]);
                continue;
            }
        };
        let mut digits = String::new();
        if radix == 8 {
            digits.push(e);
        }
        while digits.len() < max + usize::from(radix == 8) {
            match chars.next_if(|d| d.is_digit(radix)) {
                Some(d) => digits.push(d),
                None => break,
            }
        }
        let code = u32::from_str_radix(&digits, radix).ok();
        match code.and_then(char::from_u32) {
            Some(ch) => out.push(ch),
            None => out.extend(['\\', e]),
        }
    }
    out
}
