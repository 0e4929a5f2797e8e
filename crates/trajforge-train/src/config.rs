//! The training file (`TRAIN.yaml`): read with the same strict machinery as pipelines
//! (`trajforge-config`: located values, `${ENV}`, `--set`, unknown keys named with the closest
//! valid one), then resolved into a [`TrainSpec`] with paths made absolute and every rule checked.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use trajforge_config::{Node, apply_set, from_node, yaml};

use crate::error::{Result, TrainError};
use crate::model::{ModelConfig, PRESETS};

/// The YAML top level.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainFile {
    /// Format version of the training file; must be 1.
    pub version: u32,
    /// Output folder: `manifest.json`, `metrics.jsonl`, `checkpoints/`, `stages/`, `final/`.
    /// Relative paths resolve against this file's folder.
    pub output: String,
    /// The model to train.
    pub model: ModelSection,
    /// Seeds the random init (for presets) and the per-epoch shuffles.
    #[serde(default)]
    pub seed: u64,
    /// Longest packed row accepted, in tokens; a longer row stops the run before the first step.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Packed rows per forward/backward pass (their tokens run as one sequence).
    #[serde(default = "one")]
    pub micro_batch_rows: usize,
    /// Packed rows per optimizer step; gradients accumulate over micro-batches up to it.
    pub global_batch_rows: usize,
    /// Recompute each decoder layer in the backward pass instead of keeping its activations
    /// (gradient checkpointing): one layer's activations alive instead of all of them.
    #[serde(default)]
    pub recompute: bool,
    /// Supervised positions per chunk of the loss: the logits of a chunk are
    /// `loss_chunk_tokens × vocab` floats at a time.
    #[serde(default = "default_loss_chunk")]
    pub loss_chunk_tokens: usize,
    /// AdamW, clipping and the cosine schedule.
    pub optimizer: OptimizerSection,
    /// Save a resumable checkpoint every this many optimizer steps (0: only at stage ends).
    #[serde(default)]
    pub checkpoint_every: u64,
    /// Keep only the newest this many step checkpoints (0: keep all).
    #[serde(default)]
    pub keep_checkpoints: usize,
    /// Held-out shards whose loss is measured during training.
    #[serde(default)]
    pub eval: Option<EvalSection>,
    /// Tokenizer folder copied into every checkpoint; by default the one the shards name in
    /// their `trajforge.tokenizer` footer key.
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Peak FLOP/s of the device, for model FLOPs utilisation in the metrics (e.g. 989e12 for
    /// an H100's dense bf16).
    #[serde(default)]
    pub peak_flops: Option<f64>,
    /// The stages, run in order; each starts from the previous stage's final weights.
    pub stages: Vec<StageSection>,
}

fn default_max_tokens() -> usize {
    131_072
}
fn one() -> usize {
    1
}
fn default_loss_chunk() -> usize {
    256
}

/// Where the weights come from: exactly one of `preset` and `path`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A named shape with random init: `tiny`, `qwen2.5-coder-0.5b`, `-1.5b`, `-7b`, `-32b`.
    #[serde(default)]
    pub preset: Option<String>,
    /// A Hugging Face model folder (`config.json` + `model.safetensors` or a sharded index).
    #[serde(default)]
    pub path: Option<String>,
}

/// AdamW and its schedule (`torch.optim.AdamW`, transformers' cosine with warm-up and floor).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSection {
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate the cosine ends at.
    #[serde(default)]
    pub min_lr: f64,
    /// Share of each stage's steps spent warming up linearly from 0 (rounded up).
    #[serde(default)]
    pub warmup_ratio: f64,
    /// AdamW's β₁ and β₂ (the decay rates of the first and second moments).
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    /// AdamW's ε, added to the bias-corrected √v.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Decoupled weight decay, applied to weight matrices and the embedding.
    #[serde(default)]
    pub weight_decay: f64,
    /// Also decay norms and biases (transformers' Trainer does not).
    #[serde(default)]
    pub decay_norms_and_biases: bool,
    /// Clip the global gradient norm to this (none: no clipping).
    #[serde(default)]
    pub max_grad_norm: Option<f64>,
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn default_eps() -> f64 {
    1e-8
}

/// Periodic evaluation on held-out shards.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Run folders, shard folders or globs.
    pub data: Vec<String>,
    /// Evaluate every this many optimizer steps (and at each stage end).
    pub every: u64,
}

/// One stage of training.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageSection {
    /// The stage's name (`zero`, `hero`): its folder under `stages/`.
    pub name: String,
    /// Run folders, shard folders or globs of packed shards.
    pub data: Vec<String>,
    /// Passes over the stage's rows.
    pub epochs: u32,
    /// Stop the stage after this many optimizer steps (the schedule spans them), even inside
    /// an epoch.
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// This stage's peak learning rate (default: `optimizer.lr`).
    #[serde(default)]
    pub lr: Option<f64>,
    /// Keep the previous stage's optimizer moments instead of starting fresh (the schedule
    /// always restarts).
    #[serde(default)]
    pub keep_optimizer: bool,
}

/// Where the model comes from, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ModelSource {
    Preset(String),
    Dir(PathBuf),
}

/// A stage with its data resolved to shard files.
#[derive(Debug, Clone, Serialize)]
pub struct StageSpec {
    pub name: String,
    pub shards: Vec<PathBuf>,
    pub epochs: u32,
    pub max_steps: Option<u64>,
    pub lr: f64,
    pub keep_optimizer: bool,
}

impl StageSpec {
    /// Optimizer steps of the stage over `rows` rows at `global_batch_rows` rows a step.
    pub fn steps(&self, rows: usize, global_batch_rows: usize) -> u64 {
        let all = crate::trainer::steps_per_epoch(rows, global_batch_rows) * u64::from(self.epochs);
        self.max_steps.map_or(all, |m| m.min(all))
    }
}

/// A validated training run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSpec {
    pub file: TrainFile,
    pub output: PathBuf,
    pub model: ModelSource,
    pub model_config: ModelConfig,
    pub stages: Vec<StageSpec>,
    pub eval_shards: Vec<PathBuf>,
    pub tokenizer: Option<PathBuf>,
    /// xxh3-128 of the resolved file (after `--set` and `${ENV}`).
    pub config_hash: String,
}

/// Everything needed to read a training file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub sets: Vec<String>,
    /// Overrides `output`.
    pub output: Option<PathBuf>,
}

fn config_error(file: &str, e: impl std::fmt::Display) -> TrainError {
    TrainError::Config(format!("{file}: {e}"))
}

/// Reads, overrides and validates a training file.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<TrainSpec> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let env = |name: &str| std::env::var(name).ok();
    load_str(&text, &path.display().to_string(), base, opts, &env)
}

/// [`load`] from text.
pub fn load_str(
    text: &str,
    file: &str,
    base: &Path,
    opts: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TrainSpec> {
    let mut root = yaml::parse(text, env).map_err(|e| config_error(file, e))?;
    for set in &opts.sets {
        apply_set(&mut root, set, env, &["name"]).map_err(TrainError::Config)?;
    }
    let parsed: TrainFile = from_node(&root).map_err(|e| config_error(file, e))?;
    resolve(parsed, &root, file, base, opts)
}

fn at(root: &Node, key: &str, file: &str, message: String) -> TrainError {
    let node = key
        .split('.')
        .try_fold(root, |n, k| n.get(k))
        .unwrap_or(root);
    TrainError::Config(format!("{file}: {}: {key}: {message}", node.at))
}

fn resolve(
    f: TrainFile,
    root: &Node,
    file: &str,
    base: &Path,
    opts: &LoadOptions,
) -> Result<TrainSpec> {
    let err = |key: &str, m: String| at(root, key, file, m);
    if f.version != 1 {
        return Err(err(
            "version",
            format!("version {} is not supported; write `version: 1`", f.version),
        ));
    }
    let (model, model_config) = match (&f.model.preset, &f.model.path) {
        (Some(p), None) => {
            let c = ModelConfig::preset(p).ok_or_else(|| {
                let hint = trajforge_config::closest(p, PRESETS.iter().copied())
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                err(
                    "model.preset",
                    format!(
                        "unknown preset `{p}`; presets: {}{hint}",
                        PRESETS.join(", ")
                    ),
                )
            })?;
            (ModelSource::Preset(p.clone()), c)
        }
        (None, Some(dir)) => {
            let dir = base.join(dir);
            let c = ModelConfig::from_dir(&dir)?;
            (ModelSource::Dir(dir), c)
        }
        _ => {
            return Err(err(
                "model",
                "give exactly one of `preset` and `path`".into(),
            ));
        }
    };
    let positive = [
        ("global_batch_rows", f.global_batch_rows),
        ("micro_batch_rows", f.micro_batch_rows),
        ("max_tokens", f.max_tokens),
        ("loss_chunk_tokens", f.loss_chunk_tokens),
    ];
    if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(err(key, "must be at least 1".into()));
    }
    let o = &f.optimizer;
    if !(o.lr.is_finite() && o.lr >= 0.0 && o.min_lr >= 0.0 && o.min_lr <= o.lr) {
        return Err(err(
            "optimizer",
            format!("need 0 <= min_lr ({}) <= lr ({})", o.min_lr, o.lr),
        ));
    }
    if !(0.0..1.0).contains(&o.warmup_ratio) {
        return Err(err(
            "optimizer.warmup_ratio",
            format!("{} is not in [0, 1)", o.warmup_ratio),
        ));
    }
    if o.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
        return Err(err(
            "optimizer.betas",
            format!("{:?}: each must be in [0, 1)", o.betas),
        ));
    }
    if f.stages.is_empty() {
        return Err(err("stages", "give at least one stage".into()));
    }
    let mut stages: Vec<StageSpec> = Vec::new();
    for (i, s) in f.stages.iter().enumerate() {
        let key = format!("stages[{i}]");
        if stages.iter().any(|p| p.name == s.name) {
            return Err(TrainError::Config(format!(
                "{file}: {key}.name: stage `{}` is named twice",
                s.name
            )));
        }
        if s.name.is_empty()
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(TrainError::Config(format!(
                "{file}: {key}.name: `{}` must be letters, digits, - or _ (it names a folder)",
                s.name
            )));
        }
        if s.max_steps == Some(0) {
            return Err(TrainError::Config(format!(
                "{file}: {key}.max_steps: must be at least 1"
            )));
        }
        if s.epochs == 0 || s.data.is_empty() {
            return Err(TrainError::Config(format!(
                "{file}: {key}: a stage needs `data` and `epochs` >= 1"
            )));
        }
        let mut shards = Vec::new();
        for d in &s.data {
            shards.extend(crate::data::resolve(d, base)?);
        }
        stages.push(StageSpec {
            name: s.name.clone(),
            shards,
            epochs: s.epochs,
            max_steps: s.max_steps,
            lr: s.lr.unwrap_or(o.lr),
            keep_optimizer: s.keep_optimizer,
        });
    }
    let mut eval_shards = Vec::new();
    if let Some(e) = &f.eval {
        if e.every == 0 {
            return Err(err("eval.every", "must be at least 1".into()));
        }
        for d in &e.data {
            eval_shards.extend(crate::data::resolve(d, base)?);
        }
    }
    let output = opts.output.clone().unwrap_or_else(|| base.join(&f.output));
    let tokenizer = f.tokenizer.as_ref().map(|t| base.join(t));
    let canonical = serde_json::to_string(&f).map_err(|e| TrainError::Internal(e.to_string()))?;
    let config_hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(canonical.as_bytes()));
    Ok(TrainSpec {
        file: f,
        output,
        model,
        model_config,
        stages,
        eval_shards,
        tokenizer,
        config_hash,
    })
}

/// The JSON Schema of the training file (`schemas/train.schema.json`).
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(TrainFile);
    serde_json::to_value(&schema).unwrap_or_default()
}
