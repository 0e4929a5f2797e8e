//! # trajforge-tokenize
//!
//! From curated trajectories to what a trainer consumes. [`pyjson`] reproduces Python's
//! `json.dumps` (key order, separators, float `repr`) because chat templates serialise tools
//! and arguments with it; [`template`] renders the model's own Jinja chat template exactly as
//! `transformers`' `apply_chat_template(messages, tools=…)` does, tool-call arguments decoded
//! first so they are not encoded twice; [`model`] loads a Hugging Face tokenizer folder (the
//! Qwen2.5-Coder one is bundled) and encodes with a cache of repeated pieces; [`sample`] turns
//! one conversation into token ids and a loss mask derived from the rendering (assistant turns
//! only) under a length policy; [`udf`] makes that a DataFusion scalar UDF,
//! `tokenize(messages, tools, scaffold)`, which [`job`] evaluates over an ordered scan; [`pack`] packs samples best-fit-decreasing into fixed-length
//! rows without splitting any; [`shard`] holds the Arrow layouts of tokenized and packed rows
//! and writes them as zstd Parquet shards.

pub mod job;
pub mod layout_docs;
pub mod model;
pub mod pack;
pub mod pyjson;
pub mod sample;
pub mod shard;
pub mod template;
pub mod udf;

/// What went wrong, and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// The tokenizer folder or template is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// A row cannot be rendered (the message says which and why).
    #[error("data: {0}")]
    Data(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A bug in trajforge.
    #[error("internal error (a bug): {0}")]
    Internal(String),
}
