//! `pack`: best-fit-decreasing packing of the tokenized samples into training rows of at most
//! `pack_len` tokens (a sample is never split), written as zstd Parquet shards in `OUT/shards/`
//! with an index in the manifest. Follows `tokenize`.

use std::sync::Arc;

use datafusion::prelude::Expr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackOptions {
    /// Capacity of a packed row in tokens (e.g. 32768 or 131072).
    #[serde(default = "default_pack_len")]
    pub pack_len: u32,
    /// Samples held in the look-ahead window before it is packed (memory ≈ this many samples).
    #[serde(default = "default_lookahead")]
    pub lookahead: usize,
    /// Partly filled rows kept open between windows.
    #[serde(default = "default_max_open")]
    pub max_open: usize,
    /// Seed of the tie-breaks between samples of equal length.
    #[serde(default)]
    pub seed: u64,
    /// Packed rows per shard.
    #[serde(default = "default_rows")]
    pub rows_per_shard: usize,
}

fn default_pack_len() -> u32 {
    32_768
}
fn default_lookahead() -> usize {
    2048
}
fn default_max_open() -> usize {
    256
}
fn default_rows() -> usize {
    crate::DEFAULT_ROWS_PER_SHARD
}

impl Default for PackOptions {
    fn default() -> PackOptions {
        PackOptions {
            pack_len: default_pack_len(),
            lookahead: default_lookahead(),
            max_open: default_max_open(),
            seed: 0,
            rows_per_shard: default_rows(),
        }
    }
}

#[derive(Debug)]
pub struct Pack {
    pub options: PackOptions,
}

impl OperatorDef for Pack {
    const NAME: &'static str = "pack";
    const KIND: StepKind = StepKind::Sink;
    const SUMMARY: &'static str = "Packs tokenized samples best-fit-decreasing into rows of at most `pack_len` tokens (never splitting one) and writes OUT/shards/ with an index in the manifest. Follows `tokenize`.";
    const EXAMPLE: &'static str = "op: pack\npack_len: 32768\nrows_per_shard: 1024";
    type Options = PackOptions;

    fn build(o: PackOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        if o.pack_len == 0 || o.lookahead == 0 || o.rows_per_shard == 0 {
            return Err(OpsError::Config(
                "pack_len, lookahead and rows_per_shard must be at least 1".into(),
            ));
        }
        Ok(Arc::new(Pack { options: o }))
    }
}

impl Operator for Pack {
    fn row_columns(&self, _ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        Ok(Vec::new())
    }

    fn pack_options(&self) -> Option<&PackOptions> {
        Some(&self.options)
    }
}
