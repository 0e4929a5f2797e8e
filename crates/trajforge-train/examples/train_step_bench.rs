//! Training-step throughput of the trainer on one packed row, for `bench/train.sh`.
//!
//! `train_step_bench SHAPE TOKENS STEPS [DOCS]`: SHAPE is `tiny` or `0.5b-2l` (the
//! Qwen2.5-Coder-0.5B shape cut to 2 layers); one packed row of TOKENS tokens in DOCS documents
//! (default 4) with every other token supervised; STEPS optimizer steps (forward, backward,
//! clipping, AdamW), the first one a warm-up; `LOSS_CHUNK` (default 1024) sets the loss's
//! chunk. Prints one JSON line: the median step time and
//! tokens/s. Same ids, positions and masks as bench/train_torch.py builds. `flops PRESET DOC_LEN`
//! prints the training FLOPs per token of a preset instead.

use std::time::Instant;

use candle_core::{DType, Device};
use trajforge_train::data::PackedRow;
use trajforge_train::model::backward::{PassOptions, forward_backward};
use trajforge_train::model::{ModelConfig, Params};
use trajforge_train::optim::{AdamW, AdamWConfig, clip_grad_norm};
use trajforge_train::trainer::flatten;

fn shape(name: &str) -> Option<ModelConfig> {
    match name {
        "tiny" => ModelConfig::preset("tiny"),
        "0.5b-2l" => ModelConfig::preset("qwen2.5-coder-0.5b").map(|mut c| {
            c.num_hidden_layers = 2;
            c
        }),
        _ => None,
    }
}

/// The row bench/train_torch.py builds: ids `(i * 7919) % vocab`, DOCS equal documents,
/// odd positions supervised.
fn row(tokens: usize, docs: usize, vocab: usize) -> PackedRow {
    let base = tokens / docs;
    let mut seq_lens = vec![base as u32; docs];
    if let Some(last) = seq_lens.last_mut() {
        *last += (tokens - base * docs) as u32;
    }
    let positions = seq_lens.iter().flat_map(|&n| 0..n).collect();
    PackedRow {
        ids: (0..tokens).map(|i| ((i * 7919) % vocab) as u32).collect(),
        mask: (0..tokens).map(|i| (i % 2) as u8).collect(),
        positions,
        seq_lens,
    }
}

/// `flops PRESET DOC_LEN`: the training FLOPs per token `--explain` reports for a preset.
fn print_flops(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let preset = args.get(2).ok_or("flops PRESET DOC_LEN")?;
    let config = ModelConfig::preset(preset).ok_or("unknown preset")?;
    let doc_len: f64 = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .ok_or("flops PRESET DOC_LEN")?;
    let flops = trajforge_train::explain::train_flops_per_token(&config, doc_len);
    println!(
        "| {preset} | {} | {doc_len} | {flops:.4e} |",
        config.parameter_count()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("flops") {
        return print_flops(&args);
    }
    let usage = "usage: train_step_bench tiny|0.5b-2l TOKENS STEPS [DOCS] | flops PRESET DOC_LEN";
    let config = args.get(1).and_then(|s| shape(s)).ok_or(usage)?;
    let tokens: usize = args.get(2).and_then(|s| s.parse().ok()).ok_or(usage)?;
    let steps: usize = args.get(3).and_then(|s| s.parse().ok()).ok_or(usage)?;
    let docs: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(4);
    let recompute = std::env::var("RECOMPUTE").is_ok_and(|v| v == "1");
    let dev = Device::Cpu;
    let params = Params::init(&config, 0, &dev)?;
    let r = row(tokens, docs, config.vocab_size);
    let (toks, targets) = flatten(std::slice::from_ref(&r), &config, &dev)?;
    let opts = PassOptions {
        scale: 1.0 / targets.len() as f64,
        loss_chunk: std::env::var("LOSS_CHUNK")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024),
        recompute,
        dtype: DType::F32,
    };
    let mut opt = AdamW::new(
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        },
        &params,
    )?;
    let mut times = Vec::new();
    let mut loss = 0.0;
    for _ in 0..steps {
        let t = Instant::now();
        let pass = forward_backward(&params, &toks, &targets, &opts)?;
        let mut grads = pass.grads;
        clip_grad_norm(&mut grads, Some(1.0))?;
        opt.update(&params, &grads, 1e-4)?;
        times.push(t.elapsed().as_secs_f64());
        loss = pass.loss.sum * opts.scale;
    }
    let mut measured: Vec<f64> = times.iter().skip(1).copied().collect();
    measured.sort_by(f64::total_cmp);
    let median = measured
        .get(measured.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    println!(
        "{}",
        serde_json::json!({ "engine": "trajforge", "shape": args[1], "tokens": tokens, "docs": docs,
            "steps": steps, "recompute": recompute, "median_step_s": median, "tokens_per_s": tokens as f64 / median,
            "last_loss": loss, "parameters": config.parameter_count() })
    );
    Ok(())
}
