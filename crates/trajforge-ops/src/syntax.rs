//! Syntax checks with tree-sitter for the code a trajectory writes.
//!
//! Two sources of new code: files the agent creates (`str_replace_editor create` with
//! `file_text`) are parsed whole; the model patch is parsed hunk by hunk, post-image against
//! pre-image. A hunk is a fragment (it may start inside a function), so a fragment parse has
//! errors of its own; counting the errors the edit *adds* (post-image minus pre-image) separates
//! a broken edit from a merely partial view.

use std::cell::RefCell;
use std::collections::HashMap;

use tree_sitter::{Language, Parser};

/// Languages with a grammar linked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Java,
    Go,
    Rust,
}

impl Lang {
    /// The language of a file, from its extension.
    pub fn of_path(path: &str) -> Option<Lang> {
        let ext = path.rsplit_once('.')?.1;
        Some(match ext {
            "py" | "pyi" => Lang::Python,
            "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "java" => Lang::Java,
            "go" => Lang::Go,
            "rs" => Lang::Rust,
            _ => return None,
        })
    }

    fn grammar(self) -> Language {
        match self {
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Java => tree_sitter_java::LANGUAGE.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
            Lang::Tsx => "tsx",
            Lang::Java => "java",
            Lang::Go => "go",
            Lang::Rust => "rust",
        }
    }

    /// Parses a language name as written in a pipeline (`python`, `typescript`, …).
    pub fn parse(name: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.name() == name)
    }

    pub const ALL: [Lang; 7] = [
        Lang::Python,
        Lang::JavaScript,
        Lang::TypeScript,
        Lang::Tsx,
        Lang::Java,
        Lang::Go,
        Lang::Rust,
    ];
}

thread_local! {
    /// Parsers are cheap to reuse and costly to build; one per language per thread.
    static PARSERS: RefCell<HashMap<Lang, Parser>> = RefCell::new(HashMap::new());
}

/// Number of ERROR and MISSING nodes tree-sitter reports for `source`.
pub fn syntax_errors(lang: Lang, source: &str) -> usize {
    PARSERS.with(|cell| {
        let mut parsers = cell.borrow_mut();
        let parser = parsers.entry(lang).or_insert_with(|| {
            let mut p = Parser::new();
            // A grammar from this build always matches the linked tree-sitter ABI.
            let _ = p.set_language(&lang.grammar());
            p
        });
        let Some(tree) = parser.parse(source, None) else {
            return 0;
        };
        if !tree.root_node().has_error() {
            return 0;
        }
        let mut count = 0;
        let mut cursor = tree.walk();
        loop {
            let node = cursor.node();
            if node.is_error() || node.is_missing() {
                count += 1;
            }
            let descend = node.has_error() && !node.is_error();
            if descend && cursor.goto_first_child() {
                continue;
            }
            while !cursor.goto_next_sibling() {
                if !cursor.goto_parent() {
                    return count;
                }
            }
        }
    })
}

/// One file's share of a unified diff.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileDiff {
    pub path: String,
    pub new_file: bool,
    /// `(pre-image, post-image)` per hunk.
    pub hunks: Vec<(String, String)>,
}

/// `@@ -a,b +c,d @@` → `(b, d)` (a missing count means 1).
fn hunk_counts(header: &str) -> Option<(usize, usize)> {
    let mut parts = header.split_whitespace().skip(1);
    let count = |spec: &str| -> Option<usize> {
        match spec.split_once(',') {
            Some((_, n)) => n.parse().ok(),
            None => Some(1),
        }
    };
    let old = count(parts.next()?.strip_prefix('-')?)?;
    let new = count(parts.next()?.strip_prefix('+')?)?;
    Some((old, new))
}

/// Splits a unified diff into files and hunk images (context + removed, context + added).
/// Hunk lines are counted from the `@@` header, so a removed line that reads `-- x` is never
/// taken for a file header.
pub fn split_diff(patch: &str) -> Vec<FileDiff> {
    let mut files: Vec<FileDiff> = Vec::new();
    let mut from_null = false;
    let (mut old_left, mut new_left) = (0usize, 0usize);
    for line in patch.lines() {
        if old_left > 0 || new_left > 0 {
            let Some((pre, post)) = files.last_mut().and_then(|f| f.hunks.last_mut()) else {
                break;
            };
            let (tag, text) = line.split_at(line.len().min(1));
            match tag {
                "-" => {
                    old_left = old_left.saturating_sub(1);
                    pre.push_str(text);
                    pre.push('\n');
                }
                "+" => {
                    new_left = new_left.saturating_sub(1);
                    post.push_str(text);
                    post.push('\n');
                }
                "\\" => {} // `\ No newline at end of file`
                _ => {
                    old_left = old_left.saturating_sub(1);
                    new_left = new_left.saturating_sub(1);
                    for image in [pre, post] {
                        image.push_str(text);
                        image.push('\n');
                    }
                }
            }
        } else if let Some(src) = line.strip_prefix("--- ") {
            from_null = src.trim() == "/dev/null";
        } else if let Some(dst) = line.strip_prefix("+++ ") {
            let dst = dst.trim();
            files.push(FileDiff {
                path: dst.strip_prefix("b/").unwrap_or(dst).to_string(),
                new_file: from_null,
                hunks: Vec::new(),
            });
        } else if line.starts_with("@@")
            && let (Some(f), Some((old, new))) = (files.last_mut(), hunk_counts(line))
        {
            f.hunks.push((String::new(), String::new()));
            (old_left, new_left) = (old, new);
        }
    }
    files
}

/// Syntax errors an edit adds to one file: whole post-image for new files, otherwise the sum
/// over hunks of errors gained (never negative per hunk).
pub fn errors_added(diff: &FileDiff, lang: Lang) -> usize {
    if diff.new_file {
        let whole: String = diff.hunks.iter().map(|(_, post)| post.as_str()).collect();
        return syntax_errors(lang, &whole);
    }
    diff.hunks
        .iter()
        .map(|(pre, post)| syntax_errors(lang, post).saturating_sub(syntax_errors(lang, pre)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_in_every_language() {
        let cases = [
            (
                Lang::Python,
                "def f(x):\n    return x + 1\n",
                "def f(x:\n    return x +\n",
            ),
            (
                Lang::JavaScript,
                "function f(x) { return x; }",
                "function f(x { return x; }",
            ),
            (Lang::TypeScript, "let x: number = 1;", "let x: = ;"),
            (
                Lang::Tsx,
                "const a = <div>{x}</div>;",
                "const a = <div>{x</div>;",
            ),
            (
                Lang::Java,
                "class A { int f() { return 1; } }",
                "class A { int f() { return 1 }",
            ),
            (
                Lang::Go,
                "package m\nfunc f() int { return 1 }\n",
                "package m\nfunc f( int {\n",
            ),
            (Lang::Rust, "fn f() -> u8 { 1 }", "fn f( -> u8 { 1 "),
        ];
        for (lang, good, bad) in cases {
            assert_eq!(syntax_errors(lang, good), 0, "{lang:?} good");
            assert!(syntax_errors(lang, bad) > 0, "{lang:?} bad");
        }
    }

    #[test]
    fn languages_from_paths() {
        assert_eq!(Lang::of_path("src/a/b.py"), Some(Lang::Python));
        assert_eq!(Lang::of_path("x.tsx"), Some(Lang::Tsx));
        assert_eq!(Lang::of_path("Makefile"), None);
        assert_eq!(Lang::parse("go"), Some(Lang::Go));
    }

    const PATCH: &str = "diff --git a/pkg/m.py b/pkg/m.py\nindex 1..2 100644\n--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -3,3 +3,3 @@ def f():\n     if x:\n-        return 1\n+        return (1\n     return 2\n";

    #[test]
    fn hunk_images_and_added_errors() {
        let files = split_diff(PATCH);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, "pkg/m.py");
        let (pre, post) = &files[0].hunks[0];
        assert_eq!(pre, "    if x:\n        return 1\n    return 2\n");
        assert_eq!(post, "    if x:\n        return (1\n    return 2\n");
        assert!(errors_added(&files[0], Lang::Python) > 0);
        let fixed = PATCH.replace("return (1", "return 1  # ok");
        assert_eq!(errors_added(&split_diff(&fixed)[0], Lang::Python), 0);
    }

    #[test]
    fn new_files_are_parsed_whole() {
        let p = "diff --git a/n.py b/n.py\nnew file mode 100644\n--- /dev/null\n+++ b/n.py\n@@ -0,0 +1,2 @@\n+def g():\n+    return 3\n";
        let files = split_diff(p);
        assert!(files[0].new_file);
        assert_eq!(errors_added(&files[0], Lang::Python), 0);
    }
}
