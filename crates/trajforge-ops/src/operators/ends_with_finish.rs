//! `ends_with_finish`: the last assistant turn calls a finishing tool (`finish`, `submit`).

use std::sync::Arc;

use datafusion::prelude::Expr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind, message_check};
use crate::view::MessagesView;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndsWithFinishOptions {
    /// Tool names that end a rollout.
    #[serde(default = "default_tools")]
    pub tools: Vec<String>,
}

fn default_tools() -> Vec<String> {
    vec!["finish".into(), "submit".into()]
}

#[derive(Debug)]
pub struct EndsWithFinish {
    tools: Vec<String>,
}

impl OperatorDef for EndsWithFinish {
    const NAME: &'static str = "ends_with_finish";
    const KIND: StepKind = StepKind::Filter;
    const SUMMARY: &'static str =
        "Drops rows whose last assistant turn does not call a finishing tool.";
    const EXAMPLE: &'static str = "op: ends_with_finish\ntools: [finish, submit]";
    type Options = EndsWithFinishOptions;

    fn build(o: EndsWithFinishOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        if o.tools.is_empty() {
            return Err(OpsError::Config("tools must name at least one tool".into()));
        }
        Ok(Arc::new(EndsWithFinish { tools: o.tools }))
    }
}

pub fn check_row(view: &MessagesView, row: usize, tools: &[String]) -> Option<String> {
    let Some(last) = view.row(row).rev().find(|m| m.is_assistant()) else {
        return Some("no assistant turn".into());
    };
    if last.calls().any(|c| tools.iter().any(|t| t == c.name)) {
        return None;
    }
    let names: Vec<&str> = last.calls().map(|c| c.name).collect();
    Some(if names.is_empty() {
        "last assistant turn makes no tool call".into()
    } else {
        format!("last assistant turn calls {}", names.join(", "))
    })
}

impl Operator for EndsWithFinish {
    fn row_columns(&self, ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        let tools = self.tools.clone();
        Ok(message_check(
            <Self as OperatorDef>::NAME,
            ctx,
            move |view, i| check_row(view, i, &tools),
        ))
    }
}
