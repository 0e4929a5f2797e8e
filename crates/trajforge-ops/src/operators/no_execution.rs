//! `no_execution`: ZERO rollouts must not run code. Shell commands in `execute_bash` calls are
//! read with [`crate::shell`] and rows invoking a forbidden program are dropped.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::prelude::Expr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind, message_check};
use crate::shell::{Needles, invocations, program_family};
use crate::view::MessagesView;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoExecutionOptions {
    /// Programs (or families: `python` covers `python3.11`, `pip` covers `pip3`) a row may not run.
    #[serde(default = "default_forbid")]
    pub forbid: Vec<String>,
    /// Added to `forbid` (keeps the defaults while extending them).
    #[serde(default)]
    pub also_forbid: Vec<String>,
    /// Tools whose calls run shell commands.
    #[serde(default = "default_tools")]
    pub tools: Vec<String>,
    /// The argument holding the command.
    #[serde(default = "default_argument")]
    pub argument: String,
}

fn default_forbid() -> Vec<String> {
    ["python", "pytest", "mypy", "pip", "apt", "apt-get"]
        .map(String::from)
        .to_vec()
}
fn default_tools() -> Vec<String> {
    vec!["execute_bash".into(), "bash".into()]
}
fn default_argument() -> String {
    "command".into()
}

#[derive(Debug, Clone)]
pub struct NoExecution {
    forbid: BTreeSet<String>,
    /// Commands that cannot name a forbidden program skip the parse.
    needles: Needles,
    tools: Vec<String>,
    argument: String,
}

impl OperatorDef for NoExecution {
    const NAME: &'static str = "no_execution";
    const KIND: StepKind = StepKind::Filter;
    const SUMMARY: &'static str = "Drops rows whose shell calls run a forbidden program (python, pytest, mypy, pip, apt, apt-get, …), each command read with the bash grammar (tree-sitter-bash): lists, pipelines, loops, conditionals, functions, subshells, substitutions, `bash -c`/`eval` strings and scripts piped or here-doc'd into a shell, through wrappers (`env`, `timeout`, `sudo`, `xargs`, `find -exec`, …) and runners (`uv run`, `python -m`, `coverage run`, …). A here-document written to a file is data, not a command.";
    const EXAMPLE: &'static str = "op: no_execution\nalso_forbid: [tox, nox]";
    type Options = NoExecutionOptions;

    fn build(o: NoExecutionOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        Ok(Arc::new(NoExecution::new(o)?))
    }
}

fn command_of<'a>(arguments: &'a str, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    #[derive(Deserialize)]
    struct Args<'a> {
        #[serde(borrow)]
        command: Option<std::borrow::Cow<'a, str>>,
    }
    if key == "command" {
        return serde_json::from_str::<Args>(arguments).ok()?.command;
    }
    let v: serde_json::Value = serde_json::from_str(arguments).ok()?;
    v.get(key)?
        .as_str()
        .map(|s| std::borrow::Cow::Owned(s.to_string()))
}

fn excerpt(command: &str) -> String {
    let one_line = command.replace('\n', " ⏎ ");
    match one_line.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

impl NoExecution {
    pub fn new(o: NoExecutionOptions) -> Result<NoExecution, OpsError> {
        let forbid: BTreeSet<String> = o.forbid.into_iter().chain(o.also_forbid).collect();
        if forbid.is_empty() {
            return Err(OpsError::Config("forbid is empty: nothing to check".into()));
        }
        Ok(NoExecution {
            needles: Needles::new(forbid.iter().map(String::as_str)),
            forbid,
            tools: o.tools,
            argument: o.argument,
        })
    }

    /// The first forbidden program a command runs.
    pub fn forbidden_in(&self, command: &str) -> Option<String> {
        if !self.needles.may_match(command) {
            return None;
        }
        invocations(command).into_iter().find_map(|inv| {
            let family = program_family(&inv.program);
            let hit = self.forbid.contains(&inv.program) || self.forbid.contains(family);
            hit.then(|| match inv.python_module() {
                Some(m) => format!("{} -m {m}", inv.program),
                None => inv.program,
            })
        })
    }

    pub fn check_row(&self, view: &MessagesView, row: usize) -> Option<String> {
        let mut turn = 0;
        for msg in view.row(row) {
            if !msg.is_assistant() {
                continue;
            }
            turn += 1;
            for call in msg.calls() {
                if !self.tools.iter().any(|t| t == call.name) {
                    continue;
                }
                let Some(command) = command_of(call.arguments, &self.argument) else {
                    continue;
                };
                if let Some(program) = self.forbidden_in(&command) {
                    return Some(format!("turn {turn} runs {program}: {}", excerpt(&command)));
                }
            }
        }
        None
    }
}

impl Operator for NoExecution {
    fn row_columns(&self, ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        let me = self.clone();
        Ok(message_check(
            <Self as OperatorDef>::NAME,
            ctx,
            move |view, i| me.check_row(view, i),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::StepCtx;

    fn op() -> NoExecution {
        let o: NoExecutionOptions = serde_json::from_str("{}").expect("defaults");
        let ctx = StepCtx {
            index: 0,
            name: "no_execution".into(),
            base_dir: ".".into(),
        };
        let _ = NoExecution::build(o.clone(), &ctx).expect("builds");
        NoExecution::new(o).expect("defaults are valid")
    }

    /// Every disguise the synth generator plants is caught...
    #[test]
    fn catches_execution_in_disguise() {
        let op = op();
        for (cmd, program) in [
            ("python reproduce_issue.py", "python"),
            ("cd /ws && python -m pytest tests/ -q", "python -m pytest"),
            ("bash -c 'pip install -e .'", "pip"),
            (
                "/usr/bin/python3 -c \"import sys; print(sys.version)\"",
                "python3",
            ),
            ("timeout 60 pytest -x tests/test_core.py", "pytest"),
            ("cat input.json | python3 tools/convert.py", "python3"),
            ("PYTHONPATH=. python3 -m mypy /ws", "python3 -m mypy"),
            ("cd /ws; apt-get install -y libxml2-dev", "apt-get"),
            ("(cd /ws && pytest -k regression)", "pytest"),
            (
                "env DEBUG=1 python3 -m unittest discover",
                "python3 -m unittest",
            ),
            ("sudo apt install -y jq", "apt"),
            ("xargs -I{} python3 {}", "python3"),
        ] {
            assert_eq!(op.forbidden_in(cmd).as_deref(), Some(program), "{cmd}");
        }
    }

    /// ...and reading about python is not running it.
    #[test]
    fn reading_is_not_running() {
        let op = op();
        for cmd in [
            "grep -rn python setup.cfg tox.ini | head",
            "find /ws -name \"*.py\" -path \"*pytest*\" | head -20",
            "cat requirements.txt | grep pip",
            "echo 'run python later'",
            "which python3",
            "command -v pytest",
            "ls /usr/lib/python3/dist-packages",
            "cat <<EOF > run.sh\npython x.py\nEOF",
            "sed -i 's/python2/python3/' setup.py",
            "git log --oneline -- pytest.ini",
        ] {
            assert_eq!(op.forbidden_in(cmd), None, "{cmd}");
        }
    }

    /// The acceptance table (tests/corpus/shell/commands.jsonl: real agents' commands and
    /// commands written after their habits, half that run a forbidden program, half that only
    /// read or mention one): every verdict must be right.
    #[test]
    fn the_command_table() {
        #[derive(Deserialize)]
        struct Case {
            command: String,
            runs: Option<String>,
        }
        let table = include_str!("../../../../tests/corpus/shell/commands.jsonl");
        let op = op();
        let (mut runs, mut reads, mut wrong) = (0, 0, Vec::new());
        for line in table.lines() {
            let case: Case = serde_json::from_str(line).expect("a table row");
            let found = op.forbidden_in(&case.command);
            let found_family = found.as_deref().map(|p| {
                let program = p.split(" -m ").next().unwrap_or(p);
                program_family(program).to_string()
            });
            if case.runs.is_some() {
                runs += 1;
            } else {
                reads += 1;
            }
            if found_family != case.runs {
                wrong.push(format!(
                    "{:?}: expected {:?}, found {found:?}",
                    case.command, case.runs
                ));
            }
        }
        assert!(runs >= 30 && reads >= 30, "{runs} run, {reads} read");
        assert!(
            wrong.is_empty(),
            "{} wrong verdicts:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }

    #[test]
    fn reads_the_command_argument() {
        assert_eq!(
            command_of(r#"{"command": "ls -la", "timeout": 3}"#, "command").as_deref(),
            Some("ls -la")
        );
        assert_eq!(command_of(r#"{"cmd": "ls"}"#, "cmd").as_deref(), Some("ls"));
        assert_eq!(command_of("not json", "command"), None);
    }
}
