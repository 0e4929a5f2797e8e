//! `exact_dedupe`: one row per identical conversation. The key is xxh3-128 over the messages
//! canonicalised as configured (tool-call ids, UUIDs, timestamps and workspace paths ignored by
//! default); each group keeps one row by the keep policy; with `reference`, rows identical to a
//! row of another dataset are dropped too.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::dataframe::DataFrame;
use datafusion::functions::string::expr_fn::concat;
use datafusion::prelude::{Expr, col, lit, when};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::canon::{Canon, Ignore};
use crate::keep::{Keep, RankCols, keep_order, rank_groups};
use crate::operator::{
    BatchUdf, Env, Operator, OperatorDef, StepCtx, StepKind, attach_reference, udf_name,
};
use crate::view::MessagesView;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExactDedupeOptions {
    /// What two conversations may differ in and still be duplicates; `[call_ids]` alone uses the
    /// ingested `content_hash` without re-reading the messages.
    #[serde(default = "Ignore::all")]
    pub ignore: Vec<Ignore>,
    /// Path prefixes whose next component is a per-run workspace (`/workspace/django__4.0` → `<ws>`).
    #[serde(default = "default_prefixes")]
    pub workspace_prefixes: Vec<String>,
    /// Which row of a group survives.
    #[serde(default)]
    pub keep: Keep,
    /// SQL sort items overriding `keep` (`"resolved DESC NULLS LAST"`).
    #[serde(default)]
    pub order_by: Vec<String>,
    /// Canonical Parquet datasets whose rows count as earlier copies (drop rows found there).
    #[serde(default)]
    pub reference: Vec<String>,
}

pub fn default_prefixes() -> Vec<String> {
    vec!["/workspace/".into()]
}

#[derive(Debug, Clone)]
pub struct ExactDedupe {
    /// `None` when only call ids are ignored: the ingested `content_hash` is that key already.
    canon: Option<Arc<Canon>>,
    options: ExactDedupeOptions,
}

impl OperatorDef for ExactDedupe {
    const NAME: &'static str = "exact_dedupe";
    const KIND: StepKind = StepKind::Group;
    const SUMMARY: &'static str = "Keeps one row per identical conversation (xxh3-128 over canonicalised messages; ids, UUIDs, timestamps, workspace paths ignored as configured).";
    const EXAMPLE: &'static str =
        "op: exact_dedupe\nignore: [call_ids, uuids, timestamps, workspace_paths]\nkeep: best";
    type Options = ExactDedupeOptions;

    fn build(o: ExactDedupeOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        let canon = (o.ignore != [Ignore::CallIds])
            .then(|| Arc::new(Canon::new(&o.ignore, &o.workspace_prefixes)));
        Ok(Arc::new(ExactDedupe { canon, options: o }))
    }
}

impl ExactDedupe {
    fn key_expr(&self, ctx: &StepCtx) -> Expr {
        let Some(canon) = self.canon.clone() else {
            return col("content_hash");
        };
        BatchUdf::call(
            udf_name(<Self as OperatorDef>::NAME, ctx),
            DataType::Utf8,
            vec![col("messages")],
            move |args| {
                let view = MessagesView::try_new(&args[0])?;
                let mut b = arrow::array::StringBuilder::new();
                for i in 0..view.len() {
                    b.append_value(canon.hash_row(&view, i));
                }
                Ok(Arc::new(b.finish()))
            },
        )
    }
}

impl Operator for ExactDedupe {
    fn row_columns(&self, ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        Ok(vec![(ctx.col("key"), self.key_expr(ctx))])
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
            ctx.col("key"),
            self.key_expr(ctx),
        )?;
        let order = keep_order(self.options.keep, &self.options.order_by, reference, env)?;
        let cols = RankCols::for_step(ctx, reference);
        let df = rank_groups(df, alive.clone(), col(ctx.col("key")), order, &cols)?;
        let of_ref = match &cols.first_is_ref {
            Some(c) => when(col(c), lit(" in the reference")).otherwise(lit(""))?,
            None => lit(""),
        };
        let dropped = alive.and(col(&cols.rank).gt(lit(1u64)));
        let detail = concat(vec![lit("duplicate of "), col(&cols.first), of_ref]);
        let df = df
            .with_column(&ctx.reason_col(), when(dropped, detail).end()?)?
            .filter(datafusion::prelude::not(col("_ref")))?;
        let key = ctx.col("key");
        let mut temp = cols.names();
        temp.extend([key.as_str(), "_ref"]);
        Ok(df.drop_columns(&temp)?)
    }
}
