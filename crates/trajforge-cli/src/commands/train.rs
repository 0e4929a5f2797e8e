//! `trajforge train TRAIN.yaml` and `trajforge eval`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use trajforge_train::checkpoint::{ExtraFiles, tokenizer_files_from_dir};
use trajforge_train::{LoadOptions, Progress, StepMetrics, TrainOptions, TrainSpec};

use crate::Global;
use crate::progress::bar;

/// Fine-tune a Qwen2 model on packed shards, stage after stage (SWE-ZERO → SWE-HERO).
///
/// Writes OUT/manifest.json, OUT/metrics.jsonl (a line per optimizer step),
/// OUT/checkpoints/step-NNNNNNN/ (Hugging Face model folders plus trainer_state/, resumable),
/// OUT/stages/<stage>/ (each stage's final model) and OUT/final/ (the last stage's).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The training file (YAML, `version: 1`).
    #[arg(value_name = "TRAIN")]
    config: PathBuf,
    /// Override a value: `optimizer.lr=2e-5`, `stages.hero.epochs=1` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Output folder; replaces the file's `output`.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue from the newest complete checkpoint in OUT.
    #[arg(long)]
    resume: bool,
    /// Print the resolved config, the model's size, FLOPs per token, the memory the run needs
    /// and the step plan, then exit without training.
    #[arg(long)]
    explain: bool,
}

/// Score a model folder on packed shards with the training loss.
///
/// Prints the loss per row (mean over its supervised tokens) and in total (mean over all
/// supervised tokens); with --json one JSON object per row and a total line.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A Hugging Face model folder (ours or one transformers wrote).
    #[arg(long, value_name = "MODEL_DIR")]
    model: PathBuf,
    /// Run folders, shard folders, shard files or globs.
    #[arg(value_name = "SHARDS", required = true)]
    shards: Vec<String>,
    /// Longest row accepted, in tokens.
    #[arg(long, default_value_t = 131_072)]
    max_tokens: usize,
}

struct Bar {
    global: Global,
    bar: Option<ProgressBar>,
}

impl Progress for Bar {
    fn stage(&mut self, name: &str, steps: u64) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
        let b = bar(
            self.global,
            steps,
            "{prefix:>8} [{bar:30}] step {pos}/{len} {msg} (ETA {eta})",
        );
        b.set_prefix(name.to_string());
        self.bar = Some(b);
    }
    fn step(&mut self, m: &StepMetrics, stage_step: u64) {
        if let Some(b) = &self.bar {
            b.set_position(stage_step);
            let eval = m
                .eval_loss
                .map(|e| format!(" eval {e:.4}"))
                .unwrap_or_default();
            b.set_message(format!(
                "loss {:.4}{eval} lr {:.2e} {:.0} tok/s",
                m.loss, m.lr, m.tokens_per_s
            ));
        }
    }
    fn note(&mut self, message: &str) {
        if !self.global.quiet && !self.global.json {
            eprintln!("{message}");
        }
    }
}

/// The tokenizer files every model folder gets: the configured folder, else the one the
/// shards name in their footer.
fn tokenizer_files(spec: &TrainSpec) -> Result<Option<ExtraFiles>> {
    if let Some(dir) = &spec.tokenizer {
        return Ok(Some(tokenizer_files_from_dir(dir)?));
    }
    let Some(first) = spec.stages.first().and_then(|s| s.shards.first()) else {
        return Ok(None);
    };
    match trajforge_train::data::tokenizer_of(first)? {
        Some(s) if s.starts_with("bundled:") => Ok(Some(trajforge_tokenize::model::bundled_tokenizer_files()?)),
        Some(dir) => Ok(Some(tokenizer_files_from_dir(std::path::Path::new(&dir)).with_context(|| {
            format!("the shards were tokenized with {dir}; set `tokenizer:` to a folder that has its files")
        })?)),
        None => Ok(None),
    }
}

pub fn run(args: Args, global: Global) -> Result<()> {
    let opts = LoadOptions {
        sets: args.sets,
        output: args.out,
    };
    let spec = trajforge_train::load(&args.config, &opts)?;
    if args.explain {
        return explain(&spec, global);
    }
    let tokenizer_files = tokenizer_files(&spec)?;
    let mut progress = Bar { global, bar: None };
    if tokenizer_files.is_none() {
        progress.note("warning: the shards name no tokenizer and `tokenizer:` is not set: model folders will carry no tokenizer files");
    }
    let summary = trajforge_train::train(
        &spec,
        &TrainOptions {
            resume: args.resume,
            tokenizer_files,
        },
        &mut progress,
    )?;
    if let Some(b) = progress.bar.take() {
        b.finish();
    }
    if global.json {
        println!(
            "{}",
            serde_json::json!({ "command": "train", "ok": true, "summary": summary })
        );
    } else if !global.quiet {
        for s in &summary.stages {
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
            println!(
                "stage {:<8} {:>6} rows {:>10} tokens {:>6} steps  loss {} → {}  eval {}",
                s.name,
                s.rows,
                s.tokens,
                s.steps,
                f(s.first_loss),
                f(s.final_loss),
                f(s.final_eval_loss)
            );
        }
        println!(
            "{} steps in {:.1} s; final model in {}",
            summary.steps,
            summary.wall_s,
            summary.output.join("final").display()
        );
    }
    Ok(())
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn explain(spec: &TrainSpec, global: Global) -> Result<()> {
    let (sets, _) = trajforge_train::trainer::check_data(spec)?;
    let e = trajforge_train::explain::explain(spec, &sets);
    if global.json {
        println!("{}", serde_json::to_string(&e)?);
        return Ok(());
    }
    println!(
        "training {} (config {})",
        spec.output.display(),
        e.config_hash
    );
    println!("  config: {}", serde_json::to_string(&e.config)?);
    let m = &e.model;
    println!(
        "  model: {} layers, hidden {}, {} heads / {} kv heads (head dim {}), intermediate {}, vocab {}, {} head",
        m.num_hidden_layers,
        m.hidden_size,
        m.num_attention_heads,
        m.num_key_value_heads,
        m.head_dim(),
        m.intermediate_size,
        m.vocab_size,
        if m.tie_word_embeddings {
            "tied"
        } else {
            "untied"
        }
    );
    println!(
        "  parameters: {} ({:.3} B)",
        e.parameters,
        e.parameters as f64 / 1e9
    );
    println!(
        "  FLOPs per token: {:.4e} (training, at the mean document length {:.0})",
        e.flops_per_token, e.mean_document_tokens
    );
    let mem = &e.memory_at_max_tokens;
    println!(
        "  memory at {} tokens per micro-batch: weights {}, gradients {}, optimizer {}, activations {} (recompute {}): {} in all (estimate)",
        spec.file.max_tokens * spec.file.micro_batch_rows,
        gib(mem.weights),
        gib(mem.gradients),
        gib(mem.optimizer),
        gib(mem.activations),
        if spec.file.recompute { "on" } else { "off" },
        gib(mem.total)
    );
    for s in &e.stages {
        println!(
            "  stage {}: {} rows, {} epochs x {} steps = {} steps ({} warm-up), {} tokens, lr {:e}",
            s.name, s.rows, s.epochs, s.steps_per_epoch, s.steps, s.warmup_steps, s.tokens, s.lr
        );
    }
    println!(
        "  total: {} steps, {} tokens",
        e.total_steps, e.total_tokens
    );
    Ok(())
}

pub fn eval(args: EvalArgs, global: Global) -> Result<()> {
    let report = trajforge_train::eval::evaluate(&args.model, &args.shards, args.max_tokens, 256)?;
    if global.json {
        for r in &report.rows {
            println!("{}", serde_json::to_string(r)?);
        }
        println!(
            "{}",
            serde_json::json!({ "command": "eval", "ok": true, "total": { "loss": report.loss, "supervised_tokens": report.supervised_tokens, "tokens": report.tokens, "rows": report.rows.len() } })
        );
        return Ok(());
    }
    for r in &report.rows {
        println!(
            "{} row {:>5}: loss {:.6} over {} supervised of {} tokens",
            r.shard.display(),
            r.row,
            r.loss,
            r.supervised_tokens,
            r.tokens
        );
    }
    println!(
        "total: loss {:.6} over {} supervised tokens in {} rows",
        report.loss,
        report.supervised_tokens,
        report.rows.len()
    );
    Ok(())
}
