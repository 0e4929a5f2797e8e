//! `max_assistant_turns`: drop rollouts with more assistant turns than a limit (paper: 100).

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::functions::string::expr_fn::concat;
use datafusion::prelude::{Expr, cast, col, lit, when};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxAssistantTurnsOptions {
    /// Largest number of assistant turns a kept row may have.
    #[serde(default = "default_max")]
    pub max: u32,
}

fn default_max() -> u32 {
    100
}

#[derive(Debug)]
pub struct MaxAssistantTurns {
    max: u32,
}

impl OperatorDef for MaxAssistantTurns {
    const NAME: &'static str = "max_assistant_turns";
    const KIND: StepKind = StepKind::Filter;
    const SUMMARY: &'static str = "Drops rows with more assistant turns than `max` (paper: 100).";
    const EXAMPLE: &'static str = "op: max_assistant_turns\nmax: 100";
    type Options = MaxAssistantTurnsOptions;

    fn build(o: MaxAssistantTurnsOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        Ok(Arc::new(MaxAssistantTurns { max: o.max }))
    }
}

impl Operator for MaxAssistantTurns {
    fn row_columns(&self, ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        let turns = col("num_assistant_turns");
        let detail = concat(vec![
            cast(turns.clone(), DataType::Utf8),
            lit(format!(" assistant turns > {}", self.max)),
        ]);
        let reason = when(turns.gt(lit(self.max)), detail).end()?;
        Ok(vec![(ctx.reason_col(), reason)])
    }
}
