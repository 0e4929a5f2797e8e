//! `write`: how the outputs are laid out — zstd Parquet shards of a given size, sorted for
//! scans, with column statistics and page indexes. It must be the last step.

use std::sync::Arc;

use datafusion::prelude::Expr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteOptions {
    /// Columns to sort kept and filtered rows by (input order breaks ties); empty keeps input
    /// order.
    #[serde(default = "default_sort")]
    pub sort_by: Vec<String>,
    /// Rows per Parquet shard.
    #[serde(default = "default_rows_per_shard")]
    pub rows_per_shard: usize,
    /// Rows per row group (smaller groups prune better, larger compress better).
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// A row group is closed once its encoded size passes this many bytes.
    #[serde(default = "default_row_group_bytes")]
    pub row_group_bytes: usize,
    /// … or once its rows' decoded (Arrow) size passes this many bytes: what a reader holds in
    /// memory per row group and thread.
    #[serde(default = "default_row_group_decoded_bytes")]
    pub row_group_decoded_bytes: usize,
    /// Columns with a bloom filter per row group, for point lookups (`WHERE trajectory_id = …`).
    #[serde(default = "trajforge_io::writer::default_bloom_filter_columns")]
    pub bloom_filter_columns: Vec<String>,
    /// zstd level (1–22).
    #[serde(default = "default_level")]
    pub zstd_level: i32,
}

fn default_sort() -> Vec<String> {
    vec!["repo".into(), "instance_id".into()]
}
fn default_rows_per_shard() -> usize {
    100_000
}
fn default_row_group_rows() -> usize {
    4096
}
fn default_row_group_bytes() -> usize {
    64 << 20
}
fn default_row_group_decoded_bytes() -> usize {
    trajforge_io::writer::DEFAULT_ROW_GROUP_DECODED_BYTES
}
fn default_level() -> i32 {
    3
}

impl Default for WriteOptions {
    fn default() -> WriteOptions {
        WriteOptions {
            sort_by: default_sort(),
            rows_per_shard: default_rows_per_shard(),
            row_group_rows: default_row_group_rows(),
            row_group_bytes: default_row_group_bytes(),
            row_group_decoded_bytes: default_row_group_decoded_bytes(),
            bloom_filter_columns: trajforge_io::writer::default_bloom_filter_columns(),
            zstd_level: default_level(),
        }
    }
}

#[derive(Debug)]
pub struct Write {
    pub options: WriteOptions,
}

impl OperatorDef for Write {
    const NAME: &'static str = "write";
    const KIND: StepKind = StepKind::Sink;
    const SUMMARY: &'static str = "Writes kept and filtered rows as zstd Parquet shards, sorted by `sort_by`, with statistics, page indexes and bloom filters on the id columns, row groups bounded by rows, encoded and decoded bytes (last step; defaults apply when absent).";
    const EXAMPLE: &'static str =
        "op: write\nsort_by: [repo, instance_id]\nrows_per_shard: 100000\nzstd_level: 3";
    type Options = WriteOptions;

    fn build(o: WriteOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        if o.rows_per_shard == 0 || o.row_group_rows == 0 || o.row_group_decoded_bytes == 0 {
            return Err(OpsError::Config(
                "rows_per_shard, row_group_rows and row_group_decoded_bytes must be at least 1"
                    .into(),
            ));
        }
        if !(1..=22).contains(&o.zstd_level) {
            return Err(OpsError::Config(format!(
                "zstd_level must be in 1..=22, got {}",
                o.zstd_level
            )));
        }
        Ok(Arc::new(Write { options: o }))
    }
}

impl Operator for Write {
    fn row_columns(&self, _ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        Ok(Vec::new())
    }

    fn write_options(&self) -> Option<&WriteOptions> {
        Some(&self.options)
    }
}
