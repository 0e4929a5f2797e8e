//! A shell-command reader that finds which programs a command line actually runs.
//!
//! ZERO trajectories must not execute code, so `no_execution` needs to know that
//! `cd ws && PYTHONPATH=. timeout 60 /usr/bin/python3 -m pytest` runs pytest while
//! `grep -rn python setup.cfg` runs grep. This module splits a script into simple commands
//! (quotes, escapes, `|`, `&&`, `||`, `;`, `&`, newlines, subshells, `$(…)`, backticks,
//! redirections and here-documents), recurses into `bash -c '…'`, `eval`, `find -exec` and
//! `xargs`, strips environment assignments and wrappers (`env`, `timeout`, `nice`, `sudo`,
//! `uv run`, …) and reports each invoked program by its base name. It reads, it never expands:
//! variables stay as written, which is what a static check of a transcript can do.

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
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if a == "-m" {
                return it.next().map(String::as_str);
            }
            if let Some(m) = a.strip_prefix("-m").filter(|m| !m.is_empty()) {
                return Some(m);
            }
            if !a.starts_with('-') || a == "-c" {
                return None;
            }
        }
        None
    }
}

/// Every program a script invokes, in order, nested invocations included.
pub fn invocations(script: &str) -> Vec<Invocation> {
    let mut out = Vec::new();
    collect(script, 0, &mut out);
    out
}

const MAX_DEPTH: usize = 8;

fn collect(script: &str, depth: usize, out: &mut Vec<Invocation>) {
    if depth > MAX_DEPTH {
        return;
    }
    let mut nested = Vec::new();
    for words in simple_commands(script, &mut nested) {
        resolve(&words, depth, out);
    }
    for inner in nested {
        collect(&inner, depth + 1, out);
    }
}

/// Lexer state for one script.
struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    src: &'a str,
    word: String,
    in_word: bool,
    words: Vec<String>,
    commands: Vec<Vec<String>>,
    /// The next word is a redirection target, not an argument.
    skip_next: bool,
    /// Here-document delimiters whose bodies start at the next newline.
    heredocs: Vec<(String, bool)>,
    pending_heredoc: Option<bool>,
}

/// Splits `script` into simple commands (lists of unquoted words); the bodies of `$(…)` and
/// backticks go to `nested` to be read on their own.
fn simple_commands(script: &str, nested: &mut Vec<String>) -> Vec<Vec<String>> {
    let mut lx = Lexer {
        chars: script.char_indices().peekable(),
        src: script,
        word: String::new(),
        in_word: false,
        words: Vec::new(),
        commands: Vec::new(),
        skip_next: false,
        heredocs: Vec::new(),
        pending_heredoc: None,
    };
    while let Some((i, c)) = lx.chars.next() {
        match c {
            ' ' | '\t' | '\r' => lx.end_word(),
            '\n' => {
                lx.end_command();
                lx.skip_heredoc_bodies();
            }
            '#' if !lx.in_word => lx.skip_line(),
            '\'' => {
                lx.in_word = true;
                for (_, c) in lx.chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    lx.word.push(c);
                }
            }
            '"' => lx.double_quoted(nested),
            '\\' => match lx.chars.next() {
                Some((_, '\n')) | None => {}
                Some((_, c)) => {
                    lx.in_word = true;
                    lx.word.push(c);
                }
            },
            '$' if lx.chars.peek().map(|p| p.1) == Some('(') => {
                lx.chars.next();
                let body = lx.until_close_paren();
                nested.push(body);
                lx.in_word = true;
                lx.word.push_str("$(…)");
            }
            '`' => {
                let start = i + 1;
                let mut end = lx.src.len();
                for (j, c) in lx.chars.by_ref() {
                    if c == '`' {
                        end = j;
                        break;
                    }
                }
                nested.push(lx.src[start..end].to_string());
                lx.in_word = true;
                lx.word.push_str("`…`");
            }
            '|' | ';' | '(' | ')' => {
                lx.chars.next_if(|p| p.1 == c || (c == '|' && p.1 == '&'));
                lx.end_command();
            }
            '&' => {
                if lx.chars.next_if(|p| p.1 == '>').is_some() {
                    lx.chars.next_if(|p| p.1 == '>');
                    lx.redirect();
                } else {
                    lx.chars.next_if(|p| p.1 == '&');
                    lx.end_command();
                }
            }
            '<' | '>' => lx.redirection(c),
            _ => {
                lx.in_word = true;
                lx.word.push(c);
            }
        }
    }
    lx.end_command();
    lx.commands
}

impl Lexer<'_> {
    fn end_word(&mut self) {
        if !self.in_word {
            return;
        }
        let word = std::mem::take(&mut self.word);
        self.in_word = false;
        if let Some(strip_tabs) = self.pending_heredoc.take() {
            self.heredocs.push((word, strip_tabs));
        } else if self.skip_next {
            self.skip_next = false;
        } else {
            self.words.push(word);
        }
    }

    fn end_command(&mut self) {
        self.end_word();
        self.skip_next = false;
        if !self.words.is_empty() {
            self.commands.push(std::mem::take(&mut self.words));
        }
    }

    fn skip_line(&mut self) {
        while self.chars.next_if(|p| p.1 != '\n').is_some() {}
    }

    fn redirect(&mut self) {
        // `2>` or `1>&2`: a word made only of digits right before the operator is an fd.
        if self.in_word && self.word.chars().all(|c| c.is_ascii_digit()) {
            self.word.clear();
            self.in_word = false;
        } else {
            self.end_word();
        }
        if self.chars.next_if(|p| p.1 == '&').is_some() {
            // `>&2`: the target is an fd, read as the next word and skipped.
        }
        self.skip_next = true;
    }

    fn redirection(&mut self, c: char) {
        if c == '<' && self.chars.next_if(|p| p.1 == '<').is_some() {
            if self.chars.next_if(|p| p.1 == '<').is_some() {
                self.redirect(); // here-string: `<<< word`
                return;
            }
            let strip_tabs = self.chars.next_if(|p| p.1 == '-').is_some();
            self.end_word();
            self.pending_heredoc = Some(strip_tabs);
            return;
        }
        if c == '>' {
            self.chars.next_if(|p| p.1 == '>' || p.1 == '|');
        } else {
            self.chars.next_if(|p| p.1 == '>');
        }
        self.redirect();
    }

    fn skip_heredoc_bodies(&mut self) {
        for (delim, strip_tabs) in std::mem::take(&mut self.heredocs) {
            loop {
                let mut line = String::new();
                let mut any = false;
                for (_, c) in self.chars.by_ref() {
                    any = true;
                    if c == '\n' {
                        break;
                    }
                    line.push(c);
                }
                let line = if strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    &line
                };
                if !any || line == delim {
                    break;
                }
            }
        }
    }

    fn double_quoted(&mut self, nested: &mut Vec<String>) {
        self.in_word = true;
        while let Some((_, c)) = self.chars.next() {
            match c {
                '"' => return,
                '\\' => {
                    if let Some((_, n)) = self.chars.next() {
                        if !matches!(n, '"' | '\\' | '$' | '`' | '\n') {
                            self.word.push('\\');
                        }
                        if n != '\n' {
                            self.word.push(n);
                        }
                    }
                }
                '$' if self.chars.peek().map(|p| p.1) == Some('(') => {
                    self.chars.next();
                    nested.push(self.until_close_paren());
                    self.word.push_str("$(…)");
                }
                _ => self.word.push(c),
            }
        }
    }

    /// Text up to the `)` that closes an already-consumed `(`, quotes respected.
    fn until_close_paren(&mut self) -> String {
        let mut depth = 1;
        let mut body = String::new();
        let mut quote: Option<char> = None;
        while let Some((_, c)) = self.chars.next() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some('"'), '\\') => {
                    body.push(c);
                    if let Some((_, n)) = self.chars.next() {
                        body.push(n);
                    }
                    continue;
                }
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '(') => depth += 1,
                (None, ')') => {
                    depth -= 1;
                    if depth == 0 {
                        return body;
                    }
                }
                _ => {}
            }
            body.push(c);
        }
        body
    }
}

fn base_name(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

/// Options of a wrapper that take a value (`timeout -s KILL`, `xargs -I {}`).
fn skip_options<'w>(words: &'w [String], with_value: &[&str]) -> &'w [String] {
    let mut i = 0;
    while let Some(w) = words.get(i) {
        if w == "--" {
            return &words[i + 1..];
        }
        if !w.starts_with('-') || w == "-" {
            break;
        }
        i += if with_value.contains(&w.as_str()) {
            2
        } else {
            1
        };
    }
    words.get(i..).unwrap_or(&[])
}

/// Follows wrappers to the program a simple command runs and records it (and what it runs).
fn resolve(words: &[String], depth: usize, out: &mut Vec<Invocation>) {
    let mut rest = words;
    while rest.first().is_some_and(|w| is_assignment(w)) {
        rest = &rest[1..];
    }
    let Some(first) = rest.first() else { return };
    let program = base_name(first);
    let args = &rest[1..];
    match program {
        "env" => {
            let mut r = skip_options(args, &["-u", "--unset", "-C", "--chdir", "-S"]);
            while r.first().is_some_and(|w| is_assignment(w)) {
                r = &r[1..];
            }
            resolve(r, depth, out);
        }
        "timeout" => {
            let r = skip_options(args, &["-s", "--signal", "-k", "--kill-after"]);
            resolve(r.get(1..).unwrap_or(&[]), depth, out);
        }
        "nice" | "ionice" | "stdbuf" | "nohup" | "time" | "exec" | "sudo" | "doas" | "chronic"
        | "unbuffer" | "caffeinate" | "taskset" | "strace" | "ltrace" | "setsid" | "watch"
        | "builtin" => {
            let r = skip_options(args, &["-n", "-u", "-g", "-c", "-p", "-o", "-e", "-i"]);
            resolve(r, depth, out);
        }
        "command" => {
            // `command -v python` looks a program up; it does not run it.
            if !args.iter().any(|a| a == "-v" || a == "-V") {
                resolve(skip_options(args, &[]), depth, out);
            }
        }
        "xargs" => {
            let r = skip_options(
                args,
                &["-I", "-n", "-P", "-d", "-L", "-a", "-E", "-s", "--max-args"],
            );
            resolve(r, depth, out);
        }
        "uv" | "poetry" | "pipenv" | "pdm" | "hatch" | "rye" | "pixi" | "conda" | "mamba"
        | "micromamba"
            if args.first().is_some_and(|a| a == "run") =>
        {
            out.push(invocation(program, args));
            let r = skip_options(
                &args[1..],
                &["-n", "--name", "-p", "--prefix", "--with", "-e"],
            );
            resolve(r, depth, out);
        }
        "bash" | "sh" | "zsh" | "dash" | "ksh" | "eval" => {
            out.push(invocation(program, args));
            let script = if program == "eval" {
                Some(args.join(" "))
            } else {
                shell_c_argument(args)
            };
            if let Some(script) = script {
                collect(&script, depth + 1, out);
            }
        }
        "find" => {
            out.push(invocation(program, args));
            for (k, a) in args.iter().enumerate() {
                if matches!(a.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
                    let tail = &args[k + 1..];
                    let end = tail
                        .iter()
                        .position(|w| w == ";" || w == "+")
                        .unwrap_or(tail.len());
                    resolve(&tail[..end], depth, out);
                }
            }
        }
        _ => out.push(invocation(program, args)),
    }
}

fn shell_c_argument(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a.starts_with('-') && !a.starts_with("--") && a.contains('c') {
            return it.next().cloned();
        }
        if !a.starts_with('-') {
            return None;
        }
    }
    None
}

fn invocation(program: &str, args: &[String]) -> Invocation {
    Invocation {
        program: program.to_string(),
        args: args.to_vec(),
    }
}

/// The family a program name belongs to: `python3.11` → `python`, `pip3` → `pip`,
/// `py.test` → `pytest`; other names are returned as they are.
pub fn program_family(program: &str) -> &str {
    let versioned = |p: &str, stem: &str| {
        p.strip_prefix(stem)
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
    };
    if versioned(program, "python") || versioned(program, "pypy") {
        "python"
    } else if versioned(program, "pip") {
        "pip"
    } else if program == "py.test" || versioned(program, "pytest") {
        "pytest"
    } else {
        program
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs(script: &str) -> Vec<String> {
        invocations(script).into_iter().map(|i| i.program).collect()
    }

    #[test]
    fn splits_on_every_control_operator() {
        assert_eq!(
            programs("cd /ws && ls | head -5; echo done || true & wait\npwd"),
            ["cd", "ls", "head", "echo", "true", "wait", "pwd"]
        );
    }

    #[test]
    fn quotes_hide_operators_and_program_names() {
        assert_eq!(
            programs(r#"grep -rn "python; pytest" src | wc -l"#),
            ["grep", "wc"]
        );
        assert_eq!(programs("echo 'a && python x'"), ["echo"]);
        assert_eq!(programs(r#"echo "it's \"python\"""#), ["echo"]);
    }

    #[test]
    fn strips_assignments_wrappers_and_paths() {
        assert_eq!(programs("PYTHONPATH=. python3 -m mypy src"), ["python3"]);
        assert_eq!(programs("env -u X DEBUG=1 python3 t.py"), ["python3"]);
        assert_eq!(programs("timeout -s KILL 60 pytest -x"), ["pytest"]);
        assert_eq!(programs("timeout 10 python"), ["python"]);
        assert_eq!(programs("/usr/bin/python3 -c 'print(1)'"), ["python3"]);
        assert_eq!(programs("sudo -u root apt-get install -y x"), ["apt-get"]);
        assert_eq!(programs("nice -n 5 nohup pip install ."), ["pip"]);
        assert_eq!(programs("uv run pytest"), ["uv", "pytest"]);
        assert_eq!(
            programs("conda run -n env python x.py"),
            ["conda", "python"]
        );
    }

    #[test]
    fn recurses_into_nested_shells_and_substitutions() {
        assert_eq!(programs("bash -c 'pip install -e .'"), ["bash", "pip"]);
        assert_eq!(
            programs("sh -lc \"cd x && pytest\""),
            ["sh", "cd", "pytest"]
        );
        assert_eq!(programs("(cd /ws && pytest -k r)"), ["cd", "pytest"]);
        assert_eq!(programs("echo $(python -V)"), ["echo", "python"]);
        assert_eq!(programs("echo `which pip`"), ["echo", "which"]);
        assert_eq!(programs("eval 'python3 x.py'"), ["eval", "python3"]);
        assert_eq!(
            programs(r"find . -name '*.py' -exec python {} \;"),
            ["find", "python"]
        );
        assert_eq!(programs("ls *.py | xargs -n 1 python3"), ["ls", "python3"]);
    }

    #[test]
    fn lookups_are_not_runs() {
        assert!(programs("command -v python3").is_empty());
        assert_eq!(programs("which python3"), ["which"]);
    }

    #[test]
    fn redirections_and_heredocs_are_not_commands() {
        assert_eq!(programs("cat x 2>&1 > out.txt"), ["cat"]);
        assert_eq!(programs("python3 t.py &> log"), ["python3"]);
        assert_eq!(
            programs("cat <<'EOF' > x.sh\npip install x\npython y\nEOF\nls"),
            ["cat", "ls"]
        );
        assert_eq!(
            programs("cat <<-END\n\tpytest\n\tEND\necho"),
            ["cat", "echo"]
        );
        assert_eq!(programs("grep x <<< 'python'"), ["grep"]);
    }

    #[test]
    fn comments_and_line_continuations() {
        assert_eq!(programs("ls # then python\npwd"), ["ls", "pwd"]);
        assert_eq!(programs("python3 \\\n  -m pytest"), ["python3"]);
        assert_eq!(programs("echo a#b"), ["echo"]);
    }

    #[test]
    fn python_modules_are_read() {
        let inv = invocations("python3 -u -m pytest -q");
        assert_eq!(inv[0].python_module(), Some("pytest"));
        assert_eq!(
            invocations("python -mpip install x")[0].python_module(),
            Some("pip")
        );
        assert_eq!(invocations("python t.py -m x")[0].python_module(), None);
    }

    #[test]
    fn families() {
        for (p, f) in [
            ("python3.11", "python"),
            ("python", "python"),
            ("pypy3", "python"),
            ("pip3", "pip"),
            ("py.test", "pytest"),
            ("pythonic", "pythonic"),
            ("grep", "grep"),
        ] {
            assert_eq!(program_family(p), f, "{p}");
        }
    }

    #[test]
    fn never_panics_on_unbalanced_input() {
        for s in [
            "'", "\"", "$(", "`", "(((", ")))", "\\", "a <<", "x >", "&&&", "$(\"", "<<E\n",
        ] {
            let _ = invocations(s);
        }
    }
}
