//! # trajforge-tokenize
//!
//! From curated trajectories to what a trainer consumes. [`pyjson`] reproduces Python's
//! `json.dumps` (key order, separators, float `repr`) because chat templates serialise tools
//! and arguments with it; [`template`] renders the model's own Jinja chat template exactly as
//! `transformers`' `apply_chat_template(messages, tools=…)` does, tool-call arguments decoded
//! first so they are not encoded twice.

pub mod pyjson;
pub mod template;

/// What went wrong, and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// The tokenizer folder or template is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// A row cannot be rendered (the message says which and why).
    #[error("data: {0}")]
    Data(String),
    /// A bug in trajforge.
    #[error("internal error (a bug): {0}")]
    Internal(String),
}
