//! SQL functions: `datafusion-functions-json` (`json_get_str(arguments, 'command')`, `->>`, …)
//! and trajforge's own, which call the same code the pipeline and ingest use:
//!
//! - `bash_commands(text)` → `list<utf8>`: the programs a shell command runs, in order, nested
//!   invocations included (`no_execution`'s bash reader: `python -m pytest` lists both). `text`
//!   is a tool call's arguments (its `command` field is read) or a command line.
//! - `patch_files(patch)` → `list<utf8>`, `patch_added_lines(patch)` /
//!   `patch_removed_lines(patch)` → `bigint`: what a unified diff touches (the ingest's reader).
//! - `tokenize(messages, tools, scaffold)` → struct (ids, loss mask, counts or the reason a row
//!   cannot be a sample), when asked for ([`register_tokenize`]): the tokenize stage's own UDF.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, ListBuilder, StringBuilder};
use arrow::datatypes::{DataType, Field};
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use trajforge_ops::OpsError;
use trajforge_ops::operator::BatchUdf;
use trajforge_ops::shell::invocations;
use trajforge_schema::patch::patch_stats;
use trajforge_tokenize::job::ToolCatalogue;
use trajforge_tokenize::model::Model;
use trajforge_tokenize::sample::SampleOptions;
use trajforge_tokenize::udf::TokenizeFn;

use crate::SqlError;

/// Registers `tokenize(messages, tools, scaffold)` (see `trajforge_tokenize::udf`) with the
/// tokenizer in `folder` (None: the bundled Qwen2.5-Coder one), default sample options (loss on
/// every assistant turn, no length limit) and the bundled tool catalogues.
pub fn register_tokenize(ctx: &SessionContext, folder: Option<&Path>) -> Result<(), SqlError> {
    let usage = |e: trajforge_tokenize::TokenizeError| SqlError::Usage(format!("tokenize(): {e}"));
    let model = Model::load(folder).map_err(usage)?;
    let tools = ToolCatalogue::bundled().map_err(usage)?;
    let f = TokenizeFn::new(
        Arc::new(model),
        Arc::new(tools),
        SampleOptions::default(),
        64 << 20,
    );
    ctx.register_udf(f.udf());
    Ok(())
}

/// Registers every function in `ctx`.
pub fn register(ctx: &SessionContext) -> Result<(), SqlError> {
    let mut registry = ctx.clone();
    datafusion_functions_json::register_all(&mut registry)?;
    ctx.register_udf(list_fn("bash_commands", bash_commands));
    ctx.register_udf(list_fn("patch_files", |p| patch_stats(p).files));
    ctx.register_udf(int_fn("patch_added_lines", |p| {
        i64::from(patch_stats(p).added)
    }));
    ctx.register_udf(int_fn("patch_removed_lines", |p| {
        i64::from(patch_stats(p).removed)
    }));
    Ok(())
}

/// Programs run by a tool call's `command` argument (none when the arguments have no string
/// `command`), or by `text` itself when it is not a JSON object.
pub fn bash_commands(text: &str) -> Vec<String> {
    let parsed = text
        .trim_start()
        .starts_with('{')
        .then(|| serde_json::from_str::<serde_json::Value>(text).ok())
        .flatten();
    let script = match &parsed {
        Some(serde_json::Value::Object(args)) => match args.get("command") {
            Some(serde_json::Value::String(c)) => c.as_str(),
            _ => return Vec::new(),
        },
        _ => text,
    };
    invocations(script).into_iter().map(|i| i.program).collect()
}

/// The one text argument as Utf8 (whatever string type the table stores).
fn text_arg(args: &[ArrayRef]) -> Result<ArrayRef, OpsError> {
    let first = args
        .first()
        .ok_or_else(|| OpsError::Data("one text argument expected".into()))?;
    arrow::compute::cast(first, &DataType::Utf8).map_err(|e| OpsError::Data(e.to_string()))
}

/// `list<utf8>` of a text: null in, null out.
fn list_fn(name: &str, f: fn(&str) -> Vec<String>) -> ScalarUDF {
    let returns = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    BatchUdf::udf(name.to_string(), returns, 1, move |args| {
        let text = text_arg(args)?;
        let mut b = ListBuilder::new(StringBuilder::new());
        for v in text.as_string::<i32>().iter() {
            if let Some(s) = v {
                for item in f(s) {
                    b.values().append_value(item);
                }
            }
            b.append(v.is_some());
        }
        Ok(Arc::new(b.finish()) as ArrayRef)
    })
}

/// `bigint` of a text: null in, null out.
fn int_fn(name: &str, f: fn(&str) -> i64) -> ScalarUDF {
    BatchUdf::udf(name.to_string(), DataType::Int64, 1, move |args| {
        let text = text_arg(args)?;
        let out: Int64Array = text.as_string::<i32>().iter().map(|v| v.map(f)).collect();
        Ok(Arc::new(out) as ArrayRef)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_commands_reads_the_command_argument_or_the_text() {
        let args =
            r#"{"command": "cd /ws && PYTHONPATH=. timeout 60 python3 -m pytest -q | tail -5"}"#;
        assert_eq!(bash_commands(args), ["cd", "python3", "pytest", "tail"]);
        assert_eq!(bash_commands("grep -rn foo . ; ls"), ["grep", "ls"]);
        // Arguments without a command (an editor call) run nothing.
        assert!(bash_commands(r#"{"path": "/a", "command": 3}"#).is_empty());
    }
}
