//! `max_failed_edits`: at most N failed editor calls (paper: 2 failed `str_replace_editor`
//! calls). A call failed when its observation starts with an error marker (`ERROR`) or reports
//! that no replacement was performed.

use std::sync::Arc;

use datafusion::prelude::Expr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use trajforge_schema::FailureRule;

use crate::OpsError;
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind, message_check};
use crate::view::{MessagesView, exchanges};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxFailedEditsOptions {
    /// Most failed editor calls a kept row may have.
    #[serde(default = "default_max")]
    pub max: u32,
    /// Tool names whose calls count as edits.
    #[serde(default = "default_tools")]
    pub tools: Vec<String>,
    /// An observation starting with one of these (after leading whitespace) is a failure.
    #[serde(default = "trajforge_schema::failure::default_error_prefixes")]
    pub error_prefixes: Vec<String>,
    /// An observation containing one of these (case-insensitive) is a failure.
    #[serde(default = "trajforge_schema::failure::default_failure_phrases")]
    pub failure_phrases: Vec<String>,
}

fn default_max() -> u32 {
    2
}
fn default_tools() -> Vec<String> {
    vec!["str_replace_editor".into()]
}

#[derive(Debug, Clone)]
pub struct MaxFailedEdits {
    options: MaxFailedEditsOptions,
    rule: FailureRule,
}

impl OperatorDef for MaxFailedEdits {
    const NAME: &'static str = "max_failed_edits";
    const KIND: StepKind = StepKind::Filter;
    const SUMMARY: &'static str = "Drops rows with more than `max` failed editor calls (paper: 2 failed str_replace_editor calls).";
    const EXAMPLE: &'static str = "op: max_failed_edits\nmax: 2\ntools: [str_replace_editor]";
    type Options = MaxFailedEditsOptions;

    fn build(o: MaxFailedEditsOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        let rule = FailureRule::new(&o.error_prefixes, &o.failure_phrases);
        Ok(Arc::new(MaxFailedEdits { options: o, rule }))
    }
}

impl MaxFailedEdits {
    pub fn check_row(&self, view: &MessagesView, row: usize) -> Option<String> {
        let failed: Vec<usize> = exchanges(view, row)
            .iter()
            .filter(|e| self.options.tools.iter().any(|t| t == e.call.name))
            .filter(|e| e.result.is_some_and(|r| self.rule.failed(r)))
            .map(|e| e.turn)
            .collect();
        (failed.len() > self.options.max as usize).then(|| {
            format!(
                "{} failed edits > {} (turns {:?})",
                failed.len(),
                self.options.max,
                failed
            )
        })
    }
}

impl Operator for MaxFailedEdits {
    fn row_columns(&self, ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        let me = self.clone();
        Ok(message_check(
            <Self as OperatorDef>::NAME,
            ctx,
            move |view, i| me.check_row(view, i),
        ))
    }
}
