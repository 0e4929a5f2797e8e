//! Which programs a shell command actually runs, read with the bash grammar.
//!
//! ZERO trajectories must not execute code, so `no_execution` (and the SQL function
//! `bash_commands`) need to know that `for f in t/*.py; do python "$f"; done` runs python while
//! `grep -rn python setup.cfg` runs grep. A script is parsed with tree-sitter-bash ([`tree`]) and
//! every simple command is visited, wherever it sits: lists, pipelines, compound statements,
//! functions, subshells, command and process substitutions. Each command is then followed
//! through wrappers and runners ([`resolve`]: `env`, `timeout`, `sudo`, `xargs`, `find -exec`,
//! `uv run`, `coverage run -m`, `python -m pip`, …), and strings a shell runs — `bash -c '…'`,
//! `eval`, a here-document, here-string or `echo …` piped into `sh` — are parsed in turn.
//! Commands made only of words, quotes and `&&`/`||`/`|`/`;` (nearly every agent command) take a
//! lexer of their own ([`plain`]) that gives the same commands as the grammar, which a test
//! checks on random scripts; it keeps the 300k-row runs as fast as before the grammar.
//! It reads, it never expands: variables stay as written, which is what a static check of a
//! transcript can do.

mod plain;
mod resolve;
mod tree;

/// One program invocation found in a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Base name of the program (`/usr/bin/python3` → `python3`).
    pub program: String,
    /// Arguments after the program name, unquoted.
    pub args: Vec<String>,
}

impl Invocation {
    /// `python3 -m pytest` → `Some("pytest")`.
    pub fn python_module(&self) -> Option<&str> {
        resolve::python_module(&self.args).map(|(m, _)| m)
    }
}

/// A simple command as the shell sees it: its words, unquoted, and what its standard input
/// receives when the script says (a here-document or here-string, or the command before it in a
/// pipeline).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Command {
    words: Vec<String>,
    stdin: Option<Stdin>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stdin {
    Text(String),
    /// The output of the command at this index of the same list.
    Pipe(usize),
}

/// Every program a script invokes, in order, nested invocations included.
pub fn invocations(script: &str) -> Vec<Invocation> {
    let mut out = Vec::new();
    collect(script, 0, &mut out);
    out
}

/// How deep scripts inside scripts (`bash -c "eval '…'"`) are followed.
const MAX_DEPTH: usize = 8;

fn collect(script: &str, depth: usize, out: &mut Vec<Invocation>) {
    if depth > MAX_DEPTH {
        return;
    }
    let commands = simple_commands(script);
    for (i, command) in commands.iter().enumerate() {
        let stdin = stdin_text(&commands, i);
        resolve::resolve(&command.words, stdin.as_deref(), depth, out);
    }
}

/// The simple commands of a script: the plain lexer's when it accepts the script, else the
/// grammar's.
fn simple_commands(script: &str) -> Vec<Command> {
    plain::commands(script).unwrap_or_else(|| tree::commands(script))
}

/// The text command `i` reads on its standard input, where the script shows it.
fn stdin_text(commands: &[Command], i: usize) -> Option<String> {
    match &commands.get(i)?.stdin {
        None => None,
        Some(Stdin::Text(text)) => Some(text.clone()),
        // A producer always comes before its consumer, so this recursion ends.
        Some(Stdin::Pipe(from)) if *from < i => output_text(commands, *from),
        Some(Stdin::Pipe(_)) => None,
    }
}

/// What command `i` writes to its standard output, where that is plain from the script:
/// `echo`/`printf` their arguments, `cat`/`tee` with no file arguments what they read.
fn output_text(commands: &[Command], i: usize) -> Option<String> {
    let words = &commands.get(i)?.words;
    let (program, args) = words.split_first()?;
    match program.as_str() {
        "echo" => {
            let args = args
                .iter()
                .skip_while(|a| matches!(a.as_str(), "-e" | "-n" | "-E"));
            Some(args.cloned().collect::<Vec<_>>().join(" "))
        }
        "printf" => Some(args.join(" ")),
        "cat" | "tee" if args.iter().all(|a| a.starts_with('-')) => stdin_text(commands, i),
        _ => None,
    }
}

/// The family a program name belongs to: `python3.11` → `python`, `pip3` → `pip`,
/// `py.test` → `pytest`, a script run by path (`./repro.py`) → `python`; other names are
/// returned as they are.
pub fn program_family(program: &str) -> &str {
    let versioned = |p: &str, stem: &str| {
        p.strip_prefix(stem)
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
    };
    if versioned(program, "python") || versioned(program, "pypy") || program.ends_with(".py") {
        "python"
    } else if versioned(program, "pip") {
        "pip"
    } else if program == "py.test" || versioned(program, "pytest") {
        "pytest"
    } else {
        program
    }
}

/// The literal texts a script must contain (once quotes and backslashes are removed) for it to
/// run one of `forbid`'s programs or families: a cheap test that lets most commands skip the
/// parse.
#[derive(Debug, Clone)]
pub struct Needles(Vec<String>);

impl Needles {
    pub fn new<'a>(forbid: impl IntoIterator<Item = &'a str>) -> Needles {
        let mut needles = Vec::new();
        for name in forbid {
            match name {
                "python" => needles.extend(["python", "pypy", ".py"]),
                "pytest" => needles.extend(["pytest", "py.test"]),
                other => needles.push(other),
            }
        }
        Needles(needles.into_iter().map(String::from).collect())
    }

    /// False only when the script cannot name a needle. Needles are looked for with quotes and
    /// backslashes removed (`py"th"on`, `p\ython`); an ANSI-C string (`$'\x70ython'`) can spell
    /// any name, so a script with one always may match. Names hidden in variables (`$PY t.py`)
    /// are beyond any static reading, parsed or not.
    pub fn may_match(&self, script: &str) -> bool {
        if script.contains("$'") {
            return true;
        }
        let bare: String;
        let text = if script.contains(['\'', '"', '\\']) {
            bare = script
                .replace("\\\n", "")
                .chars()
                .filter(|c| !matches!(c, '\'' | '"' | '\\'))
                .collect();
            bare.as_str()
        } else {
            script
        };
        self.0.iter().any(|n| text.contains(n.as_str()))
    }
}

#[cfg(test)]
mod tests;
