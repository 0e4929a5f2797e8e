//! The training loop: stages, epochs, shuffles, gradient accumulation, metrics, checkpoints,
//! resume.
//!
//! Each epoch visits the stage's rows in an order drawn from `(seed, stage, epoch)`, so the
//! position `(stage, epoch, next_row)` saved in a checkpoint is the whole data state. A step
//! takes `global_batch_rows` rows, runs them `micro_batch_rows` at a time, and divides the
//! summed loss by the supervised tokens of the whole step (the mean over supervised tokens of
//! the global batch), then clips and updates. The first stage starts from the model section's
//! weights; each later one from the previous stage's final weights with a fresh optimizer and
//! schedule unless `keep_optimizer`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, ExtraFiles, RunState};
use crate::config::{ModelSource, TrainSpec};
use crate::data::{self, Limits, PackedRow, RowRef, ShardSet};
use crate::error::{Result, TrainError};
use crate::explain;
use crate::loss::Targets;
use crate::model::Params;
use crate::model::backward::{PassOptions, forward_backward, loss_only};
use crate::model::qwen2::Tokens;
use crate::optim::{AdamW, AdamWConfig, Schedule, clip_grad_norm};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: u64,
    pub stage: String,
    pub epoch: u32,
    /// Mean cross-entropy over the step's supervised tokens (the loss that was differentiated).
    pub loss: f64,
    /// Mean over the step's documents of each document's mean loss.
    pub doc_loss: f64,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub tokens: u64,
    pub supervised_tokens: u64,
    pub tokens_per_s: f64,
    /// Model FLOPs utilisation, when `peak_flops` is configured.
    pub mfu: Option<f64>,
    /// Loss on the eval shards, on the steps it was measured.
    pub eval_loss: Option<f64>,
}

/// What the caller shows while training runs.
pub trait Progress {
    fn stage(&mut self, name: &str, steps: u64);
    fn step(&mut self, m: &StepMetrics, stage_step: u64);
    fn note(&mut self, message: &str);
}

/// A progress sink that shows nothing.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn stage(&mut self, _: &str, _: u64) {}
    fn step(&mut self, _: &StepMetrics, _: u64) {}
    fn note(&mut self, _: &str) {}
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub resume: bool,
    /// Tokenizer files for every model folder (from the shards' tokenizer); `None`: none found.
    pub tokenizer_files: Option<ExtraFiles>,
}

/// What a finished run reports (also the body of `manifest.json`).
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub output: PathBuf,
    pub steps: u64,
    pub stages: Vec<StageSummary>,
    pub resumed_from: Option<PathBuf>,
    pub wall_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub name: String,
    pub rows: usize,
    pub tokens: u64,
    pub steps: u64,
    pub first_loss: Option<f64>,
    pub final_loss: Option<f64>,
    pub final_eval_loss: Option<f64>,
}

/// The device the run uses: the first CUDA GPU with the `cuda` feature, else the CPU.
pub fn device() -> Result<(Device, DType)> {
    #[cfg(feature = "cuda")]
    {
        if candle_core::utils::cuda_is_available() {
            return Ok((Device::new_cuda(0)?, DType::BF16));
        }
    }
    Ok((Device::Cpu, DType::F32))
}

/// Checks every stage's shards (and the eval shards) before the first step.
pub fn check_data(spec: &TrainSpec) -> Result<(Vec<ShardSet>, Option<ShardSet>)> {
    let limits = Limits {
        vocab_size: spec.model_config.vocab_size,
        max_tokens: spec.file.max_tokens,
    };
    let stages = spec
        .stages
        .iter()
        .map(|s| data::check(&s.shards, limits))
        .collect::<Result<Vec<_>>>()?;
    for (s, set) in spec.stages.iter().zip(&stages) {
        if set.rows.is_empty() {
            return Err(TrainError::Data(format!(
                "stage `{}`: its shards hold no rows",
                s.name
            )));
        }
    }
    let eval = (!spec.eval_shards.is_empty())
        .then(|| data::check(&spec.eval_shards, limits))
        .transpose()?;
    Ok((stages, eval))
}

/// Steps per epoch of a stage.
pub fn steps_per_epoch(rows: usize, global_batch_rows: usize) -> u64 {
    rows.div_ceil(global_batch_rows.max(1)) as u64
}

fn epoch_order(seed: u64, stage: usize, epoch: u32, rows: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    let mix = seed
        ^ (stage as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(epoch).wrapping_mul(0xD1B5_4A32_D192_ED03);
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix));
    order
}

/// A micro-batch's rows as one flat token run.
pub fn flatten(
    rows: &[PackedRow],
    spec_config: &crate::model::ModelConfig,
    device: &Device,
) -> Result<(Tokens, Targets)> {
    let (mut ids, mut pos, mut mask, mut docs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        let offset = ids.len();
        docs.extend(r.docs().into_iter().map(|(s, e)| (s + offset, e + offset)));
        ids.extend_from_slice(&r.ids);
        pos.extend_from_slice(&r.positions);
        mask.extend_from_slice(&r.mask);
    }
    let targets = Targets::from_tokens(&ids, &mask, &docs);
    Ok((Tokens::new(&ids, &pos, docs, spec_config, device)?, targets))
}

struct Run<'a> {
    spec: &'a TrainSpec,
    device: Device,
    dtype: DType,
    params: Params,
    opt: AdamW,
    state: RunState,
    metrics: Vec<u8>,
    extra: ExtraFiles,
    eval: Option<ShardSet>,
    flops_per_token: f64,
}

fn adamw_config(spec: &TrainSpec) -> AdamWConfig {
    let o = &spec.file.optimizer;
    AdamWConfig {
        beta1: o.betas[0],
        beta2: o.betas[1],
        eps: o.eps,
        weight_decay: o.weight_decay,
    }
}

/// Trains as the spec says; progress goes to `progress`.
pub fn train(
    spec: &TrainSpec,
    opts: &TrainOptions,
    progress: &mut dyn Progress,
) -> Result<TrainSummary> {
    let started = Instant::now();
    let (sets, eval) = check_data(spec)?;
    let (device, dtype) = device()?;
    let out = &spec.output;
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let resume_from = if opts.resume {
        checkpoint::latest_checkpoint(out)?
    } else {
        None
    };
    let mut run = match &resume_from {
        Some(dir) => resumed(spec, dir, &device, dtype)?,
        None => {
            if opts.resume {
                progress.note(&format!(
                    "no checkpoint under {}: starting from the beginning",
                    out.join("checkpoints").display()
                ));
            }
            fresh(spec, &device, dtype)?
        }
    };
    run.extra = opts.tokenizer_files.clone().unwrap_or_default();
    run.eval = eval;
    run.flops_per_token =
        explain::train_flops_per_token(&spec.model_config, ShardSet::mean_doc_len(&sets));
    std::fs::write(out.join("metrics.jsonl"), &run.metrics)
        .map_err(|e| TrainError::io(out.join("metrics.jsonl"), e))?;
    for (index, set) in sets.iter().enumerate().skip(run.state.stage) {
        run.stage(index, set, progress)?;
    }
    let last = spec
        .stages
        .last()
        .ok_or_else(|| TrainError::Internal("no stages".into()))?;
    checkpoint::save_model(&out.join("final"), &run.params, &run.extra)?;
    let summary = summarize(
        spec,
        &sets,
        &run,
        resume_from,
        started.elapsed().as_secs_f64(),
    )?;
    write_manifest(spec, &sets, &summary)?;
    progress.note(&format!(
        "final model of stage `{}` in {}",
        last.name,
        out.join("final").display()
    ));
    Ok(summary)
}

fn fresh<'a>(spec: &'a TrainSpec, device: &Device, dtype: DType) -> Result<Run<'a>> {
    let params = match &spec.model {
        ModelSource::Preset(_) => Params::init(&spec.model_config, spec.file.seed, device)?,
        ModelSource::Dir(dir) => Params::load(dir, &spec.model_config, device)?,
    };
    let mut params = params;
    apply_decay_rule(spec, &mut params);
    let opt = AdamW::new(adamw_config(spec), &params)?;
    let state = RunState {
        global_step: 0,
        stage: 0,
        epoch: 0,
        next_row: 0,
        stage_step: 0,
        config_hash: spec.config_hash.clone(),
        seed: spec.file.seed,
        metrics_lines: 0,
    };
    Ok(Run {
        spec,
        device: device.clone(),
        dtype,
        params,
        opt,
        state,
        metrics: Vec::new(),
        extra: Vec::new(),
        eval: None,
        flops_per_token: 0.0,
    })
}

fn apply_decay_rule(spec: &TrainSpec, params: &mut Params) {
    if spec.file.optimizer.decay_norms_and_biases {
        params.list.iter_mut().for_each(|p| p.decay = true);
    }
}

fn resumed<'a>(
    spec: &'a TrainSpec,
    dir: &std::path::Path,
    device: &Device,
    dtype: DType,
) -> Result<Run<'a>> {
    let loaded = checkpoint::load_checkpoint(dir, device)?;
    if loaded.state.config_hash != spec.config_hash {
        return Err(TrainError::Config(format!(
            "{} was written by a run with another configuration (hash {}, this one {}): resume with the same file and --set values, or train into a new --out",
            dir.display(),
            loaded.state.config_hash,
            spec.config_hash
        )));
    }
    let mut params = loaded.params;
    apply_decay_rule(spec, &mut params);
    Ok(Run {
        spec,
        device: device.clone(),
        dtype,
        params,
        opt: loaded.opt,
        state: loaded.state,
        metrics: loaded.metrics,
        extra: Vec::new(),
        eval: None,
        flops_per_token: 0.0,
    })
}

impl Run<'_> {
    fn stage(&mut self, index: usize, set: &ShardSet, progress: &mut dyn Progress) -> Result<()> {
        let spec = self.spec;
        let stage = spec
            .stages
            .get(index)
            .ok_or_else(|| TrainError::Internal("stage index".into()))?;
        let gb = spec.file.global_batch_rows;
        let total = stage.steps(set.rows.len(), gb);
        let o = &spec.file.optimizer;
        let schedule =
            Schedule::with_ratio(stage.lr, o.min_lr.min(stage.lr), o.warmup_ratio, total);
        if self.state.stage_step == 0 && index > 0 && !stage.keep_optimizer {
            self.opt = AdamW::new(adamw_config(spec), &self.params)?;
        }
        progress.stage(&stage.name, total);
        while self.state.epoch < stage.epochs && self.state.stage_step < total {
            let order = epoch_order(spec.file.seed, index, self.state.epoch, set.rows.len());
            while self.state.next_row < order.len() && self.state.stage_step < total {
                let end = (self.state.next_row + gb).min(order.len());
                let rows: Vec<RowRef> = order
                    .get(self.state.next_row..end)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|&i| set.rows.get(i).copied())
                    .collect();
                let mut m = self.step(set, &rows, &schedule, &stage.name)?;
                self.state.next_row = end;
                self.state.stage_step += 1;
                self.state.global_step += 1;
                m.step = self.state.global_step;
                let stage_end = self.state.stage_step == total;
                if let Some(e) = &spec.file.eval
                    && (self.state.global_step.is_multiple_of(e.every) || stage_end)
                {
                    m.eval_loss = Some(self.eval_loss()?);
                }
                self.record(&m)?;
                progress.step(&m, self.state.stage_step);
                if end == order.len() {
                    self.state.epoch += 1;
                    self.state.next_row = 0;
                }
                let every = spec.file.checkpoint_every;
                if every > 0 && self.state.global_step.is_multiple_of(every) && !stage_end {
                    self.checkpoint()?;
                }
            }
        }
        // The stage is done: the next one starts from here.
        self.state.stage = index + 1;
        self.state.epoch = 0;
        self.state.next_row = 0;
        self.state.stage_step = 0;
        checkpoint::save_model(
            &spec.output.join("stages").join(&stage.name),
            &self.params,
            &self.extra,
        )?;
        self.checkpoint()?;
        Ok(())
    }

    fn record(&mut self, m: &StepMetrics) -> Result<()> {
        let mut line = serde_json::to_vec(m).map_err(|e| TrainError::Internal(e.to_string()))?;
        line.push(b'\n');
        let path = self.spec.output.join("metrics.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        f.write_all(&line).map_err(|e| TrainError::io(&path, e))?;
        self.metrics.extend_from_slice(&line);
        self.state.metrics_lines += 1;
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<()> {
        let spec = self.spec;
        checkpoint::save_checkpoint(
            &spec.output,
            &self.params,
            &self.opt,
            &self.state,
            &self.metrics,
            &self.extra,
        )?;
        if spec.file.keep_checkpoints > 0 {
            let all = checkpoint::list_checkpoints(&spec.output);
            let excess = all.len().saturating_sub(spec.file.keep_checkpoints);
            for old in all.iter().take(excess) {
                std::fs::remove_dir_all(old).map_err(|e| TrainError::io(old, e))?;
            }
        }
        Ok(())
    }

    fn pass_options(&self, scale: f64) -> PassOptions {
        PassOptions {
            scale,
            loss_chunk: self.spec.file.loss_chunk_tokens,
            recompute: self.spec.file.recompute,
            dtype: self.dtype,
        }
    }

    fn step(
        &mut self,
        set: &ShardSet,
        rows: &[RowRef],
        schedule: &Schedule,
        stage: &str,
    ) -> Result<StepMetrics> {
        let started = Instant::now();
        let supervised: u64 = rows.iter().map(|r| u64::from(r.targets)).sum();
        let tokens: u64 = rows.iter().map(|r| u64::from(r.tokens)).sum();
        let scale = if supervised == 0 {
            0.0
        } else {
            1.0 / supervised as f64
        };
        let opts = self.pass_options(scale);
        let mut grads: Option<Vec<Tensor>> = None;
        let (mut loss_sum, mut doc_means) = (0f64, Vec::new());
        for chunk in rows.chunks(self.spec.file.micro_batch_rows) {
            let packed = chunk
                .iter()
                .map(|r| set.read(r))
                .collect::<Result<Vec<_>>>()?;
            let (tokens, targets) = flatten(&packed, &self.params.config, &self.device)?;
            let pass = forward_backward(&self.params, &tokens, &targets, &opts)?;
            loss_sum += pass.loss.sum;
            doc_means.extend(
                pass.loss
                    .per_doc
                    .iter()
                    .filter(|d| d.1 > 0)
                    .map(|d| d.0 / d.1 as f64),
            );
            grads = Some(match grads {
                None => pass.grads,
                Some(acc) => acc
                    .iter()
                    .zip(&pass.grads)
                    .map(|(a, g)| Ok((a + g)?))
                    .collect::<Result<Vec<_>>>()?,
            });
        }
        let mut grads = grads.ok_or_else(|| TrainError::Internal("a step with no rows".into()))?;
        let grad_norm = clip_grad_norm(&mut grads, self.spec.file.optimizer.max_grad_norm)?;
        let lr = schedule.lr_at(self.state.stage_step);
        self.opt.update(&self.params, &grads, lr)?;
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let tokens_per_s = tokens as f64 / secs;
        Ok(StepMetrics {
            step: 0,
            stage: stage.to_string(),
            epoch: self.state.epoch,
            loss: loss_sum * scale,
            doc_loss: if doc_means.is_empty() {
                0.0
            } else {
                doc_means.iter().sum::<f64>() / doc_means.len() as f64
            },
            lr,
            grad_norm,
            tokens,
            supervised_tokens: supervised,
            tokens_per_s,
            mfu: self
                .spec
                .file
                .peak_flops
                .map(|peak| tokens_per_s * self.flops_per_token / peak),
            eval_loss: None,
        })
    }

    fn eval_loss(&self) -> Result<f64> {
        let Some(set) = &self.eval else {
            return Ok(0.0);
        };
        let (sum, n) = eval_set(
            &self.params,
            set,
            &self.device,
            self.dtype,
            self.spec.file.loss_chunk_tokens,
        )?;
        Ok(if n == 0 { 0.0 } else { sum / n as f64 })
    }
}

/// Summed loss and supervised tokens of every row of `set`, row by row.
pub fn eval_set(
    params: &Params,
    set: &ShardSet,
    device: &Device,
    dtype: DType,
    chunk: usize,
) -> Result<(f64, u64)> {
    let opts = PassOptions {
        scale: 1.0,
        loss_chunk: chunk,
        recompute: false,
        dtype,
    };
    let (mut sum, mut n) = (0f64, 0u64);
    for r in &set.rows {
        let row = set.read(r)?;
        let (tokens, targets) = flatten(std::slice::from_ref(&row), &params.config, device)?;
        let out = loss_only(params, &tokens, &targets, &opts)?;
        sum += out.sum;
        n += targets.len() as u64;
    }
    Ok((sum, n))
}

fn summarize(
    spec: &TrainSpec,
    sets: &[ShardSet],
    run: &Run<'_>,
    resumed_from: Option<PathBuf>,
    wall_s: f64,
) -> Result<TrainSummary> {
    let lines: Vec<StepMetrics> = run
        .metrics
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l)
                .map_err(|e| TrainError::Internal(format!("metrics line: {e}")))
        })
        .collect::<Result<_>>()?;
    let stages = spec
        .stages
        .iter()
        .zip(sets)
        .map(|(s, set)| {
            let mine: Vec<&StepMetrics> = lines.iter().filter(|m| m.stage == s.name).collect();
            StageSummary {
                name: s.name.clone(),
                rows: set.rows.len(),
                tokens: set.tokens(),
                steps: mine.len() as u64,
                first_loss: mine.first().map(|m| m.loss),
                final_loss: mine.last().map(|m| m.loss),
                final_eval_loss: mine.iter().rev().find_map(|m| m.eval_loss),
            }
        })
        .collect();
    Ok(TrainSummary {
        output: spec.output.clone(),
        steps: run.state.global_step,
        stages,
        resumed_from,
        wall_s,
    })
}

fn write_manifest(spec: &TrainSpec, sets: &[ShardSet], summary: &TrainSummary) -> Result<()> {
    let shards: Vec<serde_json::Value> = spec
        .stages
        .iter()
        .zip(sets)
        .flat_map(|(s, set)| {
            set.files.iter().map(move |f| {
                serde_json::json!({
                    "stage": s.name, "path": f.path, "rows": f.rows, "tokens": f.tokens,
                    "supervised_targets": f.targets, "bytes": f.bytes, "xxh3_128": f.xxh3_128,
                    "tokenizer": f.tokenizer,
                })
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "kind": "trajforge.train",
        "config": spec.file,
        "config_hash": spec.config_hash,
        "model": { "source": spec.model, "config": spec.model_config, "parameters": spec.model_config.parameter_count() },
        "shards": shards,
        "summary": summary,
    });
    let path = spec.output.join("manifest.json");
    let tmp = spec.output.join(".manifest.json.tmp");
    let text =
        serde_json::to_vec_pretty(&manifest).map_err(|e| TrainError::Internal(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| TrainError::io(&path, e))
}
