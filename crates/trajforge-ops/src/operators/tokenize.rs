//! `tokenize`: renders each kept trajectory with the model's chat template, tokenizes it and
//! masks the loss to assistant turns (run after `write`, over the kept rows). Rows too long for
//! `max_tokens` or with nothing supervised are dropped with a reason, counted in the manifest.

use std::sync::Arc;

use datafusion::prelude::Expr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind};

/// Which assistant turns carry the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LossTurns {
    All,
    Last,
}

/// What happens to a sample longer than `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LengthPolicyName {
    /// Drop the row (as the paper does).
    Drop,
    /// Drop the oldest exchanges after the first user turn until it fits (turn boundaries
    /// only; system prompt, tools, first user turn and final exchange kept).
    TruncateTurns,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizeOptions {
    /// Hugging Face tokenizer folder (tokenizer.json + tokenizer_config.json), relative to the
    /// pipeline file; absent: the bundled Qwen2.5-Coder tokenizer and chat template.
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Longest sample kept, in tokens (the paper trains to 131072).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// What happens to longer samples.
    #[serde(default = "default_policy")]
    pub length_policy: LengthPolicyName,
    /// Which assistant turns carry the loss.
    #[serde(default = "default_turns")]
    pub loss_on: LossTurns,
    /// Take the loss off assistant turns whose tool call failed.
    #[serde(default)]
    pub mask_failed_tool_calls: bool,
    /// A tool result starting with one of these (after leading whitespace) failed.
    #[serde(default = "trajforge_schema::failure::default_error_prefixes")]
    pub error_prefixes: Vec<String>,
    /// A tool result containing one of these (case-insensitive) failed.
    #[serde(default = "trajforge_schema::failure::default_failure_phrases")]
    pub failure_phrases: Vec<String>,
    /// Tool catalogues by scaffold (JSON arrays of tool schemas, paths relative to the pipeline
    /// file) for rows without a `tools` column; `openhands` is bundled.
    #[serde(default)]
    pub tool_catalogues: std::collections::BTreeMap<String, String>,
    /// Bytes of text per worker for the cache of repeated pieces (0: off; same output).
    #[serde(default = "default_cache")]
    pub cache_bytes: usize,
    /// Rows per Parquet file when the output is not packed (`OUT/tokenized/`).
    #[serde(default = "default_rows")]
    pub rows_per_shard: usize,
}

fn default_policy() -> LengthPolicyName {
    LengthPolicyName::Drop
}
fn default_turns() -> LossTurns {
    LossTurns::All
}
fn default_cache() -> usize {
    64 << 20
}
fn default_rows() -> usize {
    crate::DEFAULT_ROWS_PER_SHARD
}

impl Default for TokenizeOptions {
    fn default() -> TokenizeOptions {
        TokenizeOptions {
            tokenizer: None,
            max_tokens: None,
            length_policy: default_policy(),
            loss_on: default_turns(),
            mask_failed_tool_calls: false,
            error_prefixes: trajforge_schema::failure::default_error_prefixes(),
            failure_phrases: trajforge_schema::failure::default_failure_phrases(),
            tool_catalogues: Default::default(),
            cache_bytes: default_cache(),
            rows_per_shard: default_rows(),
        }
    }
}

#[derive(Debug)]
pub struct Tokenize {
    pub options: TokenizeOptions,
}

impl OperatorDef for Tokenize {
    const NAME: &'static str = "tokenize";
    const KIND: StepKind = StepKind::Sink;
    const SUMMARY: &'static str = "Renders kept rows with the model's chat template, tokenizes them and masks the loss to assistant turns; writes OUT/tokenized/ (or feeds `pack`). Runs after `write`.";
    const EXAMPLE: &'static str =
        "op: tokenize\nmax_tokens: 131072\nlength_policy: drop\nloss_on: all";
    type Options = TokenizeOptions;

    fn build(o: TokenizeOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        if o.max_tokens == Some(0) || o.rows_per_shard == 0 {
            return Err(OpsError::Config(
                "max_tokens and rows_per_shard must be at least 1".into(),
            ));
        }
        Ok(Arc::new(Tokenize { options: o }))
    }
}

impl Operator for Tokenize {
    fn row_columns(&self, _ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        Ok(Vec::new())
    }

    fn tokenize_options(&self) -> Option<&TokenizeOptions> {
        Some(&self.options)
    }
}
