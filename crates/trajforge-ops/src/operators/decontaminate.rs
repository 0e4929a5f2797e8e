//! `decontaminate`: drop rows of benchmark tasks — by normalised instance key against SWE-bench
//! Verified, Lite and Multilingual (lists bundled from `trajforge-assets`, see its
//! SOURCES.md) and extra id lists; optionally every row of a benchmark repository; optionally
//! rows whose first user message shares a long word n-gram with a benchmark problem statement.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use datafusion::prelude::{Expr, col};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use trajforge_schema::instance_key;
use xxhash_rust::xxh3::xxh3_64;

use crate::OpsError;
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind, batch_check, reasons};
use crate::view::MessagesView;

/// A bundled benchmark id list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Benchmark {
    SweBenchVerified,
    SweBenchLite,
    SweBenchMultilingual,
}

impl Benchmark {
    fn ids(self) -> &'static str {
        match self {
            Benchmark::SweBenchVerified => trajforge_assets::SWE_BENCH_VERIFIED_IDS,
            Benchmark::SweBenchLite => trajforge_assets::SWE_BENCH_LITE_IDS,
            Benchmark::SweBenchMultilingual => trajforge_assets::SWE_BENCH_MULTILINGUAL_IDS,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Benchmark::SweBenchVerified => "SWE-bench Verified",
            Benchmark::SweBenchLite => "SWE-bench Lite",
            Benchmark::SweBenchMultilingual => "SWE-bench Multilingual",
        }
    }

    fn all() -> Vec<Benchmark> {
        vec![
            Benchmark::SweBenchVerified,
            Benchmark::SweBenchLite,
            Benchmark::SweBenchMultilingual,
        ]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecontaminateOptions {
    /// Bundled benchmark lists to check against.
    #[serde(default = "Benchmark::all")]
    pub benchmarks: Vec<Benchmark>,
    /// Extra files of instance ids, one per line.
    #[serde(default)]
    pub id_lists: Vec<String>,
    /// Also drop every row of a repository that appears in a benchmark.
    #[serde(default)]
    pub whole_repos: bool,
    /// JSON Lines file with a `problem_statement` per benchmark task; rows whose first user
    /// message shares an `ngram`-word span with one are dropped.
    #[serde(default)]
    pub problem_statements: Option<String>,
    /// Words per span for the problem-statement check.
    #[serde(default = "default_ngram")]
    pub ngram: usize,
}

fn default_ngram() -> usize {
    13
}

#[derive(Debug, Default)]
struct Index {
    /// Instance key (and raw id) → benchmark label.
    keys: HashMap<String, String>,
    /// `owner/repo` → benchmark label.
    repos: HashMap<String, String>,
    /// Hashes of problem-statement word n-grams.
    ngrams: HashSet<u64>,
}

#[derive(Debug, Clone)]
pub struct Decontaminate {
    index: Arc<Index>,
    whole_repos: bool,
    ngram: usize,
}

fn key_repo(key: &str) -> &str {
    key.split(['#', '@']).next().unwrap_or(key)
}

fn ngram_hashes(text: &str, n: usize) -> impl Iterator<Item = u64> + '_ {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    let count = if words.len() >= n {
        words.len() - n + 1
    } else {
        0
    };
    (0..count).map(move |i| xxh3_64(words[i..i + n].join(" ").as_bytes()))
}

impl Index {
    fn add_id(&mut self, id: &str, label: &str) {
        let id = id.trim();
        if id.is_empty() {
            return;
        }
        self.keys.insert(id.to_string(), label.to_string());
        if let Some(key) = instance_key(id) {
            self.repos
                .insert(key_repo(&key).to_string(), label.to_string());
            self.keys.insert(key, label.to_string());
        }
    }
}

fn read_lines(path: &std::path::Path) -> Result<Vec<String>, OpsError> {
    let file = std::fs::File::open(path).map_err(|e| OpsError::io(path, e))?;
    std::io::BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| OpsError::io(path, e))
}

impl OperatorDef for Decontaminate {
    const NAME: &'static str = "decontaminate";
    const KIND: StepKind = StepKind::Filter;
    const SUMMARY: &'static str = "Drops rows of benchmark tasks (SWE-bench Verified, Lite, Multilingual and extra lists, by normalised instance key), optionally whole benchmark repos and rows whose issue text shares a long n-gram with a benchmark problem statement.";
    const EXAMPLE: &'static str = "op: decontaminate\nbenchmarks: [swe-bench-verified, swe-bench-lite, swe-bench-multilingual]\nwhole_repos: false";
    type Options = DecontaminateOptions;

    fn build(o: DecontaminateOptions, ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        Ok(Arc::new(Decontaminate::new(o, ctx)?))
    }
}

impl Decontaminate {
    fn new(o: DecontaminateOptions, ctx: &StepCtx) -> Result<Decontaminate, OpsError> {
        let mut index = Index::default();
        for b in &o.benchmarks {
            for id in b.ids().lines() {
                index.add_id(id, b.label());
            }
        }
        for list in &o.id_lists {
            let path = ctx.resolve(list);
            let label = path.display().to_string();
            for id in read_lines(&path)? {
                index.add_id(&id, &label);
            }
        }
        if let Some(p) = &o.problem_statements {
            let path = ctx.resolve(p);
            for (n, line) in read_lines(&path)?.iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                    OpsError::Config(format!("{}: line {}: {e}", path.display(), n + 1))
                })?;
                let text = v
                    .get("problem_statement")
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| {
                        OpsError::Config(format!(
                            "{}: line {} has no problem_statement string",
                            path.display(),
                            n + 1
                        ))
                    })?;
                index.ngrams.extend(ngram_hashes(text, o.ngram.max(1)));
            }
        }
        if index.keys.is_empty() && index.ngrams.is_empty() {
            return Err(OpsError::Config(
                "no benchmark ids or problem statements to check against".into(),
            ));
        }
        Ok(Decontaminate {
            index: Arc::new(index),
            whole_repos: o.whole_repos,
            ngram: o.ngram.max(1),
        })
    }
}

fn utf8(a: &ArrayRef, what: &str) -> Result<arrow::array::StringArray, OpsError> {
    a.as_string_opt::<i32>()
        .cloned()
        .ok_or_else(|| OpsError::Data(format!("{what} is {}, expected Utf8", a.data_type())))
}

fn get(a: &arrow::array::StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

impl Decontaminate {
    fn check_batch(&self, args: &[ArrayRef]) -> Result<ArrayRef, OpsError> {
        let ids = utf8(&args[0], "instance_id")?;
        let keys = utf8(&args[1], "instance_key")?;
        let repos = utf8(&args[2], "repo")?;
        let view = match args.get(3) {
            Some(m) => Some(MessagesView::try_new(m)?),
            None => None,
        };
        let ix = &self.index;
        Ok(reasons(ids.len(), |i| {
            for probe in [get(&ids, i), get(&keys, i)].into_iter().flatten() {
                if let Some(label) = ix.keys.get(probe) {
                    return Some(format!("{probe} is a {label} task"));
                }
            }
            if self.whole_repos {
                let repo = get(&keys, i)
                    .map(key_repo)
                    .map(str::to_string)
                    .or_else(|| get(&repos, i).map(str::to_ascii_lowercase));
                if let Some(label) = repo.as_deref().and_then(|r| ix.repos.get(r)) {
                    return Some(format!("repo {} is in {label}", repo.unwrap_or_default()));
                }
            }
            let issue = view
                .as_ref()
                .and_then(|v| v.row(i).find(|m| m.role() == "user").map(|m| m.content()));
            issue.and_then(|text| {
                ngram_hashes(text, self.ngram)
                    .any(|h| ix.ngrams.contains(&h))
                    .then(|| {
                        format!(
                            "issue text shares a {}-word span with a benchmark problem statement",
                            self.ngram
                        )
                    })
            })
        }))
    }
}

impl Operator for Decontaminate {
    fn row_columns(&self, ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        let mut args = vec![col("instance_id"), col("instance_key"), col("repo")];
        if !self.index.ngrams.is_empty() {
            args.push(col("messages"));
        }
        let me = self.clone();
        Ok(batch_check(
            <Self as OperatorDef>::NAME,
            ctx,
            args,
            move |a| me.check_batch(a),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::tests::{batch_of, traj};
    use trajforge_schema::{Message, Trajectory};

    fn row(instance: &str, issue: &str) -> Trajectory {
        let mut t = traj(instance, vec![Message::text("user", issue)]);
        t.instance_id = Some(instance.into());
        t
    }

    fn check(o: DecontaminateOptions, rows: Vec<Trajectory>) -> Vec<Option<String>> {
        let ctx = StepCtx {
            index: 0,
            name: "decontaminate".into(),
            base_dir: std::env::temp_dir(),
        };
        let op = Decontaminate::new(o, &ctx).expect("builds");
        let b = batch_of(rows);
        let args: Vec<ArrayRef> = ["instance_id", "instance_key", "repo", "messages"]
            .iter()
            .map(|c| Arc::clone(b.column_by_name(c).expect("column")))
            .collect();
        let out = op.check_batch(&args).expect("checks");
        let s = out.as_string::<i32>();
        (0..s.len())
            .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
            .collect()
    }

    fn options(json: &str) -> DecontaminateOptions {
        serde_json::from_str(json).expect("options")
    }

    #[test]
    fn benchmark_tasks_by_id_and_by_key_spelling() {
        let got = check(
            options("{}"),
            vec![
                row("django__django-11099", "x"),
                row("Django__Django-11099", "x"),
                row("django__django-99999999", "x"),
            ],
        );
        assert!(
            got[0].as_deref().is_some_and(|r| r.contains("SWE-bench")),
            "{got:?}"
        );
        assert!(got[1].is_some(), "the key is case-normalised: {got:?}");
        assert_eq!(got[2], None);
    }

    #[test]
    fn whole_repos_and_problem_statements() {
        let got = check(
            options(r#"{"whole_repos": true}"#),
            vec![
                row("django__django-99999999", "x"),
                row("acme__tool-1", "x"),
            ],
        );
        assert!(
            got[0]
                .as_deref()
                .is_some_and(|r| r.starts_with("repo django/django")),
            "{got:?}"
        );
        assert_eq!(got[1], None);
        let statements = std::env::temp_dir().join(format!("tf-ps-{}.jsonl", std::process::id()));
        let text = "When calling the parser with an empty list the function raises an IndexError instead of returning None as documented";
        std::fs::write(
            &statements,
            format!("{}\n", serde_json::json!({"problem_statement": text})),
        )
        .expect("write");
        let o = options(&format!(
            r#"{{"benchmarks": [], "problem_statements": {:?}, "ngram": 8}}"#,
            statements.display().to_string()
        ));
        let copied = format!("Please fix this. {text}. Thanks!");
        let got = check(
            o,
            vec![
                row("acme__tool-1", &copied),
                row(
                    "acme__tool-2",
                    "An unrelated issue about logging output formats in the CLI tool",
                ),
            ],
        );
        let _ = std::fs::remove_file(&statements);
        assert!(
            got[0].as_deref().is_some_and(|r| r.contains("8-word span")),
            "{got:?}"
        );
        assert_eq!(got[1], None);
    }
}
