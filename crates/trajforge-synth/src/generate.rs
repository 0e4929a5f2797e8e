//! Clean trajectories: one OpenHands rollout of a synthetic task, a pure function of
//! (seed, instance, rollout) so any row can be regenerated — which is how duplicates are made
//! without keeping earlier rows in memory.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::Kind;
use crate::text::{self, pick};

/// A message of a synthetic row (format 1's shape before it becomes Arrow).
#[derive(Debug, Clone, PartialEq)]
pub struct SynthMessage {
    pub role: &'static str,
    pub content: String,
    pub tool_calls: Vec<SynthCall>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SynthCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A synthetic row in nvidia's OpenHands layout.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthRow {
    pub instance_id: String,
    pub repo: String,
    pub license: String,
    pub trajectory_id: String,
    pub messages: Vec<SynthMessage>,
    pub model_patch: String,
    pub dataset: String,
}

const REPOS: &[(&str, &str, &str)] = &[
    ("acme-data", "tabular", "MIT"),
    ("pyformat", "linewrap", "BSD-3-Clause"),
    ("cloudkit", "cloudkit-py", "Apache-2.0"),
    ("geodesy", "geoshape", "MIT"),
    ("streamio", "pipes", "Apache-2.0"),
    ("webforge", "routekit", "BSD-3-Clause"),
    ("numerix", "sparsekit", "BSD-3-Clause"),
    ("textops", "tokenly", "MIT"),
    ("dateutils", "chronos", "Apache-2.0"),
    ("configly", "configly", "MIT"),
    ("schemaforge", "validata", "MIT"),
    ("httpkit", "requestor", "Apache-2.0"),
    ("imgproc", "pixelate", "BSD-3-Clause"),
    ("mlkit", "featurize", "MIT"),
    ("dbtools", "querybuilder", "MIT"),
    ("clikit", "argparse-plus", "BSD-3-Clause"),
    ("asyncly", "eventloop", "Apache-2.0"),
    ("markup", "htmlgen", "MIT"),
];

pub const SYSTEM_PROMPT_HEAD: &str = "You are OpenHands agent, a helpful AI assistant that can interact with a computer to solve tasks.\n\n<ROLE>\nYour primary role is to assist users by executing commands, modifying code, and solving technical problems effectively. You should be thorough, methodical, and prioritize quality over speed.\n* If the user asks a question, like \"why is X happening\", don't try to fix the problem. Just give an answer to the question.\n</ROLE>\n\n";

fn system_prompt(kind: Kind) -> String {
    let mut s = String::from(SYSTEM_PROMPT_HEAD);
    let sections = [
        (
            "EFFICIENCY",
            "Each action you take is somewhat expensive. Wherever possible, combine multiple actions into a single action, e.g. combine multiple bash commands into one, using sed and grep to edit/view multiple files at once. When exploring the codebase, use efficient tools like find, grep, and git commands with appropriate filters to minimize unnecessary operations.",
        ),
        (
            "FILE_SYSTEM_GUIDELINES",
            "When a user provides a file path, do NOT assume it's relative to the current working directory. First explore the file system to locate the file before working on it. If asked to edit a file, edit the file directly, rather than creating a new file with a different filename. For global search-and-replace operations, consider using `sed` instead of opening file editors multiple times.",
        ),
        (
            "CODE_QUALITY",
            "Write clean, efficient code with minimal comments. Avoid redundancy in comments: Do not repeat information that can be easily inferred from the code itself. When implementing solutions, focus on making the minimal changes needed to solve the problem. Before implementing any changes, first thoroughly understand the codebase through exploration.",
        ),
        (
            "VERSION_CONTROL",
            "When configuring git credentials, use \"openhands\" as the user.name and \"openhands@all-hands.dev\" as the user.email by default. Exercise caution with git operations. Do NOT make potentially dangerous changes (e.g., pushing to main, deleting repositories) unless explicitly asked to do so.",
        ),
        (
            "PROBLEM_SOLVING_WORKFLOW",
            "1. EXPLORATION: Thoroughly explore relevant files and understand the context before proposing solutions\n2. ANALYSIS: Consider multiple approaches and select the most promising one\n3. IMPLEMENTATION: Make focused, minimal changes to address the problem\n4. REVIEW: Re-read every change and reason about edge cases",
        ),
        (
            "TROUBLESHOOTING",
            "If you've made repeated attempts to solve a problem but tests still fail or the user reports it's still broken: 1. Step back and reflect on 5-7 different possible sources of the problem 2. Assess the likelihood of each possible cause 3. Methodically address the most likely causes, starting with the highest probability 4. Document your reasoning process.",
        ),
    ];
    for (name, body) in sections {
        s.push_str(&format!("<{name}>\n{body}\n{body}\n</{name}>\n\n"));
    }
    if kind == Kind::Zero {
        s.push_str("<EXECUTION_RESTRICTIONS>\nYou must NOT execute any code in this environment: do not run python, python3, pytest, pip, mypy, apt or apt-get, directly or through other commands. Reason about correctness by reading the source. You may use cat, grep, find, sed, ls and similar read-only or editing tools.\n</EXECUTION_RESTRICTIONS>\n");
    }
    s
}

/// Everything shared by the rollouts of one task: repository, files, the issue.
#[derive(Debug, Clone)]
pub struct Instance {
    pub instance_id: String,
    pub repo: String,
    pub license: String,
    pub workspace: String,
    pub files: Vec<String>,
    pub target: usize,
    pub func: String,
    pub issue: String,
}

pub fn rng_for(seed: u64, parts: &[u64]) -> ChaCha8Rng {
    let mut key = seed ^ 0x9e37_79b9_7f4a_7c15;
    for p in parts {
        key = xmix(key ^ p.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    }
    ChaCha8Rng::seed_from_u64(key)
}

fn xmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn instance(seed: u64, k: u64) -> Instance {
    let mut rng = rng_for(seed, &[1, k]);
    let (owner, name, license) = REPOS[rng.random_range(0..REPOS.len())];
    let number = 1000 + k * 7 + rng.random_range(0..7);
    let package = name.replace('-', "_");
    let version = format!("{}.{}", rng.random_range(0..4), rng.random_range(0..20));
    let workspace = format!("/workspace/{owner}__{name}__{version}");
    let n_files = rng.random_range(6..14);
    let files: Vec<String> = (0..n_files)
        .map(|i| {
            format!(
                "{package}/{}_{i}.py",
                pick(
                    &mut rng,
                    &["core", "utils", "io", "models", "api", "base", "compat"]
                )
            )
        })
        .collect();
    let target = rng.random_range(0..files.len());
    let func = text::identifier(&mut rng);
    let repo = format!("{owner}/{name}");
    let issue = text::issue(&mut rng, &repo, &func);
    Instance {
        instance_id: format!("{owner}__{name}-{number}"),
        repo,
        license: license.to_string(),
        workspace,
        files,
        target,
        func,
        issue,
    }
}

/// Source file `index` of an instance: the same text in every rollout.
pub fn file_lines(seed: u64, k: u64, index: usize) -> Vec<String> {
    let mut rng = rng_for(seed, &[2, k, index as u64]);
    let lines = rng.random_range(60..420);
    text::python_source(&mut rng, lines)
}

/// Builds one rollout turn by turn.
pub struct Builder<'a> {
    pub seed: u64,
    pub k: u64,
    pub inst: &'a Instance,
    pub kind: Kind,
    pub rng: ChaCha8Rng,
    pub messages: Vec<SynthMessage>,
    pub budget: usize,
    pub bytes: usize,
    call_counter: u32,
}

impl<'a> Builder<'a> {
    pub fn new(seed: u64, k: u64, rollout: u32, inst: &'a Instance, kind: Kind) -> Builder<'a> {
        let rng = rng_for(seed, &[3, k, u64::from(rollout)]);
        Builder {
            seed,
            k,
            inst,
            kind,
            rng,
            messages: Vec::new(),
            budget: 300_000,
            bytes: 0,
            call_counter: 0,
        }
    }

    fn call_id(&mut self) -> String {
        self.call_counter += 1;
        format!(
            "toolu_{}{:02}",
            text::hex(&mut self.rng, 20),
            self.call_counter
        )
    }

    /// Appends an assistant turn with one call and its tool result.
    pub fn exchange(&mut self, name: &str, arguments: serde_json::Value, result: String) {
        let file = self.inst.files[self.inst.target].clone();
        let thought = text::thought(&mut self.rng, &file);
        let id = self.call_id();
        let call = SynthCall {
            id,
            name: name.to_string(),
            arguments: arguments.to_string(),
        };
        self.bytes += thought.len() + call.arguments.len() + result.len();
        self.messages.push(SynthMessage {
            role: "assistant",
            content: thought,
            tool_calls: vec![call],
        });
        self.messages.push(SynthMessage {
            role: "tool",
            content: result,
            tool_calls: Vec::new(),
        });
    }

    fn path(&self, i: usize) -> String {
        format!("{}/{}", self.inst.workspace, self.inst.files[i])
    }

    pub fn view(&mut self, i: usize) {
        let lines = file_lines(self.seed, self.k, i);
        let path = self.path(i);
        let (first, shown) = if self.bytes > self.budget {
            let start = self
                .rng
                .random_range(0..lines.len().saturating_sub(20).max(1));
            (start + 1, &lines[start..(start + 20).min(lines.len())])
        } else {
            (1, &lines[..])
        };
        let result = format!(
            "Here's the result of running `cat -n` on {path}:\n{}",
            text::numbered(shown, first)
        );
        self.exchange(
            "str_replace_editor",
            json!({"command": "view", "path": path}),
            result,
        );
    }

    pub fn grep(&mut self) {
        let word = self
            .inst
            .func
            .split('_')
            .next_back()
            .unwrap_or("x")
            .to_string();
        let command = match self.rng.random_range(0..4) {
            0 => format!(
                "grep -rn \"{word}\" {} --include=*.py | head -40",
                self.inst.workspace
            ),
            1 => format!(
                "cd {} && grep -rn \"def {}\" .",
                self.inst.workspace, self.inst.func
            ),
            2 => format!(
                "find {} -name \"*.py\" -path \"*{}*\" | head -20",
                self.inst.workspace, word
            ),
            _ => format!(
                "grep -rn python {}/setup.cfg {}/tox.ini | head",
                self.inst.workspace, self.inst.workspace
            ),
        };
        let hits = self.rng.random_range(3..30);
        let mut out = String::new();
        for _ in 0..hits {
            let f = self.rng.random_range(0..self.inst.files.len());
            let lines = file_lines(self.seed, self.k, f);
            let n = self.rng.random_range(0..lines.len());
            out.push_str(&format!("{}:{}:{}\n", self.path(f), n + 1, lines[n].trim()));
        }
        self.exchange("execute_bash", json!({"command": command}), out);
    }

    pub fn think(&mut self) {
        let thought = text::thought(&mut self.rng, &self.inst.files[self.inst.target].clone());
        self.exchange(
            "think",
            json!({"thought": thought}),
            "Your thought has been logged.".into(),
        );
    }

    /// A `str_replace` edit on the target file, succeeding or failing.
    pub fn edit(&mut self, succeed: bool) {
        let lines = file_lines(self.seed, self.k, self.inst.target);
        let path = self.path(self.inst.target);
        let at = self.rng.random_range(0..lines.len());
        let old = if succeed {
            lines[at].clone()
        } else {
            format!("{}  # stale", lines[at])
        };
        let new = format!(
            "{}  # handle {} input",
            lines[at],
            text::pick(&mut self.rng, &["empty", "None", "nested"])
        );
        let args = json!({"command": "str_replace", "path": path, "old_str": old, "new_str": new});
        let result = if succeed {
            let lo = at.saturating_sub(4);
            let hi = (at + 4).min(lines.len());
            format!(
                "The file {path} has been edited. Here's the result of running `cat -n` on a snippet of {path}:\n{}Review the changes and make sure they are as expected. Edit the file again if necessary.",
                text::numbered(&lines[lo..hi], lo + 1)
            )
        } else {
            format!(
                "ERROR:\nNo replacement was performed, old_str `{old}` did not appear verbatim in {path}."
            )
        };
        self.exchange("str_replace_editor", args, result);
    }

    /// HERO rollouts run code: a reproduction script or the test suite.
    pub fn run_code(&mut self) {
        let (command, out) = match self.rng.random_range(0..3) {
            0 => (
                format!("cd {} && python reproduce_issue.py", self.inst.workspace),
                "Result: ok\n".to_string(),
            ),
            1 => (
                format!(
                    "cd {} && python -m pytest tests/ -q -x",
                    self.inst.workspace
                ),
                format!(
                    "{} passed in {}.{:02}s\n",
                    self.rng.random_range(5..300),
                    self.rng.random_range(0..9),
                    self.rng.random_range(0..99)
                ),
            ),
            _ => (
                format!("python {}/reproduce_issue.py", self.inst.workspace),
                "Traceback (most recent call last):\nValueError: None\n".to_string(),
            ),
        };
        self.exchange("execute_bash", json!({"command": command}), out);
    }

    pub fn finish(&mut self) {
        let message = format!(
            "I fixed `{}` so that it handles the reported case.",
            self.inst.func
        );
        let file = self.inst.files[self.inst.target].clone();
        let thought = text::thought(&mut self.rng, &file);
        let id = self.call_id();
        let call = SynthCall {
            id,
            name: "finish".into(),
            arguments: json!({"message": message}).to_string(),
        };
        self.messages.push(SynthMessage {
            role: "assistant",
            content: thought,
            tool_calls: vec![call],
        });
    }

    /// One middle turn drawn from the stage's mix of actions.
    pub fn random_turn(&mut self) {
        let roll = self.rng.random_range(0..100);
        let n = self.inst.files.len();
        match roll {
            0..35 => {
                let i = if self.rng.random_bool(0.5) {
                    self.inst.target
                } else {
                    self.rng.random_range(0..n)
                };
                self.view(i)
            }
            35..60 => self.grep(),
            60..70 => self.think(),
            70..85 if self.kind == Kind::Hero => self.run_code(),
            _ => self.edit(true),
        }
    }
}

/// Number of assistant turns of a clean rollout: 10–30 (zero) or 20–60 (hero), with a long tail.
pub fn turn_count(rng: &mut ChaCha8Rng, kind: Kind) -> usize {
    let (lo, hi) = if kind == Kind::Zero {
        (10, 30)
    } else {
        (20, 60)
    };
    if rng.random_bool(0.08) {
        rng.random_range(hi..=(hi * 3 / 2).min(95))
    } else {
        rng.random_range(lo..=hi)
    }
}

/// The model patch: one hunk on the target file.
pub fn patch_for(seed: u64, k: u64, inst: &Instance, rng: &mut ChaCha8Rng) -> String {
    let lines = file_lines(seed, k, inst.target);
    let path = &inst.files[inst.target];
    let at = rng.random_range(0..lines.len());
    let lo = at.saturating_sub(3);
    let hi = (at + 4).min(lines.len());
    let mut hunk = String::new();
    for (i, line) in lines[lo..hi].iter().enumerate() {
        if lo + i == at {
            // The added statement is padded with the edited line's whitespace characters (its
            // indentation plus any inner spaces): plausible-looking and stable for a given seed.
            let padding: String = line.chars().filter(|c| c.is_whitespace()).collect();
            hunk.push_str(&format!(
                "-{line}\n+{line}  # handle None input\n+{padding}pass\n"
            ));
        } else {
            hunk.push_str(&format!(" {line}\n"));
        }
    }
    let old_n = hi - lo;
    format!(
        "diff --git a/{path} b/{path}\nindex {}..{} 100644\n--- a/{path}\n+++ b/{path}\n@@ -{},{old_n} +{},{} @@\n{hunk}",
        text::hex(rng, 7),
        text::hex(rng, 7),
        lo + 1,
        lo + 1,
        old_n + 1
    )
}

/// A clean rollout with `turns` assistant turns (the last one calls `finish`).
pub fn clean_row(seed: u64, k: u64, rollout: u32, kind: Kind, turns: Option<usize>) -> SynthRow {
    let inst = instance(seed, k);
    let mut b = Builder::new(seed, k, rollout, &inst, kind);
    let turns = turns.unwrap_or_else(|| turn_count(&mut b.rng, kind));
    let user = format!(
        "<uploaded_files>\n{}\n</uploaded_files>\n\nI've uploaded a python code repository in the directory {}. Consider the following issue description:\n\n<issue_description>\n{}\n</issue_description>\n\nCan you help me implement the necessary changes to the repository so that the requirements specified in the <issue_description> are met?\nI've already taken care of all changes to any of the test files described in the <issue_description>. This means you DON'T have to modify the testing logic or any of the tests in any way!",
        inst.workspace, inst.workspace, inst.issue
    );
    b.messages.push(SynthMessage {
        role: "system",
        content: system_prompt(kind),
        tool_calls: Vec::new(),
    });
    b.messages.push(SynthMessage {
        role: "user",
        content: user,
        tool_calls: Vec::new(),
    });
    b.view(inst.target);
    let failed_edit_at = b
        .rng
        .random_bool(0.2)
        .then(|| b.rng.random_range(1..turns.max(2)));
    for t in 1..turns.saturating_sub(1) {
        if Some(t) == failed_edit_at {
            b.edit(false);
        } else {
            b.random_turn();
        }
    }
    b.finish();
    let trajectory_id = text::uuid(&mut b.rng);
    let model_patch = patch_for(seed, k, &inst, &mut b.rng);
    let dataset = format!(
        "{}{}",
        trajforge_io::formats::SYNTH_DATASET_PREFIX,
        kind.name()
    );
    SynthRow {
        instance_id: inst.instance_id.clone(),
        repo: inst.repo.clone(),
        license: inst.license.clone(),
        trajectory_id,
        messages: b.messages,
        model_patch,
        dataset,
    }
}
