//! `code_health`: parse the code a rollout writes with tree-sitter — files created through
//! `str_replace_editor create` and the new code of the model patch — and count syntax errors.
//! The counts become output columns; rows with more errors than `max_errors` are dropped.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder, StructArray, UInt32Builder};
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::prelude::{Expr, col};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::operator::{BatchUdf, Env, Operator, OperatorDef, StepCtx, StepKind, udf_name};
use crate::syntax::{Lang, errors_added, split_diff, syntax_errors};
use crate::view::{MessagesView, exchanges};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeHealthOptions {
    /// Languages to check (python, javascript, typescript, tsx, java, go, rust).
    #[serde(default = "all_languages")]
    pub languages: Vec<String>,
    /// Most syntax errors a kept row may have.
    #[serde(default)]
    pub max_errors: u32,
    /// Parse files created with the editor tool.
    #[serde(default = "crate::operator::yes")]
    pub created_files: bool,
    /// Parse the model patch's hunks (errors the edit adds).
    #[serde(default = "crate::operator::yes")]
    pub patch: bool,
    /// The editor tool's name.
    #[serde(default = "editor")]
    pub editor_tool: String,
}

fn all_languages() -> Vec<String> {
    Lang::ALL.iter().map(|l| l.name().to_string()).collect()
}
fn editor() -> String {
    "str_replace_editor".into()
}

#[derive(Debug, Clone)]
pub struct CodeHealth {
    languages: Vec<Lang>,
    max_errors: u32,
    created_files: bool,
    patch: bool,
    editor_tool: String,
}

impl OperatorDef for CodeHealth {
    const NAME: &'static str = "code_health";
    const KIND: StepKind = StepKind::Filter;
    const SUMMARY: &'static str = "Parses created files and patch hunks with tree-sitter (Python, JavaScript, TypeScript, Java, Go, Rust); adds `<step>_files` and `<step>_errors` columns and drops rows with more than `max_errors` syntax errors.";
    const EXAMPLE: &'static str = "op: code_health\nlanguages: [python, go]\nmax_errors: 0";
    type Options = CodeHealthOptions;

    fn build(o: CodeHealthOptions, _ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError> {
        let languages = o
            .languages
            .iter()
            .map(|name| {
                Lang::parse(name).ok_or_else(|| {
                    let known: Vec<&str> = Lang::ALL.iter().map(|l| l.name()).collect();
                    OpsError::Config(format!(
                        "languages: unknown language {name:?}; known: {}",
                        known.join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(CodeHealth {
            languages,
            max_errors: o.max_errors,
            created_files: o.created_files,
            patch: o.patch,
            editor_tool: o.editor_tool,
        }))
    }
}

/// What the check found in one row.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub files: u32,
    pub errors: u32,
    /// The first file with errors.
    pub worst: Option<String>,
}

impl CodeHealth {
    fn lang(&self, path: &str) -> Option<Lang> {
        Lang::of_path(path).filter(|l| self.languages.contains(l))
    }

    fn note(h: &mut Health, path: &str, errors: usize) {
        h.files += 1;
        h.errors += errors as u32;
        if errors > 0 && h.worst.is_none() {
            h.worst = Some(format!("{path} ({errors} syntax errors)"));
        }
    }

    pub fn check_row(&self, view: &MessagesView, row: usize, patch: Option<&str>) -> Health {
        let mut h = Health::default();
        if self.created_files {
            for ex in exchanges(view, row) {
                if ex.call.name != self.editor_tool {
                    continue;
                }
                #[derive(Deserialize)]
                struct Create {
                    command: String,
                    path: String,
                    file_text: Option<String>,
                }
                let Ok(c) = serde_json::from_str::<Create>(ex.call.arguments) else {
                    continue;
                };
                if let (true, Some(text), Some(lang)) =
                    (c.command == "create", c.file_text, self.lang(&c.path))
                {
                    Self::note(&mut h, &c.path, syntax_errors(lang, &text));
                }
            }
        }
        if let (true, Some(patch)) = (self.patch, patch) {
            for file in split_diff(patch) {
                if let Some(lang) = self.lang(&file.path) {
                    Self::note(&mut h, &file.path, errors_added(&file, lang));
                }
            }
        }
        h
    }

    fn fields() -> Fields {
        Fields::from(vec![
            Field::new("files", DataType::UInt32, false),
            Field::new("errors", DataType::UInt32, false),
            Field::new("detail", DataType::Utf8, true),
        ])
    }

    fn check_batch(&self, args: &[ArrayRef]) -> Result<ArrayRef, OpsError> {
        let view = MessagesView::try_new(&args[0])?;
        let patches = args[1]
            .as_string_opt::<i64>()
            .ok_or_else(|| OpsError::Data("model_patch is not LargeUtf8".into()))?;
        let n = view.len();
        let (mut files, mut errors) = (
            UInt32Builder::with_capacity(n),
            UInt32Builder::with_capacity(n),
        );
        let mut detail = StringBuilder::new();
        for i in 0..n {
            let patch = (!patches.is_null(i)).then(|| patches.value(i));
            let h = self.check_row(&view, i, patch);
            files.append_value(h.files);
            errors.append_value(h.errors);
            detail.append_option((h.errors > self.max_errors).then(|| {
                format!(
                    "{} syntax errors > {} in {}",
                    h.errors,
                    self.max_errors,
                    h.worst.unwrap_or_default()
                )
            }));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(files.finish()),
            Arc::new(errors.finish()),
            Arc::new(detail.finish()),
        ];
        Ok(Arc::new(
            StructArray::try_new(Self::fields(), columns, None)
                .map_err(datafusion::error::DataFusionError::from)?,
        ))
    }
}

impl Operator for CodeHealth {
    fn row_columns(&self, ctx: &StepCtx, _env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError> {
        let me = self.clone();
        let udf = BatchUdf::call(
            udf_name(<Self as OperatorDef>::NAME, ctx),
            DataType::Struct(Self::fields()),
            vec![col("messages"), col("model_patch")],
            move |args| me.check_batch(args),
        );
        Ok(vec![(ctx.col("health"), udf)])
    }

    fn decide(
        &self,
        df: datafusion::dataframe::DataFrame,
        ctx: &StepCtx,
        _alive: Expr,
        _env: &dyn Env,
    ) -> Result<datafusion::dataframe::DataFrame, OpsError> {
        let health = col(ctx.col("health"));
        Ok(df
            .with_column(&ctx.reason_col(), get_field(health.clone(), "detail"))?
            .with_column(&ctx.col("files"), get_field(health.clone(), "files"))?
            .with_column(&ctx.col("errors"), get_field(health, "errors"))?
            .drop_columns(&[ctx.col("health").as_str()])?)
    }

    fn output_columns(&self, ctx: &StepCtx) -> Vec<(String, String)> {
        vec![
            (format!("{}_files", ctx.name), ctx.col("files")),
            (format!("{}_errors", ctx.name), ctx.col("errors")),
        ]
    }
}
