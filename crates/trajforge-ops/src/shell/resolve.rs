//! From a simple command's words to the programs it runs. Leading assignments are dropped;
//! wrappers (`env`, `timeout`, `sudo`, `nohup`, `time`, …) are looked through; runners report
//! themselves and what they run (`xargs`, `find -exec`, `uv run`, `poetry run`, `conda run`,
//! `pipx run`, `coverage run -m`, `python -m pip`); shells given a script (`bash -c`, `eval`,
//! or text on their standard input) have that script read in turn.

use super::{Invocation, collect, program_family};

/// Wrappers that run the rest of their words as a command, with their options that take a
/// value (so `timeout -s KILL 60 pytest` skips `KILL`), and how many operands come before the
/// command (`timeout 60`, `taskset 0x3`).
const WRAPPERS: &[(&str, &[&str], usize)] = &[
    ("nice", &["-n", "--adjustment"], 0),
    ("ionice", &["-c", "-n", "--class", "--classdata"], 0),
    ("stdbuf", &["-i", "-o", "-e"], 0),
    ("nohup", &[], 0),
    ("setsid", &[], 0),
    ("exec", &["-a"], 0),
    ("time", &["-f", "-o", "--format", "--output"], 0),
    ("coproc", &[], 0),
    ("builtin", &[], 0),
    (
        "sudo",
        &["-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T"],
        0,
    ),
    ("doas", &["-u", "-C"], 0),
    ("chronic", &[], 0),
    ("unbuffer", &[], 0),
    ("caffeinate", &["-w", "-t"], 0),
    (
        "strace",
        &[
            "-o", "-e", "-p", "-s", "-u", "-a", "-b", "-I", "-O", "-P", "-X",
        ],
        0,
    ),
    ("ltrace", &["-o", "-e", "-n", "-s", "-u", "-a"], 0),
    ("timeout", &["-s", "--signal", "-k", "--kill-after"], 1),
    ("taskset", &[], 1),
    (
        "parallel",
        &["-j", "--jobs", "-N", "--delay", "--timeout"],
        0,
    ),
];

/// Environment runners: `RUNNER run [options] COMMAND…`.
const RUN_SUBCOMMAND: &[&str] = &[
    "uv",
    "poetry",
    "pipenv",
    "pdm",
    "hatch",
    "rye",
    "pixi",
    "conda",
    "mamba",
    "micromamba",
    "pipx",
    "tox",
    "nox",
];
const RUNNER_OPTIONS: &[&str] = &[
    "-n",
    "--name",
    "-p",
    "--prefix",
    "--with",
    "-e",
    "--env",
    "--python",
    "--group",
    "--extra",
    "--package",
    "--directory",
    "--project",
    "--from",
    "--spec",
    "--cwd",
];

pub(super) fn resolve(
    words: &[String],
    stdin: Option<&str>,
    depth: usize,
    out: &mut Vec<Invocation>,
) {
    let words = skip_assignments(words);
    let Some((first, args)) = words.split_first() else {
        return;
    };
    let program = base_name(first);
    if let Some((_, valued, operands)) = WRAPPERS.iter().find(|w| w.0 == program) {
        let rest = skip_options(args, valued);
        return resolve(rest.get(*operands..).unwrap_or(&[]), stdin, depth, out);
    }
    match program {
        "env" => {
            let rest = skip_options(args, &["-u", "--unset", "-C", "--chdir", "-S"]);
            resolve(rest, stdin, depth, out);
        }
        // `command -v python` looks a program up; it does not run it.
        "command" if !args.iter().any(|a| a == "-v" || a == "-V") => {
            resolve(skip_options(args, &[]), stdin, depth, out);
        }
        "command" => {}
        // `watch` and `su -c` hand their words to a shell.
        "watch" => {
            let rest = skip_options(args, &["-n", "--interval", "-d", "--differences"]);
            collect(&rest.join(" "), depth + 1, out);
        }
        "su" => {
            if let Some(k) = args.iter().position(|a| a == "-c" || a == "--command")
                && let Some(script) = args.get(k + 1)
            {
                collect(script, depth + 1, out);
            }
        }
        "xargs" => {
            let valued = [
                "-I",
                "-n",
                "-P",
                "-d",
                "-L",
                "-a",
                "-E",
                "-s",
                "--max-args",
                "--max-procs",
                "--delimiter",
                "--arg-file",
                "--replace",
            ];
            resolve(skip_options(args, &valued), None, depth, out);
        }
        "uvx" => {
            out.push(invocation(program, args));
            resolve(skip_options(args, RUNNER_OPTIONS), None, depth, out);
        }
        _ if RUN_SUBCOMMAND.contains(&program) && args.first().is_some_and(|a| a == "run") => {
            out.push(invocation(program, args));
            resolve(skip_options(&args[1..], RUNNER_OPTIONS), None, depth, out);
        }
        "coverage" if args.first().is_some_and(|a| a == "run") => {
            out.push(invocation(program, args));
            coverage_run(&args[1..], depth, out);
        }
        "uv" if args.first().is_some_and(|a| a == "pip") => {
            out.push(invocation(program, args));
            out.push(invocation("pip", &args[1..]));
        }
        "bash" | "sh" | "zsh" | "dash" | "ksh" | "fish" => {
            out.push(invocation(program, args));
            match shell_script(args) {
                ShellScript::Argument(script) => collect(script, depth + 1, out),
                ShellScript::Stdin => {
                    if let Some(script) = stdin {
                        collect(script, depth + 1, out);
                    }
                }
                ShellScript::File => {}
            }
        }
        "eval" => {
            out.push(invocation(program, args));
            collect(&args.join(" "), depth + 1, out);
        }
        "find" => {
            out.push(invocation(program, args));
            find_exec(args, depth, out);
        }
        _ if is_interpreter(program) => {
            out.push(invocation(program, args));
            if let Some((module, rest)) = python_module(args) {
                resolve_module(module, rest, depth, out);
            }
        }
        _ => out.push(invocation(program, args)),
    }
}

/// What `coverage run …` runs: a module (`-m pytest`) or a Python script.
fn coverage_run(args: &[String], depth: usize, out: &mut Vec<Invocation>) {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a == "-m" || a == "--module" {
            if let Some(module) = args.get(i + 1) {
                resolve_module(module, args.get(i + 2..).unwrap_or(&[]), depth, out);
            }
            return;
        }
        if !a.starts_with('-') {
            // `coverage run t.py` executes the script with Python.
            out.push(invocation("python", &args[i..]));
            return;
        }
        let valued = [
            "--rcfile",
            "--source",
            "--include",
            "--omit",
            "--data-file",
            "--context",
        ];
        i += if valued.contains(&a.as_str()) { 2 } else { 1 };
    }
}

/// `python -m MODULE ARGS…` runs MODULE as a program would (`-m pip`, `-m pytest`).
fn resolve_module(module: &str, args: &[String], depth: usize, out: &mut Vec<Invocation>) {
    let mut words = Vec::with_capacity(args.len() + 1);
    words.push(module.to_string());
    words.extend_from_slice(args);
    resolve(&words, None, depth, out);
}

fn find_exec(args: &[String], depth: usize, out: &mut Vec<Invocation>) {
    for (k, a) in args.iter().enumerate() {
        if matches!(a.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
            let tail = &args[k + 1..];
            let end = tail
                .iter()
                .position(|w| w == ";" || w == "+")
                .unwrap_or(tail.len());
            resolve(&tail[..end], None, depth, out);
        }
    }
}

/// A Python interpreter (not a script run by path, which `program_family` also counts).
fn is_interpreter(program: &str) -> bool {
    program_family(program) == "python" && !program.ends_with(".py")
}

/// The module of `python [options] -m MODULE args…`, and its arguments.
pub(super) fn python_module(args: &[String]) -> Option<(&str, &[String])> {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a == "-m" {
            let module = args.get(i + 1)?;
            return Some((module.as_str(), args.get(i + 2..).unwrap_or(&[])));
        }
        if let Some(module) = a.strip_prefix("-m").filter(|m| !m.is_empty()) {
            return Some((module, args.get(i + 1..).unwrap_or(&[])));
        }
        if !a.starts_with('-') || a == "-c" || a == "-" {
            return None;
        }
        i += if a == "-W" || a == "-X" { 2 } else { 1 };
    }
    None
}

enum ShellScript<'a> {
    /// `-c SCRIPT`.
    Argument(&'a str),
    /// No script operand, `-s` or `-`: the shell reads its standard input.
    Stdin,
    /// A script file, which a transcript does not show.
    File,
}

fn shell_script(args: &[String]) -> ShellScript<'_> {
    let mut it = args.iter();
    let mut reads_stdin = false;
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" | "+o" | "-O" | "+O" | "--rcfile" | "--init-file" => {
                it.next();
            }
            "-" | "--" => return ShellScript::Stdin,
            _ if a.starts_with("--") || a.starts_with('+') => {}
            _ if a.starts_with('-') => {
                if a.contains('c') {
                    return it
                        .next()
                        .map_or(ShellScript::File, |s| ShellScript::Argument(s));
                }
                if a.ends_with('o') {
                    it.next(); // `-euo pipefail`
                }
                reads_stdin |= a.contains('s');
            }
            _ if reads_stdin => return ShellScript::Stdin,
            _ => return ShellScript::File,
        }
    }
    ShellScript::Stdin
}

fn base_name(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            let name = name.strip_suffix('+').unwrap_or(name);
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

fn skip_assignments(words: &[String]) -> &[String] {
    let n = words.iter().take_while(|w| is_assignment(w)).count();
    &words[n..]
}

/// The words after a wrapper's options (and `env`'s assignments); `with_value` lists the
/// options that take the next word.
fn skip_options<'w>(words: &'w [String], with_value: &[&str]) -> &'w [String] {
    let mut i = 0;
    while let Some(w) = words.get(i) {
        if w == "--" {
            return words.get(i + 1..).unwrap_or(&[]);
        }
        if is_assignment(w) {
            i += 1;
            continue;
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

fn invocation(program: &str, args: &[String]) -> Invocation {
    Invocation {
        program: program.to_string(),
        args: args.to_vec(),
    }
}
