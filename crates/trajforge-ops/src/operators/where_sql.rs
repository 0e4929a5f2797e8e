//! `where`: keep rows for which a SQL predicate over the canonical columns is true.

use std::sync::Arc;

use datafusion::prelude::{Expr, lit, when};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhereOptions {
    /// A DataFusion SQL predicate; rows where it is false or NULL are dropped.
    pub predicate: String,
}

#[derive(Debug)]
pub struct Where {
    predicate: String,
}

impl OperatorDef for Where {
    const NAME: &'static str = "where";
    const KIND: StepKind = StepKind::Filter;
    const SUMMARY: &'static str =
        "Drops rows for which a SQL predicate over the canonical columns is false or NULL.";
    const EXAMPLE: &'static str =
        "op: where\npredicate: \"num_assistant_turns >= 3 AND repo IS NOT NULL\"";
    type Options = WhereOptions;

    fn build(options: WhereOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        if options.predicate.trim().is_empty() {
            return Err(OpsError::Config("predicate is empty".into()));
        }
        Ok(Arc::new(Where {
            predicate: options.predicate,
        }))
    }
}

impl Operator for Where {
    fn row_columns(&self, ctx: &StepCtx, env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        let predicate = env
            .parse_expr(&self.predicate)
            .map_err(|e| OpsError::Config(format!("predicate {:?}: {e}", self.predicate)))?;
        let detail = format!("not ({})", self.predicate);
        let reason = when(predicate, lit(datafusion::common::ScalarValue::Utf8(None)))
            .otherwise(lit(detail))?;
        Ok(vec![(ctx.reason_col(), reason)])
    }
}
