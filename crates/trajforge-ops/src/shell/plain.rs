//! The plain-command lexer: the fast path for scripts made only of words, quotes, backslash
//! escapes, `&&`, `||`, `|`, `;` and file redirections — `cd /ws && grep -rn "x\|y" . | head`,
//! which is what agents type nearly every time. It refuses everything else (expansions,
//! substitutions, compound commands, here-documents, comments, reserved words, newlines, `&`) by
//! returning `None`, and the grammar reads the script instead. On what it accepts it gives the
//! grammar's commands exactly; a test compares the two on random scripts.

use super::{Command, Stdin};

/// The simple commands of a plain script, or `None` when the script is not plain.
pub(super) fn commands(script: &str) -> Option<Vec<Command>> {
    let mut lexer = Lexer {
        bytes: script.as_bytes(),
        at: 0,
        out: Vec::new(),
        current: Command::default(),
        piped_from: None,
        has_prefix: false,
    };
    lexer.run()?;
    Some(lexer.out)
}

struct Lexer<'s> {
    bytes: &'s [u8],
    at: usize,
    out: Vec<Command>,
    current: Command,
    /// The command whose output the current one reads (after `|`).
    piped_from: Option<usize>,
    /// The current command has an assignment or a redirection (with no words, the grammar
    /// makes an empty command of it; left to the grammar).
    has_prefix: bool,
}

/// Words that open or close compound commands: a command starting with one is not plain.
const RESERVED: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "in", "select", "function", "coproc", "time",
];

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn run(&mut self) -> Option<()> {
        loop {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.at += 1;
            }
            let Some(c) = self.peek() else {
                return self.end_command(true);
            };
            match c {
                b'|' | b'&' | b';' => self.operator(c)?,
                b'<' | b'>' => self.redirect(false)?,
                _ => {
                    let start = self.at;
                    let word = self.word()?;
                    if matches!(self.peek(), Some(b'<' | b'>')) {
                        // `2>&1`: digits right before the operator name a file descriptor.
                        // The grammar drops a bare `-` argument right before one (`grep - 2>&1`).
                        let digits = &self.bytes[start..self.at];
                        let after_dash = self.current.words.last().is_some_and(|w| w == "-");
                        if digits.iter().all(u8::is_ascii_digit) && !after_dash {
                            self.redirect(true)?;
                            continue;
                        }
                        return None;
                    }
                    self.push_word(word)?;
                }
            }
        }
    }

    /// `&&`, `||`, `|`, `;`, or `&>` (a redirection).
    fn operator(&mut self, c: u8) -> Option<()> {
        let next = self.bytes.get(self.at + 1).copied();
        match (c, next) {
            (b'&', Some(b'>')) => self.redirect(false),
            (b'&', Some(b'&')) | (b'|', Some(b'|')) => {
                self.at += 2;
                self.end_command(false)?;
                self.piped_from = None;
                Some(())
            }
            (b'|', Some(b'&')) | (b'&', _) | (b';', Some(b';' | b'&')) => None,
            (b'|', _) => {
                self.at += 1;
                self.end_command(false)?;
                self.piped_from = Some(self.out.len() - 1);
                Some(())
            }
            _ => {
                self.at += 1;
                // A `;` may end the script but never follows an empty command.
                self.end_command(false)?;
                self.piped_from = None;
                Some(())
            }
        }
    }

    /// A redirection operator and its target word, which is dropped: where output goes does not
    /// change what runs. `after_fd` is set when a file descriptor was read before the operator.
    fn redirect(&mut self, after_fd: bool) -> Option<()> {
        let rest = &self.bytes[self.at..];
        // Here-documents and strings, descriptor duplication on input, `>|` and `2&…` are the
        // grammar's.
        let grammar_only = [&b"<<"[..], b"<&", b"<>", b">|"]
            .iter()
            .any(|op| rest.starts_with(op))
            || (after_fd && rest.starts_with(b"&"));
        if grammar_only {
            return None;
        }
        let op_len = if rest.starts_with(b"&>>") {
            3
        } else if [&b">>"[..], b"&>", b">&"]
            .iter()
            .any(|op| rest.starts_with(op))
        {
            2
        } else {
            1
        };
        // A redirection before the command's name: the grammar's business.
        if self.current.words.is_empty() {
            return None;
        }
        self.at += op_len;
        self.has_prefix = true;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
        match self.peek() {
            Some(b'|' | b'&' | b';' | b'<' | b'>') | None => None,
            // A target that reads as an assignment confuses the grammar; leave it to it.
            Some(_) => {
                // Only bare targets (`/dev/null`, `out.txt`): the grammar reads quoted and
                // assignment-like ones its own way.
                let target = self
                    .word()
                    .filter(|w| !w.assignment && w.quoted == 0 && w.head == w.text.len())
                    .map(drop);
                let touching = matches!(self.peek(), Some(b'<' | b'>'));
                target.filter(|()| !touching)
            }
        }
    }

    fn push_word(&mut self, word: Word) -> Option<()> {
        let at_start = self.current.words.is_empty();
        if at_start {
            let head = word.text.get(..word.head).unwrap_or("");
            let odd = word.special || word.text.starts_with('-');
            if odd || RESERVED.contains(&word.text.as_str()) || RESERVED.contains(&head) {
                return None;
            }
            if word.assignment {
                self.has_prefix = true;
                return Some(());
            }
        }
        self.current.words.push(word.text);
        Some(())
    }

    /// Closes the current command; `last` when the script ends. An empty command before an
    /// operator (`&& &&`, a leading `|`) is not plain.
    fn end_command(&mut self, last: bool) -> Option<()> {
        if self.current.words.is_empty() {
            if self.has_prefix {
                return None;
            }
            // Only a script's end may follow `;` (`ls;`), or close an empty script.
            let after_separator =
                self.at > 0 && self.bytes[..self.at].trim_ascii_end().ends_with(b";");
            let empty_script = self.out.is_empty() && self.piped_from.is_none();
            return (last && (after_separator || empty_script)).then_some(());
        }
        let mut command = std::mem::take(&mut self.current);
        command.stdin = self.piped_from.map(Stdin::Pipe);
        self.has_prefix = false;
        self.out.push(command);
        Some(())
    }

    /// One word, unquoted. Refuses what only the grammar reads.
    fn word(&mut self) -> Option<Word> {
        let start = self.at;
        let mut text = Vec::new();
        let mut word = Word::default();
        let mut plain_prefix = true;
        // `A="b c"` is an assignment the grammar reads; `A="b"c` or `A='b'"c"` it does not.
        let mut value_quoted = false;
        let mut head = None;
        while let Some(c) = self.peek() {
            if head.is_none() && matches!(c, b'\'' | b'"' | b'\\') {
                head = Some(text.len());
            }
            if word.assignment && value_quoted && !matches!(c, b' ' | b'\t' | b'|' | b'&' | b';') {
                return None;
            }
            match c {
                b' ' | b'\t' | b'|' | b'&' | b';' | b'<' | b'>' => break,
                b'\n' | b'\r' | b'$' | b'`' | b'(' | b')' | b'[' | b']' => return None,
                b'#' if text.is_empty() && word.quoted == 0 => return None,
                b'\'' => {
                    self.at += 1;
                    let len = self.bytes[self.at..].iter().position(|&b| b == b'\'')?;
                    text.extend_from_slice(&self.bytes[self.at..self.at + len]);
                    self.at += len + 1;
                    value_quoted = word.assignment;
                    word.quoted += 1;
                    plain_prefix = false;
                }
                b'"' => {
                    self.at += 1;
                    self.double_quoted(&mut text)?;
                    value_quoted = word.assignment;
                    word.quoted += 1;
                    plain_prefix = false;
                }
                b'\\' => {
                    let next = *self.bytes.get(self.at + 1)?;
                    // The grammar splits `''\;` in two; bash does not.
                    if word.quoted > 0 || matches!(next, b'\n' | b'\r' | b' ' | b'\t') {
                        return None;
                    }
                    text.push(next);
                    self.at += 2;
                    plain_prefix = false;
                }
                b'=' if plain_prefix && is_name(&text) => {
                    word.assignment = true;
                    plain_prefix = false;
                    text.push(c);
                    self.at += 1;
                }
                _ => {
                    word.special |= matches!(c, b'{' | b'}' | b'!' | b'~' | b'=' | b'#');
                    text.push(c);
                    self.at += 1;
                }
            }
        }
        // Braces are brace expansions or groups, except `find -exec`'s `{}`, which the grammar
        // splits from what touches it.
        let raw = &self.bytes[start..self.at];
        if (raw.contains(&b'{') || raw.contains(&b'}')) && raw != b"{}" {
            return None;
        }
        // The grammar reads a leading `==` or `=~` as a test operator and splits the word there.
        if raw.starts_with(b"==") || raw.starts_with(b"=~") {
            return None;
        }
        word.head = head.unwrap_or(text.len());
        word.text = String::from_utf8(text).ok()?;
        Some(word)
    }

    /// The rest of a `"…"` string; `\` escapes `"`, `\` and `` ` `` and `$` there, and stays
    /// before anything else. Expansions are the grammar's.
    fn double_quoted(&mut self, text: &mut Vec<u8>) -> Option<()> {
        loop {
            let c = self.peek()?;
            self.at += 1;
            match c {
                b'"' => return Some(()),
                b'$' | b'`' | b'\n' | b'\r' | b'!' => return None,
                b'\\' => {
                    let next = self.peek()?;
                    if matches!(next, b'\n' | b'\r' | b'$' | b'`') {
                        return None;
                    }
                    if !matches!(next, b'"' | b'\\') {
                        text.push(b'\\');
                    }
                    text.push(next);
                    self.at += 1;
                }
                _ => text.push(c),
            }
        }
    }
}

#[derive(Default)]
struct Word {
    text: String,
    /// Quoted parts in the word.
    quoted: usize,
    /// `NAME=…`: an assignment where a command starts.
    assignment: bool,
    /// Holds a character that changes its meaning where a command starts (`{`, `!`, `~`, …).
    special: bool,
    /// Length of the text before the first quote or backslash (`if"x"` starts with `if`, which
    /// the grammar reads as the keyword).
    head: usize,
}

fn is_name(text: &[u8]) -> bool {
    text.first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        && text.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}
