//! # trajforge-synth
//!
//! A deterministic generator of realistic OpenHands-style trajectories for scale tests and
//! benchmarks, written in nvidia's SWE-Zero/SWE-Hero Parquet layout (format 1) so the ingest path
//! is exercised end to end. A sequential [`Planner`] assigns each output row to a task
//! (2–3 rollouts per task) and, at the requested rate, a planted [`Defect`]; rows are then
//! generated in parallel as pure functions of (seed, task, rollout), so the bytes are identical
//! at any thread count and duplicates are made by regenerating their source instead of keeping
//! rows in memory. Planted defects are recorded in a ground-truth sidecar for recall/precision
//! measurements. Memory is bounded by one batch of rows.

mod defects;
mod generate;
mod text;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use rand::Rng;
use rand::seq::IndexedRandom;
use rayon::prelude::*;
use serde::Serialize;
use serde_arrow::schema::{SchemaLike, TracingOptions};
use trajforge_io::IoError;
use trajforge_io::writer::{ParquetFile, PartOptions};

pub use defects::Defect;
pub use generate::{SynthCall, SynthMessage, SynthRow};

/// Which stage's rollouts to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Execution-free: 10–30 assistant turns, never runs code.
    Zero,
    /// Execution-based: 20–60 assistant turns, runs reproductions and tests.
    Hero,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Zero => "zero",
            Kind::Hero => "hero",
        }
    }
}

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A bad option value.
    #[error("{0}")]
    Config(String),
    /// Writing the corpus or its ground truth failed.
    #[error(transparent)]
    Output(#[from] IoError),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub kind: Kind,
    pub count: u64,
    pub seed: u64,
    /// Probability that a row carries a planted defect (0–1).
    pub defect_rate: f64,
    /// Rows generated in parallel and written together.
    pub batch_rows: usize,
}

/// What was generated.
#[derive(Debug, Clone, Serialize)]
pub struct SynthSummary {
    pub rows: u64,
    pub bytes: u64,
    pub defects: BTreeMap<String, u64>,
    pub output: String,
    pub truth: String,
}

/// One planned output row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowPlan {
    pub row: u64,
    pub instance: u64,
    pub rollout: u32,
    pub defect: Option<Defect>,
}

/// Assigns rows to tasks and defects, in order.
#[derive(Debug)]
pub struct Planner {
    seed: u64,
    rate: f64,
    menu: Vec<Defect>,
    instance: u64,
    next_rollout: u32,
    rollouts: u32,
    recent_clean: VecDeque<(u64, u32)>,
}

impl Planner {
    pub fn new(kind: Kind, seed: u64, rate: f64) -> Planner {
        Planner {
            seed,
            rate,
            menu: Defect::menu(kind),
            instance: 0,
            next_rollout: 0,
            rollouts: 0,
            recent_clean: VecDeque::new(),
        }
    }

    pub fn plan(&mut self, row: u64) -> RowPlan {
        let mut rng = generate::rng_for(self.seed, &[5, row]);
        let mut defect = rng
            .random_bool(self.rate)
            .then(|| *self.menu.choose(&mut rng).unwrap_or(&Defect::EmptyPatch));
        if let Some(d) = defect.filter(|d| d.is_duplicate()) {
            // A duplicate copies an earlier clean rollout (only the copy is marked).
            if let Some(&(instance, rollout)) = self.recent_clean.make_contiguous().choose(&mut rng)
            {
                return RowPlan {
                    row,
                    instance,
                    rollout,
                    defect: Some(d),
                };
            }
            let others: Vec<Defect> = self
                .menu
                .iter()
                .copied()
                .filter(|d| !d.is_duplicate())
                .collect();
            defect = others.choose(&mut rng).copied();
        }
        if self.next_rollout >= self.rollouts {
            if row > 0 {
                self.instance += 1;
            }
            self.next_rollout = 0;
            self.rollouts = rng.random_range(2..=3);
        }
        let plan = RowPlan {
            row,
            instance: self.instance,
            rollout: self.next_rollout,
            defect,
        };
        self.next_rollout += 1;
        if defect.is_none() {
            self.recent_clean.push_back((plan.instance, plan.rollout));
            if self.recent_clean.len() > 256 {
                self.recent_clean.pop_front();
            }
        }
        plan
    }
}

/// Generates the row a plan describes.
pub fn generate_row(plan: &RowPlan, kind: Kind, seed: u64) -> SynthRow {
    let mut rng = generate::rng_for(seed, &[6, plan.row]);
    match plan.defect {
        None => generate::clean_row(seed, plan.instance, plan.rollout, kind, None),
        Some(d) => defects::planted_row(seed, plan.instance, plan.rollout, kind, d, &mut rng),
    }
}

/// `corpus.parquet` → `corpus.truth.parquet`.
pub fn truth_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("synth.parquet");
    let stem = name.strip_suffix(".parquet").unwrap_or(name);
    out.with_file_name(format!("{stem}.truth.parquet"))
}

/// A row of format 1; `Deserialize` is derived only so serde_arrow can trace the schema.
#[derive(Serialize, serde::Deserialize)]
struct NvRow<'a> {
    instance_id: &'a str,
    repo: &'a str,
    license: &'a str,
    trajectory_id: &'a str,
    #[serde(borrow)]
    trajectory: Vec<NvMessage<'a>>,
    model_patch: &'a str,
    dataset: &'a str,
}

#[derive(Serialize, serde::Deserialize)]
struct NvMessage<'a> {
    content: &'a str,
    role: &'a str,
    tool_calls: Option<Vec<NvCall<'a>>>,
}

#[derive(Serialize, serde::Deserialize)]
struct NvCall<'a> {
    function: NvFunction<'a>,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

#[derive(Serialize, serde::Deserialize)]
struct NvFunction<'a> {
    arguments: &'a str,
    name: &'a str,
}

fn nvidia_fields() -> Result<Vec<FieldRef>, SynthError> {
    Vec::<FieldRef>::from_type::<NvRow>(TracingOptions::default().strings_as_large_utf8(true))
        .map_err(|e| SynthError::Config(format!("internal schema error: {e}")))
}

fn to_nvidia(row: &SynthRow) -> NvRow<'_> {
    let trajectory = row
        .messages
        .iter()
        .map(|m| NvMessage {
            content: &m.content,
            role: m.role,
            tool_calls: (m.role == "assistant").then(|| {
                m.tool_calls
                    .iter()
                    .map(|c| NvCall {
                        function: NvFunction {
                            arguments: &c.arguments,
                            name: &c.name,
                        },
                        id: &c.id,
                        kind: "function",
                    })
                    .collect()
            }),
        })
        .collect();
    NvRow {
        instance_id: &row.instance_id,
        repo: &row.repo,
        license: &row.license,
        trajectory_id: &row.trajectory_id,
        trajectory,
        model_patch: &row.model_patch,
        dataset: &row.dataset,
    }
}

/// Arrow conversion failed on rows we built ourselves: a bug, reported against the output path.
fn convert_err(path: &Path, e: impl std::fmt::Display) -> SynthError {
    SynthError::Output(IoError::write(path, e))
}

/// Generates `opts.count` rows into `out` and the ground truth beside it; `progress` is called
/// with the number of rows written so far.
pub fn synth(
    opts: &SynthOptions,
    out: &Path,
    progress: &dyn Fn(u64),
) -> Result<SynthSummary, SynthError> {
    if !(0.0..=1.0).contains(&opts.defect_rate) {
        return Err(SynthError::Config(format!(
            "--defects must be between 0 and 1, got {}",
            opts.defect_rate
        )));
    }
    let fields = nvidia_fields()?;
    let schema = Arc::new(Schema::new(fields.clone()));
    let mut output = ParquetFile::create(out, schema, &PartOptions::default())?;
    let mut planner = Planner::new(opts.kind, opts.seed, opts.defect_rate);
    let mut truth: Vec<(String, &'static str)> = Vec::new();
    let mut row = 0u64;
    while row < opts.count {
        let n = (opts.count - row).min(opts.batch_rows.max(1) as u64);
        let plans: Vec<RowPlan> = (row..row + n).map(|r| planner.plan(r)).collect();
        let rows: Vec<SynthRow> = plans
            .par_iter()
            .map(|p| generate_row(p, opts.kind, opts.seed))
            .collect();
        for (plan, r) in plans.iter().zip(&rows) {
            if let Some(d) = plan.defect {
                truth.push((r.trajectory_id.clone(), d.name()));
            }
        }
        let records: Vec<NvRow> = rows.iter().map(to_nvidia).collect();
        let batch =
            serde_arrow::to_record_batch(&fields, &records).map_err(|e| convert_err(out, e))?;
        output.write(&batch)?;
        row += n;
        progress(row);
    }
    let bytes = output.finish()?;
    let truth_file = truth_path(out);
    write_truth(&truth_file, &truth)?;
    let mut defects = BTreeMap::new();
    for (_, d) in &truth {
        *defects.entry((*d).to_string()).or_insert(0u64) += 1;
    }
    Ok(SynthSummary {
        rows: opts.count,
        bytes,
        defects,
        output: out.display().to_string(),
        truth: truth_file.display().to_string(),
    })
}

fn write_truth(path: &Path, truth: &[(String, &'static str)]) -> Result<(), SynthError> {
    #[derive(Serialize)]
    struct Truth<'a> {
        trajectory_id: &'a str,
        defect: &'a str,
    }
    let fields: Vec<FieldRef> = vec![
        Arc::new(Field::new("trajectory_id", DataType::Utf8, false)),
        Arc::new(Field::new("defect", DataType::Utf8, false)),
    ];
    let rows: Vec<Truth> = truth
        .iter()
        .map(|(id, d)| Truth {
            trajectory_id: id,
            defect: d,
        })
        .collect();
    let batch = serde_arrow::to_record_batch(&fields, &rows).map_err(|e| convert_err(path, e))?;
    let mut file = ParquetFile::create(path, batch.schema(), &PartOptions::default())?;
    file.write(&batch)?;
    file.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn planner_gives_two_or_three_rollouts_and_copies_only_clean_rows() {
        let mut planner = Planner::new(Kind::Zero, 3, 0.3);
        let plans: Vec<RowPlan> = (0..2000).map(|r| planner.plan(r)).collect();
        let mut rollouts: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for p in plans
            .iter()
            .filter(|p| !p.defect.is_some_and(Defect::is_duplicate))
        {
            rollouts.entry(p.instance).or_default().push(p.rollout);
        }
        // Every task but the last (cut off by the count) has rollouts 0..n with n in 2..=3.
        let last = *rollouts.keys().next_back().expect("tasks");
        for (instance, rs) in &rollouts {
            let n = rs.len() as u32;
            assert_eq!(rs, &(0..n).collect::<Vec<_>>(), "task {instance}");
            assert!(
                *instance == last || (2..=3).contains(&n),
                "task {instance} has {n} rollouts"
            );
        }
        for dup in plans
            .iter()
            .filter(|p| p.defect.is_some_and(Defect::is_duplicate))
        {
            let source = plans.iter().find(|p| {
                p.row < dup.row && p.instance == dup.instance && p.rollout == dup.rollout
            });
            assert!(
                source.is_some_and(|s| s.defect.is_none()),
                "row {} copies a row that is not an earlier clean one",
                dup.row
            );
        }
    }

    #[test]
    fn hero_never_plants_forbidden_execution_and_rates_out_of_range_fail() {
        let mut planner = Planner::new(Kind::Hero, 1, 1.0);
        assert!((0..500).all(|r| planner.plan(r).defect != Some(Defect::ForbiddenExecution)));
        let opts = SynthOptions {
            kind: Kind::Zero,
            count: 1,
            seed: 0,
            defect_rate: 1.5,
            batch_rows: 1,
        };
        let dir = tempfile::tempdir().expect("tmp");
        let err = synth(&opts, &dir.path().join("x.parquet"), &|_| {}).expect_err("rate 1.5");
        assert_eq!(
            err.to_string(),
            "--defects must be between 0 and 1, got 1.5"
        );
    }
}
