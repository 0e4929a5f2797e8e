//! Text that looks like what agents read and write: issue reports, thoughts, Python source with
//! `cat -n` numbering, grep hits, diffs. Everything is drawn from a seeded RNG.

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

const NOUNS: &[&str] = &[
    "parser",
    "config",
    "request",
    "session",
    "cache",
    "token",
    "handler",
    "schema",
    "record",
    "buffer",
    "column",
    "index",
    "encoder",
    "stream",
    "widget",
    "payload",
    "registry",
    "timestamp",
    "field",
    "query",
    "response",
    "adapter",
    "loader",
    "serializer",
    "matrix",
    "iterator",
    "manifest",
    "backend",
    "plugin",
    "router",
];
const VERBS: &[&str] = &[
    "parse",
    "load",
    "validate",
    "render",
    "encode",
    "decode",
    "resolve",
    "merge",
    "flush",
    "normalize",
    "convert",
    "register",
    "compute",
    "dispatch",
    "collect",
    "format",
    "update",
    "filter",
    "build",
    "emit",
];
const ADJECTIVES: &[&str] = &[
    "empty",
    "nested",
    "missing",
    "stale",
    "invalid",
    "duplicate",
    "unicode",
    "negative",
    "optional",
    "large",
    "default",
    "cached",
    "partial",
    "legacy",
    "async",
    "sorted",
    "naive",
    "relative",
    "mixed",
    "zero",
];
const THOUGHTS: &[&str] = &[
    "Let me look at how {noun} handling is implemented in {file}.",
    "The issue mentions that {verb} fails for {adj} values, so the bug is probably in the {noun} code path.",
    "I need to understand where `{func}` is called before changing it.",
    "This confirms my suspicion: the {adj} {noun} case is not handled.",
    "Now I'll make the minimal change to `{func}` so that {adj} inputs are handled correctly.",
    "Let me search the repository for other uses of `{func}` to make sure the change is safe.",
    "The edit looks right. Let me re-read the surrounding code to double-check edge cases.",
    "I should also check whether the {noun} class overrides `{func}`.",
    "Before editing, let me view the rest of {file} to see the helper functions.",
    "The fix should keep backward compatibility for callers that pass a {adj} {noun}.",
];

pub fn pick<'a>(rng: &mut ChaCha8Rng, items: &'a [&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or("")
}

pub fn identifier(rng: &mut ChaCha8Rng) -> String {
    format!("{}_{}", pick(rng, VERBS), pick(rng, NOUNS))
}

pub fn class_name(rng: &mut ChaCha8Rng) -> String {
    let noun = pick(rng, NOUNS);
    let mut c = noun.chars();
    let head = c.next().map(|h| h.to_ascii_uppercase()).unwrap_or('X');
    format!(
        "{head}{}{}",
        c.as_str(),
        pick(rng, &["Manager", "Base", "Error", "Mixin", "Field", "Spec"])
    )
}

/// A short reasoning paragraph of 1–4 sentences.
pub fn thought(rng: &mut ChaCha8Rng, file: &str) -> String {
    let n = rng.random_range(1..=4);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let func = identifier(rng);
        let s = pick(rng, THOUGHTS)
            .replace("{noun}", pick(rng, NOUNS))
            .replace("{verb}", pick(rng, VERBS))
            .replace("{adj}", pick(rng, ADJECTIVES))
            .replace("{file}", file)
            .replace("{func}", &func);
        out.push(s);
    }
    out.join(" ")
}

/// One line of Python at an indentation depth.
fn code_line(rng: &mut ChaCha8Rng, depth: usize) -> String {
    let pad = "    ".repeat(depth);
    let a = identifier(rng);
    let b = pick(rng, NOUNS);
    match rng.random_range(0..9) {
        0 => format!("{pad}if {b} is None:"),
        1 => format!("{pad}return self.{a}({b})"),
        2 => format!(
            "{pad}{b} = {a}({b}, strict={})",
            pick(rng, &["True", "False"])
        ),
        3 => format!("{pad}for item in self._{b}s:"),
        4 => format!(
            "{pad}raise ValueError(f\"{} {b}: {{{b}!r}}\")",
            pick(rng, ADJECTIVES)
        ),
        5 => format!(
            "{pad}# {} the {} {b} before returning",
            pick(rng, VERBS),
            pick(rng, ADJECTIVES)
        ),
        6 => format!("{pad}self._{b} = {b}"),
        7 => format!(
            "{pad}{b}.update({{\"{}\": {}}})",
            pick(rng, NOUNS),
            rng.random_range(0..1000)
        ),
        _ => format!("{pad}logger.debug(\"{a} %s\", {b})"),
    }
}

/// A Python module of about `lines` lines.
pub fn python_source(rng: &mut ChaCha8Rng, lines: usize) -> Vec<String> {
    let mut out = vec![
        "\"\"\"Module docstring.\"\"\"".to_string(),
        String::new(),
        "import logging".to_string(),
        format!("from .{} import {}", pick(rng, NOUNS), class_name(rng)),
        String::new(),
        "logger = logging.getLogger(__name__)".to_string(),
        String::new(),
    ];
    while out.len() < lines {
        out.push(String::new());
        out.push(format!("class {}:", class_name(rng)));
        for _ in 0..rng.random_range(1..5) {
            if out.len() >= lines {
                break;
            }
            out.push(String::new());
            out.push(format!(
                "    def {}(self, {}):",
                identifier(rng),
                pick(rng, NOUNS)
            ));
            for _ in 0..rng.random_range(3..12) {
                let depth = rng.random_range(2..4);
                out.push(code_line(rng, depth));
            }
        }
    }
    out.truncate(lines.max(1));
    out
}

/// `cat -n` style numbering, as OpenHands' editor prints file views.
pub fn numbered(lines: &[String], first: usize) -> String {
    let mut out = String::with_capacity(lines.iter().map(|l| l.len() + 8).sum());
    for (i, line) in lines.iter().enumerate() {
        out.push_str(&format!("{:6}\t{line}\n", first + i));
    }
    out
}

/// An issue report in the style of a GitHub issue.
pub fn issue(rng: &mut ChaCha8Rng, repo: &str, func: &str) -> String {
    let adj = pick(rng, ADJECTIVES);
    let noun = pick(rng, NOUNS);
    format!(
        "{func} fails on {adj} {noun}\n\nWhen calling `{func}` with a {adj} {noun}, {repo} raises an error instead of \
         returning the {noun} unchanged.\n\n```python\nfrom {pkg} import {func}\n{func}({noun}=None)\n```\n\nExpected: \
         the call succeeds.\nActual:\n```\nTraceback (most recent call last):\n  File \"<stdin>\", line 2, in <module>\n\
         ValueError: {adj} {noun}: None\n```\n\nThis worked in the previous release.",
        pkg = repo
            .split('/')
            .next_back()
            .unwrap_or(repo)
            .replace('-', "_"),
    )
}

/// A random lowercase hex string of `n` digits.
pub fn hex(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

pub fn uuid(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{}-{}-4{}-{}-{}",
        hex(rng, 8),
        hex(rng, 4),
        hex(rng, 3),
        hex(rng, 4),
        hex(rng, 12)
    )
}
