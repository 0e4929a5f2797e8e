//! `valid_tool_calls`: every call's arguments are a JSON object, its name is in the tool
//! catalogue (the row's own `tools` and/or one configured here) and its required arguments
//! are present.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use datafusion::prelude::{Expr, col};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

use crate::OpsError;
use crate::operator::{Env, Operator, OperatorDef, StepCtx, StepKind, batch_check, reasons};
use crate::view::MessagesView;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidToolCallsOptions {
    /// Read each row's `tools` column (OpenAI function specs) as its catalogue.
    #[serde(default = "crate::operator::yes")]
    pub use_row_tools: bool,
    /// Extra tools: name → required argument names.
    #[serde(default)]
    pub catalogue: BTreeMap<String, Vec<String>>,
}

/// Tool name → required arguments.
type Catalogue = HashMap<String, Vec<String>>;

#[derive(Debug, Clone)]
pub struct ValidToolCalls {
    use_row_tools: bool,
    configured: Catalogue,
}

impl OperatorDef for ValidToolCalls {
    const NAME: &'static str = "valid_tool_calls";
    const KIND: StepKind = StepKind::Filter;
    const SUMMARY: &'static str = "Drops rows with a call whose arguments are not a JSON object, whose tool is not in the catalogue, or that lacks a required argument.";
    const EXAMPLE: &'static str = "op: valid_tool_calls\ncatalogue:\n  think: [thought]";
    type Options = ValidToolCallsOptions;

    fn build(o: ValidToolCallsOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        Ok(Arc::new(ValidToolCalls {
            use_row_tools: o.use_row_tools,
            configured: o.catalogue.into_iter().collect(),
        }))
    }
}

/// Reads OpenAI tool specs (`[{"type":"function","function":{…}}]` or bare `{name, parameters}`).
pub fn parse_catalogue(tools: &str) -> Option<Catalogue> {
    let v: Value = serde_json::from_str(tools).ok()?;
    let mut out = Catalogue::new();
    for spec in v.as_array()? {
        let f = spec.get("function").unwrap_or(spec);
        let Some(name) = f.get("name").and_then(Value::as_str) else {
            continue;
        };
        let required = f
            .pointer("/parameters/required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(name.to_string(), required);
    }
    Some(out)
}

impl ValidToolCalls {
    fn check_row(
        &self,
        view: &MessagesView,
        row: usize,
        row_tools: Option<&Catalogue>,
    ) -> Option<String> {
        let known = row_tools.is_some() || !self.configured.is_empty();
        let mut turn = 0;
        for msg in view.row(row) {
            if !msg.is_assistant() {
                continue;
            }
            turn += 1;
            for call in msg.calls() {
                let args: Value = match serde_json::from_str(call.arguments) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => {
                        return Some(format!(
                            "turn {turn}: arguments of {} are not a JSON object",
                            call.name
                        ));
                    }
                };
                if !known {
                    continue;
                }
                let required = row_tools
                    .and_then(|c| c.get(call.name))
                    .or_else(|| self.configured.get(call.name));
                let Some(required) = required else {
                    return Some(format!("turn {turn}: unknown tool {}", call.name));
                };
                if let Some(missing) = required.iter().find(|r| args.get(r.as_str()).is_none()) {
                    return Some(format!(
                        "turn {turn}: {} lacks required argument {missing}",
                        call.name
                    ));
                }
            }
        }
        None
    }

    fn check_batch(
        &self,
        args: &[arrow::array::ArrayRef],
    ) -> Result<arrow::array::ArrayRef, OpsError> {
        let view = MessagesView::try_new(&args[0])?;
        let tools = args[1].as_string_opt::<i64>().ok_or_else(|| {
            OpsError::Data(format!(
                "tools is {}, expected LargeUtf8",
                args[1].data_type()
            ))
        })?;
        let mut cache: HashMap<u64, Option<Catalogue>> = HashMap::new();
        Ok(reasons(view.len(), |i| {
            let row_tools = if self.use_row_tools && !tools.is_null(i) {
                let text = tools.value(i);
                cache
                    .entry(xxh3_64(text.as_bytes()))
                    .or_insert_with(|| parse_catalogue(text))
                    .as_ref()
            } else {
                None
            };
            self.check_row(&view, i, row_tools)
        }))
    }
}

impl Operator for ValidToolCalls {
    fn row_columns(&self, ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        let me = self.clone();
        Ok(batch_check(
            <Self as OperatorDef>::NAME,
            ctx,
            vec![col("messages"), col("tools")],
            move |args| me.check_batch(args),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_openai_function_specs() {
        let c = parse_catalogue(
            r#"[{"type":"function","function":{"name":"execute_bash","parameters":{"required":["command"]}}},{"name":"think"}]"#,
        )
        .expect("parses");
        assert_eq!(c["execute_bash"], ["command"]);
        assert!(c["think"].is_empty());
        assert_eq!(parse_catalogue("{}"), None);
    }
}
