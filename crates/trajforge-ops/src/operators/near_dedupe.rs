//! `near_dedupe`: MinHash-LSH near-duplicate removal. A scalar UDF computes each row's
//! signature over word n-gram shingles (of the whole conversation or of the assistant's
//! actions only); a window function then clusters the alive rows of the partition in keep
//! order (LSH candidates verified by estimated Jaccard, connected components), gives every row
//! a `cluster_id` and drops all but each cluster's first row. With `reference`, rows near a row
//! of another dataset (HERO against ZERO) are dropped as well.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, StringBuilder, StructArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::dataframe::DataFrame;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    ExprFunctionExt, PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl,
};
use datafusion::prelude::{Expr, col, when};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::keep::{Keep, keep_order};
use crate::minhash::{LshParams, MinHasher, cluster, optimal_bands};
use crate::operator::{
    BatchUdf, Env, Operator, OperatorDef, StepCtx, StepKind, attach_reference, udf_name,
};
use crate::view::MessagesView;

/// What text the shingles come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShingleText {
    /// Every message's content plus every tool call's name and arguments.
    #[default]
    Conversation,
    /// The assistant's tool calls only (name and arguments): what the agent did.
    Actions,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NearDedupeOptions {
    /// Estimated Jaccard similarity at or above which two rows are near-duplicates.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Number of MinHash permutations (signature length).
    #[serde(default = "default_num_perm")]
    pub num_perm: usize,
    /// Words per shingle.
    #[serde(default = "default_ngram")]
    pub ngram: usize,
    #[serde(default)]
    pub text: ShingleText,
    /// LSH bands; with `rows`, overrides the choice made from `threshold` and `num_perm`.
    #[serde(default)]
    pub bands: Option<usize>,
    /// Signature values per band.
    #[serde(default)]
    pub rows: Option<usize>,
    /// Seed of the hash functions.
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub keep: Keep,
    /// SQL sort items overriding `keep`.
    #[serde(default)]
    pub order_by: Vec<String>,
    /// Canonical Parquet datasets to dedupe against (their rows are never output).
    #[serde(default)]
    pub reference: Vec<String>,
}

fn default_threshold() -> f64 {
    0.8
}
fn default_num_perm() -> usize {
    128
}
fn default_ngram() -> usize {
    5
}
fn default_seed() -> u64 {
    1
}

#[derive(Debug, Clone)]
pub struct NearDedupe {
    hasher: Arc<MinHasher>,
    params: LshParams,
    options: NearDedupeOptions,
}

impl OperatorDef for NearDedupe {
    const NAME: &'static str = "near_dedupe";
    const KIND: StepKind = StepKind::Group;
    const SUMMARY: &'static str = "MinHash-LSH near-duplicate removal over word n-grams of the conversation or of the actions; adds `<step>_cluster` and keeps each cluster's first row by the keep policy; `reference` dedupes against another dataset.";
    const EXAMPLE: &'static str =
        "op: near_dedupe\nthreshold: 0.8\nnum_perm: 128\nngram: 5\ntext: conversation\nkeep: best";
    type Options = NearDedupeOptions;

    fn build(o: NearDedupeOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        if !(o.threshold > 0.0 && o.threshold <= 1.0) {
            return Err(OpsError::Config(format!(
                "threshold must be in (0, 1], got {}",
                o.threshold
            )));
        }
        if o.num_perm == 0 || o.num_perm > 4096 {
            return Err(OpsError::Config(format!(
                "num_perm must be in 1..=4096, got {}",
                o.num_perm
            )));
        }
        let (bands, rows) = match (o.bands, o.rows) {
            (Some(b), Some(r)) if b * r <= o.num_perm && b > 0 && r > 0 => (b, r),
            (Some(b), Some(r)) => {
                return Err(OpsError::Config(format!(
                    "bands × rows ({b} × {r}) must be positive and at most num_perm ({})",
                    o.num_perm
                )));
            }
            (None, None) => optimal_bands(o.threshold, o.num_perm),
            _ => {
                return Err(OpsError::Config(
                    "give both bands and rows, or neither".into(),
                ));
            }
        };
        Ok(Arc::new(NearDedupe {
            hasher: Arc::new(MinHasher::new(o.num_perm, o.ngram, o.seed)),
            params: LshParams {
                bands,
                rows,
                threshold: o.threshold,
            },
            options: o,
        }))
    }
}

/// The words a row's shingles are made of.
pub fn row_words<'a>(view: &MessagesView<'a>, row: usize, text: ShingleText) -> Vec<&'a str> {
    let mut words = Vec::new();
    for msg in view.row(row) {
        if text == ShingleText::Conversation {
            words.extend(msg.content().split_whitespace());
        }
        if text == ShingleText::Conversation || msg.is_assistant() {
            for call in msg.calls() {
                words.push(call.name);
                words.extend(call.arguments.split_whitespace());
            }
        }
    }
    words
}

impl NearDedupe {
    fn signature_expr(&self, ctx: &StepCtx) -> Expr {
        let hasher = Arc::clone(&self.hasher);
        let text = self.options.text;
        BatchUdf::call(
            udf_name(<Self as OperatorDef>::NAME, ctx),
            DataType::Binary,
            vec![col("messages")],
            move |args| {
                let view = MessagesView::try_new(&args[0])?;
                let mut b = BinaryBuilder::new();
                for i in 0..view.len() {
                    let shingles = hasher.shingles(row_words(&view, i, text).into_iter());
                    match hasher.signature(&shingles) {
                        Some(sig) => {
                            let bytes: Vec<u8> = sig.iter().flat_map(|v| v.to_le_bytes()).collect();
                            b.append_value(bytes);
                        }
                        None => b.append_null(),
                    }
                }
                Ok(Arc::new(b.finish()))
            },
        )
    }
}

impl Operator for NearDedupe {
    fn row_columns(&self, ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        Ok(vec![(ctx.col("sig"), self.signature_expr(ctx))])
    }

    fn decide(
        &self,
        df: DataFrame,
        ctx: &StepCtx,
        alive: Expr,
        env: &dyn Env,
    ) -> Result<DataFrame, OpsError> {
        let reference = !self.options.reference.is_empty();
        let df = attach_reference(
            df,
            ctx,
            env,
            &self.options.reference,
            ctx.col("sig"),
            self.signature_expr(ctx),
        )?;
        let order = keep_order(self.options.keep, &self.options.order_by, reference, env)?;
        let window = WindowUDF::from(ClusterWindow {
            name: format!("tf_near_clusters_{:02}", ctx.index),
            signature: Signature::any(4, Volatility::Immutable),
            params: self.params,
        });
        let placed = window
            .call(vec![
                col(ctx.col("sig")),
                col("trajectory_id"),
                alive.clone(),
                col("_ref"),
            ])
            .partition_by(vec![alive.clone()])
            .order_by(order)
            .build()?;
        let placed_col = ctx.col("placed");
        let df = df.window(vec![placed.alias(&placed_col)])?;
        let df = df
            .with_column(
                &ctx.reason_col(),
                when(alive, get_field(col(&placed_col), "detail")).end()?,
            )?
            .with_column(&ctx.col("cluster"), get_field(col(&placed_col), "cluster"))?
            .filter(datafusion::prelude::not(col("_ref")))?;
        Ok(df.drop_columns(&[placed_col.as_str(), ctx.col("sig").as_str(), "_ref"])?)
    }

    fn output_columns(&self, ctx: &StepCtx) -> Vec<(String, String)> {
        vec![(format!("{}_cluster", ctx.name), ctx.col("cluster"))]
    }
}

/// The window function that clusters a partition's signatures.
#[derive(Debug)]
struct ClusterWindow {
    name: String,
    signature: Signature,
    params: LshParams,
}

impl PartialEq for ClusterWindow {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for ClusterWindow {}
impl Hash for ClusterWindow {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

fn placed_fields() -> Fields {
    Fields::from(vec![
        Field::new("cluster", DataType::Utf8, true),
        Field::new("detail", DataType::Utf8, true),
    ])
}

impl WindowUDFImpl for ClusterWindow {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> datafusion::error::Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(ClusterEvaluator {
            params: self.params,
        }))
    }

    fn field(&self, args: WindowUDFFieldArgs) -> datafusion::error::Result<FieldRef> {
        Ok(Arc::new(Field::new(
            args.name(),
            DataType::Struct(placed_fields()),
            true,
        )))
    }
}

#[derive(Debug)]
struct ClusterEvaluator {
    params: LshParams,
}

fn decode(sig: &[u8]) -> Vec<u32> {
    sig.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl PartitionEvaluator for ClusterEvaluator {
    fn evaluate_all(
        &mut self,
        values: &[ArrayRef],
        num_rows: usize,
    ) -> datafusion::error::Result<ArrayRef> {
        let sigs = values[0].as_binary::<i32>();
        let ids = values[1].as_string::<i32>();
        let alive = values[2].as_boolean();
        let is_ref = values[3].as_boolean();
        let (mut cluster_ids, mut details) = (StringBuilder::new(), StringBuilder::new());
        if num_rows == 0 || !alive.value(0) {
            // Rows an earlier step dropped: no clustering, no reasons.
            for _ in 0..num_rows {
                cluster_ids.append_null();
                details.append_null();
            }
        } else {
            let decoded: Vec<Option<Vec<u32>>> = (0..num_rows)
                .map(|i| (!sigs.is_null(i)).then(|| decode(sigs.value(i))))
                .collect();
            let refs: Vec<Option<&[u32]>> = decoded.iter().map(|s| s.as_deref()).collect();
            for (i, p) in cluster(&refs, self.params).into_iter().enumerate() {
                let rep = p.representative;
                cluster_ids.append_value(ids.value(rep));
                details.append_option((rep != i).then(|| {
                    format!(
                        "near duplicate of {}{} (estimated Jaccard {:.2})",
                        ids.value(rep),
                        if is_ref.value(rep) {
                            " in the reference"
                        } else {
                            ""
                        },
                        p.similarity
                    )
                }));
            }
        }
        let columns: Vec<ArrayRef> =
            vec![Arc::new(cluster_ids.finish()), Arc::new(details.finish())];
        Ok(Arc::new(StructArray::try_new(
            placed_fields(),
            columns,
            None,
        )?))
    }
}
