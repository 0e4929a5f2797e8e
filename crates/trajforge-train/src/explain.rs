//! `trajforge train --explain`: the resolved run, its size and its plan, without training.
//!
//! FLOPs per token count multiply-adds as 2 FLOPs and training as 3 passes (forward, and a
//! backward twice as costly): `6 · (matmul parameters, the LM head included)` plus causal
//! attention at the mean document length `s`, `6 · layers · query width · s` (a token attends to
//! `s/2` earlier tokens on average, for `QKᵀ` and `PV`). Memory is an estimate of what the
//! trainer allocates: fp32 master weights, gradients and both AdamW moments, plus a bf16 copy on
//! GPU, plus the activations candle keeps for one micro-batch and the largest transient buffers
//! (one loss chunk's logits, one layer's attention backward).

use serde::Serialize;

use crate::config::TrainSpec;
use crate::model::ModelConfig;
use crate::model::attention::KEY_GROUPS;
use crate::trainer::steps_per_epoch;

/// Training FLOPs per token at mean document length `doc_len`.
pub fn train_flops_per_token(c: &ModelConfig, doc_len: f64) -> f64 {
    let matmul = (c.parameter_count() - (c.vocab_size * c.hidden_size) as u64) as f64
        + (c.vocab_size * c.hidden_size) as f64;
    let q_width = (c.num_attention_heads * c.head_dim()) as f64;
    6.0 * matmul + 6.0 * c.num_hidden_layers as f64 * q_width * doc_len
}

/// Bytes, by what they hold.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub weights: u64,
    pub gradients: u64,
    pub optimizer: u64,
    pub activations: u64,
    pub total: u64,
}

/// Activation bytes kept per token per decoder layer (f32): the inputs of every op that needs
/// them for its backward pass, as the composed ops of [`crate::model::qwen2`] keep them.
fn layer_bytes_per_token(c: &ModelConfig) -> u64 {
    let (d, i) = (c.hidden_size as u64, c.intermediate_size as u64);
    let q = (c.num_attention_heads * c.head_dim()) as u64;
    let kv = (c.num_key_value_heads * c.head_dim()) as u64;
    4 * (8 * d + 4 * q + 5 * kv + 5 * i)
}

/// Estimated memory of a run at `tokens` per micro-batch with documents of `doc_len` tokens.
pub fn memory(spec: &TrainSpec, tokens: u64, doc_len: u64, gpu: bool) -> Memory {
    let c = &spec.model_config;
    let n = c.parameter_count();
    let weights = 4 * n + if gpu { 2 * n } else { 0 };
    let gradients = 4 * n;
    let optimizer = 8 * n;
    let per_layer = layer_bytes_per_token(c) * tokens;
    let (q, kv) = (
        (c.num_attention_heads * c.head_dim()) as u64,
        (c.num_key_value_heads * c.head_dim()) as u64,
    );
    let n = doc_len.min(tokens);
    // Kept per layer: on the GPU the composed ops' scores and probabilities of one document
    // (heads × n × n floats, 3 kept) until its own kernels land; on the CPU the
    // memory-efficient op's log-sum-exp per token and head.
    let attention = if gpu {
        3 * 4 * c.num_attention_heads as u64 * n * n
    } else {
        4 * c.num_attention_heads as u64 * tokens
    };
    // The CPU op's backward, one layer at a time: its inputs regrouped and transposed (q and
    // the output's gradient twice each, k and v twice each) and each key group's part of `dq`.
    let attention_backward = if gpu {
        0
    } else {
        4 * tokens * (q * (KEY_GROUPS as u64 + 4) + 4 * kv)
    };
    let layers = c.num_hidden_layers as u64;
    let kept_layers = if spec.file.recompute { 1 } else { layers };
    let saved_inputs = if spec.file.recompute {
        4 * c.hidden_size as u64 * tokens * layers
    } else {
        0
    };
    // One chunk's logits, overwritten by their gradient, and the head's gradient twice (the
    // running sum and the chunk's part).
    let loss = 4 * spec.file.loss_chunk_tokens as u64 * c.vocab_size as u64
        + 2 * 4 * c.vocab_size as u64 * c.hidden_size as u64;
    let activations = kept_layers * (per_layer + attention)
        + attention_backward
        + saved_inputs
        + loss
        + 8 * c.hidden_size as u64 * tokens;
    Memory {
        weights,
        gradients,
        optimizer,
        activations,
        total: weights + gradients + optimizer + activations,
    }
}

/// One stage of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct StagePlan {
    pub name: String,
    pub rows: usize,
    pub tokens: u64,
    pub epochs: u32,
    pub steps_per_epoch: u64,
    pub steps: u64,
    pub warmup_steps: u64,
    pub lr: f64,
}

/// What `--explain` prints (and `--explain --json` serializes).
#[derive(Debug, Clone, Serialize)]
pub struct Explain {
    pub config: serde_json::Value,
    pub config_hash: String,
    pub model: ModelConfig,
    pub parameters: u64,
    pub mean_document_tokens: f64,
    pub flops_per_token: f64,
    pub memory_at_max_tokens: Memory,
    pub stages: Vec<StagePlan>,
    pub total_steps: u64,
    pub total_tokens: u64,
}

/// The explanation of `spec` over its checked shards.
pub fn explain(spec: &TrainSpec, sets: &[crate::data::ShardSet]) -> Explain {
    let mean_doc = crate::data::ShardSet::mean_doc_len(sets);
    let o = &spec.file.optimizer;
    let stages: Vec<StagePlan> = spec
        .stages
        .iter()
        .zip(sets)
        .map(|(s, set)| {
            let per = steps_per_epoch(set.rows.len(), spec.file.global_batch_rows);
            let steps = s.steps(set.rows.len(), spec.file.global_batch_rows);
            StagePlan {
                name: s.name.clone(),
                rows: set.rows.len(),
                tokens: set.tokens() * u64::from(s.epochs),
                epochs: s.epochs,
                steps_per_epoch: per,
                steps,
                warmup_steps: (o.warmup_ratio * steps as f64).ceil() as u64,
                lr: s.lr,
            }
        })
        .collect();
    let micro_tokens = (spec.file.max_tokens * spec.file.micro_batch_rows) as u64;
    Explain {
        config: serde_json::to_value(&spec.file).unwrap_or_default(),
        config_hash: spec.config_hash.clone(),
        model: spec.model_config.clone(),
        parameters: spec.model_config.parameter_count(),
        mean_document_tokens: mean_doc,
        flops_per_token: train_flops_per_token(&spec.model_config, mean_doc),
        memory_at_max_tokens: memory(
            spec,
            micro_tokens,
            spec.file.max_tokens as u64,
            cfg!(feature = "cuda"),
        ),
        total_steps: stages.iter().map(|s| s.steps).sum(),
        total_tokens: stages.iter().map(|s| s.tokens).sum(),
        stages,
    }
}
