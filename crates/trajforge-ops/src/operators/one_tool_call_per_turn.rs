//! `one_tool_call_per_turn`: every assistant turn makes exactly one tool call.

use std::sync::Arc;

use datafusion::prelude::Expr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind, message_check};
use crate::view::MessagesView;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OneToolCallPerTurnOptions {
    /// Accept a final assistant turn without a call (a closing message after `finish`).
    #[serde(default)]
    pub allow_final_message: bool,
}

#[derive(Debug)]
pub struct OneToolCallPerTurn {
    allow_final_message: bool,
}

impl OperatorDef for OneToolCallPerTurn {
    const NAME: &'static str = "one_tool_call_per_turn";
    const KIND: StepKind = StepKind::Filter;
    const SUMMARY: &'static str =
        "Drops rows where an assistant turn makes no tool call or more than one.";
    const EXAMPLE: &'static str = "op: one_tool_call_per_turn\nallow_final_message: false";
    type Options = OneToolCallPerTurnOptions;

    fn build(o: OneToolCallPerTurnOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        Ok(Arc::new(OneToolCallPerTurn {
            allow_final_message: o.allow_final_message,
        }))
    }
}

/// The first offending turn of a row, described.
pub fn check_row(view: &MessagesView, row: usize, allow_final_message: bool) -> Option<String> {
    let turns: Vec<usize> = view
        .row(row)
        .filter(|m| m.is_assistant())
        .map(|m| m.num_calls())
        .collect();
    let last = turns.len().saturating_sub(1);
    turns.iter().enumerate().find_map(|(i, &n)| {
        let ok = n == 1 || (n == 0 && allow_final_message && i == last);
        (!ok).then(|| format!("assistant turn {} makes {n} tool calls", i + 1))
    })
}

impl Operator for OneToolCallPerTurn {
    fn row_columns(&self, ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        let allow = self.allow_final_message;
        Ok(message_check(
            <Self as OperatorDef>::NAME,
            ctx,
            move |view, i| check_row(view, i, allow),
        ))
    }
}
