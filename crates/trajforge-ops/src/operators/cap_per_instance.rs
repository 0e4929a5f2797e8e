//! `cap_per_instance`: at most N rollouts per task (HERO in the paper: 1), chosen by the keep
//! policy. Rows without a task id are not capped.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::dataframe::DataFrame;
use datafusion::functions::string::expr_fn::concat;
use datafusion::prelude::{Expr, cast, col, lit, when};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::keep::{Keep, RankCols, keep_order, rank_groups};
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CapPerInstanceOptions {
    /// Most rollouts kept per task.
    #[serde(default = "one")]
    pub max: u64,
    /// The task column (`instance_id`, or `instance_key` to merge id spellings).
    #[serde(default = "default_by")]
    pub by: String,
    #[serde(default)]
    pub keep: Keep,
    /// SQL sort items overriding `keep`.
    #[serde(default)]
    pub order_by: Vec<String>,
}

fn one() -> u64 {
    1
}
fn default_by() -> String {
    "instance_id".into()
}

#[derive(Debug)]
pub struct CapPerInstance {
    options: CapPerInstanceOptions,
}

impl OperatorDef for CapPerInstance {
    const NAME: &'static str = "cap_per_instance";
    const KIND: StepKind = StepKind::Group;
    const SUMMARY: &'static str =
        "Keeps at most `max` rollouts per task (paper, HERO: 1), chosen by the keep policy.";
    const EXAMPLE: &'static str = "op: cap_per_instance\nmax: 1\nkeep: best";
    type Options = CapPerInstanceOptions;

    fn build(o: CapPerInstanceOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        if o.max == 0 {
            return Err(OpsError::Config("max must be at least 1".into()));
        }
        if !matches!(o.by.as_str(), "instance_id" | "instance_key" | "repo") {
            return Err(OpsError::Config(format!(
                "by must be instance_id, instance_key or repo, got {:?}",
                o.by
            )));
        }
        Ok(Arc::new(CapPerInstance { options: o }))
    }
}

impl Operator for CapPerInstance {
    fn row_columns(&self, _ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        Ok(Vec::new())
    }

    fn decide(
        &self,
        df: DataFrame,
        ctx: &StepCtx,
        alive: Expr,
        env: &dyn Env,
    ) -> Result<DataFrame, OpsError> {
        let by = col(self.options.by.as_str());
        let order = keep_order(self.options.keep, &self.options.order_by, false, env)?;
        let cols = RankCols::for_step(ctx, false);
        let df = rank_groups(df, alive.clone(), by.clone(), order, &cols)?;
        let over = alive
            .and(by.clone().is_not_null())
            .and(col(&cols.rank).gt(lit(self.options.max)));
        let detail = concat(vec![
            lit("rollout "),
            cast(col(&cols.rank), DataType::Utf8),
            lit(" of "),
            by,
            lit(format!(" (cap {})", self.options.max)),
        ]);
        let df = df.with_column(&ctx.reason_col(), when(over, detail).end()?)?;
        Ok(df.drop_columns(&cols.names())?)
    }
}
