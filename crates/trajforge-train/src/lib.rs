//! # trajforge-train
//!
//! Fine-tunes Qwen2 models on trajforge's packed shards, the SWE-ZERO → SWE-HERO way, and writes
//! model folders `transformers` loads unchanged. The flow: [`config`] reads `TRAIN.yaml`
//! strictly into a [`TrainSpec`]; [`data`] finds each stage's shards and checks every row
//! against the packed layout before the first step; [`model`] is the Qwen2 decoder written from
//! differentiable candle ops (per-document causal attention driven by the shard's position ids
//! and document lengths, so no token attends across documents), with a backward pass that can
//! recompute each layer; [`loss`] is the chunked next-token cross-entropy on supervised tokens
//! with its own gradient, so the `[tokens × vocab]` logits never exist; [`optim`] is AdamW with
//! fp32 moments, clipping and the cosine schedule, matching PyTorch and transformers;
//! [`trainer`] runs stages, epochs and gradient accumulation with exact resumable
//! [`checkpoint`]s; [`explain`] sizes a run without training; [`eval`] scores a model folder on
//! shards. It reads Parquet with `parquet`/`arrow` directly and depends on neither DataFusion
//! nor the pipeline.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod docs;
pub mod error;
pub mod eval;
pub mod explain;
pub mod loss;
pub mod model;
pub mod optim;
pub mod trainer;

pub use config::{LoadOptions, TrainSpec, load, load_str};
pub use error::TrainError;
pub use trainer::{Progress, StepMetrics, TrainOptions, TrainSummary, train};
