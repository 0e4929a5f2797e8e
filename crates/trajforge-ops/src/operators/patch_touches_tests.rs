//! `patch_touches_tests`: drop rollouts whose model patch edits test files — the files of the
//! task's own test patch when a table of them is given (joined by instance id), path
//! heuristics otherwise.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use datafusion::prelude::{Expr, col};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind, batch_check, reasons};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTouchesTestsOptions {
    /// JSON Lines file with `instance_id` and `test_patch` per task (SWE-bench layout).
    #[serde(default)]
    pub test_patches: Option<String>,
    /// Use path heuristics for rows whose task is not in the table (or when there is none).
    #[serde(default = "crate::operator::yes")]
    pub heuristics: bool,
}

#[derive(Debug, Clone)]
pub struct PatchTouchesTests {
    table: Arc<HashMap<String, HashSet<String>>>,
    heuristics: bool,
}

impl OperatorDef for PatchTouchesTests {
    const NAME: &'static str = "patch_touches_tests";
    const KIND: StepKind = StepKind::Filter;
    const SUMMARY: &'static str = "Drops rows whose model patch edits test files: those of the task's test patch (given a table), or paths that look like tests.";
    const EXAMPLE: &'static str =
        "op: patch_touches_tests\ntest_patches: swe_tasks.jsonl\nheuristics: true";
    type Options = PatchTouchesTestsOptions;

    fn build(o: PatchTouchesTestsOptions, ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        let table = match &o.test_patches {
            Some(p) => load_table(&ctx.resolve(p))?,
            None => HashMap::new(),
        };
        if table.is_empty() && !o.heuristics {
            return Err(OpsError::Config(
                "heuristics is false and no test_patches table is given: nothing to check".into(),
            ));
        }
        Ok(Arc::new(PatchTouchesTests {
            table: Arc::new(table),
            heuristics: o.heuristics,
        }))
    }
}

/// Files a unified diff touches (`diff --git a/X b/X` and `+++ b/X` headers).
pub fn diff_files(patch: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git a/") {
            if let Some((a, _)) = rest.split_once(" b/") {
                out.insert(a.to_string());
            }
        } else if let Some(b) = line.strip_prefix("+++ b/") {
            out.insert(b.trim().to_string());
        }
    }
    out
}

fn load_table(path: &std::path::Path) -> Result<HashMap<String, HashSet<String>>, OpsError> {
    #[derive(Deserialize)]
    struct Task {
        instance_id: String,
        test_patch: Option<String>,
    }
    let file = std::fs::File::open(path).map_err(|e| OpsError::io(path, e))?;
    let mut table = HashMap::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| OpsError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let task: Task = serde_json::from_str(&line)
            .map_err(|e| OpsError::Config(format!("{}: line {}: {e}", path.display(), n + 1)))?;
        let files = diff_files(task.test_patch.as_deref().unwrap_or(""));
        table.insert(task.instance_id, files);
    }
    Ok(table)
}

/// Does a path look like a test file in one of the common layouts?
pub fn looks_like_test(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('/').collect();
    let file = parts.last().copied().unwrap_or("");
    let dirs = &parts[..parts.len().saturating_sub(1)];
    if dirs.iter().any(|d| {
        matches!(
            *d,
            "test" | "tests" | "testing" | "__tests__" | "spec" | "specs"
        )
    }) {
        return true;
    }
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    file == "conftest.py"
        || (stem.starts_with("test_") && file.ends_with(".py"))
        || stem.ends_with("_test")
        || stem.ends_with(".test")
        || stem.ends_with(".spec")
        || (path.ends_with("Test.java") || path.ends_with("Tests.java"))
        || stem.ends_with("_spec")
}

impl PatchTouchesTests {
    fn check_batch(&self, args: &[ArrayRef]) -> Result<ArrayRef, OpsError> {
        let ids = args[0]
            .as_string_opt::<i32>()
            .ok_or_else(|| OpsError::Data("instance_id is not Utf8".into()))?;
        let files = args[1]
            .as_list_opt::<i32>()
            .ok_or_else(|| OpsError::Data("patch_files is not a list".into()))?;
        let names = files
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(|| OpsError::Data("patch_files items are not Utf8".into()))?;
        Ok(reasons(ids.len(), |i| {
            let task = (!ids.is_null(i)).then(|| ids.value(i));
            let table = task.and_then(|t| self.table.get(t));
            let offsets = files.value_offsets();
            (offsets[i] as usize..offsets[i + 1] as usize).find_map(|j| {
                let path = names.value(j);
                match table {
                    Some(tests) if tests.contains(path) => Some(format!(
                        "patch edits {path}, a file of the task's test patch"
                    )),
                    None if self.heuristics && looks_like_test(path) => {
                        Some(format!("patch edits {path}, which looks like a test file"))
                    }
                    _ => None,
                }
            })
        }))
    }
}

impl Operator for PatchTouchesTests {
    fn row_columns(&self, ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        let me = self.clone();
        Ok(batch_check(
            <Self as OperatorDef>::NAME,
            ctx,
            vec![col("instance_id"), col("patch_files")],
            move |args| me.check_batch(args),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_paths_in_many_layouts() {
        for p in [
            "tests/test_core.py",
            "pkg/tests/helpers.py",
            "test_x.py",
            "src/x_test.go",
            "web/app.test.ts",
            "web/app.spec.js",
            "src/test/java/a/FooTest.java",
            "conftest.py",
            "lib/__tests__/a.js",
        ] {
            assert!(looks_like_test(p), "{p}");
        }
        for p in [
            "src/core.py",
            "pkg/testing_utils.py",
            "attest.py",
            "docs/contest.md",
        ] {
            assert!(!looks_like_test(p), "{p}");
        }
    }

    #[test]
    fn files_of_a_test_patch() {
        let files = diff_files(
            "diff --git a/tests/t.py b/tests/t.py\n--- a/tests/t.py\n+++ b/tests/t.py\n@@ -1 +1 @@\n-a\n+b\n",
        );
        assert_eq!(files, HashSet::from(["tests/t.py".to_string()]));
    }
}
