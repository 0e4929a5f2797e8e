//! `non_empty_patch`: drop rollouts whose model patch is missing or changes no line.

use std::sync::Arc;

use datafusion::prelude::{Expr, col, lit, when};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NonEmptyPatchOptions {}

#[derive(Debug)]
pub struct NonEmptyPatch;

impl OperatorDef for NonEmptyPatch {
    const NAME: &'static str = "non_empty_patch";
    const KIND: StepKind = StepKind::Filter;
    const SUMMARY: &'static str =
        "Drops rows whose model patch is missing, blank, or adds and removes no line.";
    const EXAMPLE: &'static str = "op: non_empty_patch";
    type Options = NonEmptyPatchOptions;

    fn build(_: NonEmptyPatchOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        Ok(Arc::new(NonEmptyPatch))
    }
}

impl Operator for NonEmptyPatch {
    fn row_columns(&self, ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        let changed = col("patch_added_lines") + col("patch_removed_lines");
        let reason = when(col("model_patch").is_null(), lit("no model patch"))
            .when(changed.eq(lit(0u32)), lit("model patch changes no line"))
            .end()?;
        Ok(vec![(ctx.reason_col(), reason)])
    }
}
