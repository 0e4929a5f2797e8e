//! SQL functions: `datafusion-functions-json` (`json_get_str(arguments, 'command')`, `->>`, …)
//! and trajforge's own, which call the same code the pipeline and ingest use:
//!
//! - `bash_commands(text)` → `list<utf8>`: the programs a shell command runs, in order, nested
//!   invocations included (`no_execution`'s parser). `text` is a tool call's arguments (its
//!   `command` field is read) or a command line.
//! - `patch_files(patch)` → `list<utf8>`, `patch_added_lines(patch)` /
//!   `patch_removed_lines(patch)` → `bigint`: what a unified diff touches (the ingest's reader).
//! - `tokenize(messages, tools, scaffold)` → struct (ids, loss mask, counts or the reason a row
//!   cannot be a sample), when asked for ([`register_tokenize`]): the tokenize stage's own UDF.

use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Builder, ListBuilder, StringBuilder};
use arrow::datatypes::{DataType, Field};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
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
    for f in [
        TextFn::list("bash_commands", bash_commands),
        TextFn::list("patch_files", |p| patch_stats(p).files),
        TextFn::int("patch_added_lines", |p| i64::from(patch_stats(p).added)),
        TextFn::int("patch_removed_lines", |p| i64::from(patch_stats(p).removed)),
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(f));
    }
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

#[derive(Clone, Copy)]
enum Kernel {
    List(fn(&str) -> Vec<String>),
    Int(fn(&str) -> i64),
}

/// A one-argument function of text, null in → null out.
struct TextFn {
    name: &'static str,
    signature: Signature,
    kernel: Kernel,
}

impl TextFn {
    fn list(name: &'static str, f: fn(&str) -> Vec<String>) -> TextFn {
        TextFn::new(name, Kernel::List(f))
    }

    fn int(name: &'static str, f: fn(&str) -> i64) -> TextFn {
        TextFn::new(name, Kernel::Int(f))
    }

    fn new(name: &'static str, kernel: Kernel) -> TextFn {
        TextFn {
            name,
            signature: Signature::string(1, Volatility::Immutable),
            kernel,
        }
    }

    fn apply(&self, input: &ArrayRef) -> DfResult<ArrayRef> {
        let text = arrow::compute::cast(input, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        Ok(match self.kernel {
            Kernel::List(f) => {
                let mut b = ListBuilder::new(StringBuilder::new());
                for v in text.iter() {
                    match v {
                        Some(s) => {
                            for item in f(s) {
                                b.values().append_value(item);
                            }
                            b.append(true);
                        }
                        None => b.append(false),
                    }
                }
                Arc::new(b.finish())
            }
            Kernel::Int(f) => {
                let mut b = Int64Builder::with_capacity(text.len());
                for v in text.iter() {
                    b.append_option(v.map(f));
                }
                Arc::new(b.finish())
            }
        })
    }
}

impl Debug for TextFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TextFn({})", self.name)
    }
}

impl PartialEq for TextFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TextFn {}

impl Hash for TextFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for TextFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kernel {
            Kernel::List(_) => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            Kernel::Int(_) => DataType::Int64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out = self.apply(&arrays[0])?;
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_commands_reads_the_command_argument_or_the_text() {
        let args =
            r#"{"command": "cd /ws && PYTHONPATH=. timeout 60 python3 -m pytest -q | tail -5"}"#;
        assert_eq!(bash_commands(args), ["cd", "python3", "tail"]);
        assert_eq!(bash_commands("grep -rn foo . ; ls"), ["grep", "ls"]);
        // Arguments without a command (an editor call) run nothing.
        assert!(bash_commands(r#"{"path": "/a", "command": 3}"#).is_empty());
    }
}
