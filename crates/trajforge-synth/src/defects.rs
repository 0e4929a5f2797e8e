//! Planted defects: each one is what a quality rule of the SWE-ZERO / SWE-HERO recipe must catch.

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::Kind;
use crate::generate::{Builder, SynthMessage, SynthRow, clean_row, instance};
use crate::text;

const VERIFIED_IDS: &str = trajforge_assets::SWE_BENCH_VERIFIED_IDS;

/// A defect kind, named as in the ground-truth sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Defect {
    ExactDuplicate,
    NearDuplicate,
    ForbiddenExecution,
    BenchmarkInstance,
    EmptyPatch,
    TooManyTurns,
    BadToolCallCount,
    FailedEdits,
    TouchesTests,
    OverLength,
}

impl Defect {
    pub const ALL: [Defect; 10] = [
        Defect::ExactDuplicate,
        Defect::NearDuplicate,
        Defect::ForbiddenExecution,
        Defect::BenchmarkInstance,
        Defect::EmptyPatch,
        Defect::TooManyTurns,
        Defect::BadToolCallCount,
        Defect::FailedEdits,
        Defect::TouchesTests,
        Defect::OverLength,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Defect::ExactDuplicate => "exact_duplicate",
            Defect::NearDuplicate => "near_duplicate",
            Defect::ForbiddenExecution => "forbidden_execution",
            Defect::BenchmarkInstance => "benchmark_instance",
            Defect::EmptyPatch => "empty_patch",
            Defect::TooManyTurns => "too_many_turns",
            Defect::BadToolCallCount => "bad_tool_call_count",
            Defect::FailedEdits => "failed_edits",
            Defect::TouchesTests => "touches_tests",
            Defect::OverLength => "over_length",
        }
    }

    /// Defects that make sense for a stage: HERO rollouts may execute code.
    pub fn menu(kind: Kind) -> Vec<Defect> {
        Defect::ALL
            .into_iter()
            .filter(|d| kind == Kind::Zero || *d != Defect::ForbiddenExecution)
            .collect()
    }

    pub fn is_duplicate(self) -> bool {
        matches!(self, Defect::ExactDuplicate | Defect::NearDuplicate)
    }
}

/// Commands the ZERO prompt forbids, including the disguises a naive matcher misses.
const FORBIDDEN: &[&str] = &[
    "python reproduce_issue.py",
    "cd {ws} && python -m pytest tests/ -q",
    "bash -c 'pip install -e .'",
    "/usr/bin/python3 -c \"import sys; print(sys.version)\"",
    "timeout 60 pytest -x tests/test_core.py",
    "cat input.json | python3 tools/convert.py",
    "PYTHONPATH=. python3 -m mypy {ws}",
    "cd {ws}; apt-get install -y libxml2-dev",
    "(cd {ws} && pytest -k regression)",
    "env DEBUG=1 python3 -m unittest discover",
];

/// The rollout `(k, rollout)` with `defect` planted; `rng` makes the defect's own choices.
pub fn planted_row(
    seed: u64,
    k: u64,
    rollout: u32,
    kind: Kind,
    defect: Defect,
    rng: &mut ChaCha8Rng,
) -> SynthRow {
    if defect == Defect::TooManyTurns {
        let turns = rng.random_range(101..=130);
        return clean_row(seed, k, rollout, kind, Some(turns));
    }
    let mut row = clean_row(seed, k, rollout, kind, None);
    match defect {
        Defect::ExactDuplicate | Defect::TooManyTurns => {}
        Defect::NearDuplicate => near_duplicate(&mut row, rng),
        Defect::ForbiddenExecution => forbidden_execution(&mut row, seed, k, rng),
        Defect::BenchmarkInstance => benchmark_instance(&mut row, rng),
        Defect::EmptyPatch => row.model_patch.clear(),
        Defect::BadToolCallCount => bad_tool_call_count(&mut row, rng),
        Defect::FailedEdits => splice(&mut row, seed, k, kind, rng, |b, rng| {
            for _ in 0..rng.random_range(3..=4) {
                b.edit(false);
            }
        }),
        Defect::TouchesTests => touches_tests(&mut row, rng),
        Defect::OverLength => splice(&mut row, seed, k, kind, rng, |b, rng| {
            for _ in 0..2 {
                let tag = text::hex(rng, 6);
                let lines = text::python_source(&mut b.rng, 8000);
                let path = format!(
                    "{}/{}/generated_{tag}.py",
                    b.inst.workspace,
                    b.inst.repo.split('/').next_back().unwrap_or("pkg")
                );
                let out = format!(
                    "Here's the result of running `cat -n` on {path}:\n{}",
                    text::numbered(&lines, 1)
                );
                b.exchange(
                    "str_replace_editor",
                    json!({"command": "view", "path": path}),
                    out,
                );
            }
        }),
    }
    if defect.is_duplicate() {
        row.trajectory_id = text::uuid(rng);
    }
    row
}

/// Indices of assistant turns strictly between the first and the last.
fn middle_turns(row: &SynthRow) -> Vec<usize> {
    let turns: Vec<usize> = row
        .messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == "assistant")
        .map(|(i, _)| i)
        .collect();
    turns
        .get(1..turns.len().saturating_sub(1))
        .map(<[usize]>::to_vec)
        .unwrap_or_default()
}

fn near_duplicate(row: &mut SynthRow, rng: &mut ChaCha8Rng) {
    let middle = middle_turns(row);
    for &i in middle.choose_multiple(rng, 2) {
        let m = &mut row.messages[i];
        m.content = match m.content.split_once(". ") {
            Some((first, rest)) => format!("{first}, I think. {rest}"),
            None => format!("{} Let me double-check this.", m.content),
        };
    }
}

fn forbidden_execution(row: &mut SynthRow, seed: u64, k: u64, rng: &mut ChaCha8Rng) {
    let middle = middle_turns(row);
    let Some(&i) = middle.choose(rng) else { return };
    let ws = instance(seed, k).workspace;
    let command = text::pick(rng, FORBIDDEN).replace("{ws}", &ws);
    let m = &mut row.messages[i];
    if let Some(call) = m.tool_calls.first_mut() {
        call.name = "execute_bash".into();
        call.arguments = json!({"command": command}).to_string();
    }
    if let Some(result) = row.messages.get_mut(i + 1) {
        result.content =
            "bash: command produced output\n[Command finished with exit code 0]".into();
    }
}

fn benchmark_instance(row: &mut SynthRow, rng: &mut ChaCha8Rng) {
    let ids: Vec<&str> = VERIFIED_IDS.lines().filter(|l| !l.is_empty()).collect();
    let id = text::pick(rng, &ids).to_string();
    if let Some((owner, rest)) = id.split_once("__") {
        let repo = rest.rsplit_once('-').map_or(rest, |(r, _)| r);
        row.repo = format!("{owner}/{repo}");
    }
    row.instance_id = id;
}

fn bad_tool_call_count(row: &mut SynthRow, rng: &mut ChaCha8Rng) {
    let middle = middle_turns(row);
    let Some(&i) = middle.choose(rng) else { return };
    if rng.random_bool(0.5) {
        // No call: the turn becomes plain text and its tool result goes with it.
        row.messages[i].tool_calls.clear();
        if row.messages.get(i + 1).is_some_and(|m| m.role == "tool") {
            row.messages.remove(i + 1);
        }
    } else {
        let mut extra = row.messages[i].tool_calls[0].clone();
        extra.id.push('b');
        extra.name = "think".into();
        extra.arguments = json!({"thought": "Checking one more thing."}).to_string();
        row.messages[i].tool_calls.push(extra);
        let result = SynthMessage {
            role: "tool",
            content: "Your thought has been logged.".into(),
            tool_calls: Vec::new(),
        };
        row.messages.insert(i + 2, result);
    }
}

fn touches_tests(row: &mut SynthRow, rng: &mut ChaCha8Rng) {
    let module = text::pick(rng, &["core", "utils", "api", "models"]);
    let path = format!("tests/test_{module}.py");
    row.model_patch.push_str(&format!(
        "diff --git a/{path} b/{path}\nindex {}..{} 100644\n--- a/{path}\n+++ b/{path}\n@@ -10,2 +10,3 @@\n def test_{module}():\n-    assert run() == 1\n+    assert run() == 2\n+    assert run(None) is None\n",
        text::hex(rng, 7),
        text::hex(rng, 7)
    ));
}

/// Inserts extra exchanges, built by `add`, before a middle assistant turn.
fn splice(
    row: &mut SynthRow,
    seed: u64,
    k: u64,
    kind: Kind,
    rng: &mut ChaCha8Rng,
    add: impl FnOnce(&mut Builder, &mut ChaCha8Rng),
) {
    let inst = instance(seed, k);
    let mut b = Builder::new(seed, k, 10_000 + rng.random_range(0..1000), &inst, kind);
    add(&mut b, rng);
    let at = middle_turns(row)
        .choose(rng)
        .copied()
        .unwrap_or(row.messages.len().saturating_sub(1));
    let tail = row.messages.split_off(at);
    row.messages.extend(b.messages);
    row.messages.extend(tail);
}
