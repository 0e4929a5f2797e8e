//! The operator contract: how a step plugs into the DataFusion plan the pipeline builds.
//!
//! A run plans in two layers. The *row layer* is one projection over the wide canonical rows:
//! every step contributes expressions (built-in DataFusion expressions or scalar UDFs reading
//! the message lists in place) whose results are small — a reason string, a key, a signature.
//! The *decision layer* works on that narrow table, step after step in YAML order: filters have
//! nothing left to do, while dedupe and caps add their reason column through window functions
//! partitioned by `alive` (no earlier step dropped the row). A reason column holds a detail
//! string for rows the step drops and null for rows it passes; the step's name is the code.

use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{Expr, col, lit};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::OpsError;
use crate::view::MessagesView;

/// How a step treats rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Judges each row on its own; every filter sees every row, so a row lists all its reasons.
    Filter,
    /// Judges rows against each other (dedupe, caps); only rows still alive take part.
    Group,
    /// Writes the outputs.
    Sink,
}

/// Where a step sits in its pipeline.
#[derive(Debug, Clone)]
pub struct StepCtx {
    /// 0-based position in the pipeline.
    pub index: usize,
    /// The step's name (defaults to the operator's); it is the reason code rows get.
    pub name: String,
    /// Folder of the pipeline file; relative paths in options resolve against it.
    pub base_dir: PathBuf,
}

impl StepCtx {
    /// The narrow-table column holding this step's reason detail.
    pub fn reason_col(&self) -> String {
        format!("_r{:02}", self.index)
    }

    /// A private narrow-table column of this step.
    pub fn col(&self, what: &str) -> String {
        format!("_s{:02}_{what}", self.index)
    }

    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

/// What the pipeline engine offers operators while they plan.
pub trait Env: Send + Sync {
    /// Parses a SQL expression over the canonical columns (DataFusion syntax).
    fn parse_expr(&self, sql: &str) -> Result<Expr, OpsError>;
    /// The canonical rows of another dataset, with `_row` ordinals of its own.
    fn reference(&self, paths: &[PathBuf]) -> Result<DataFrame, OpsError>;
}

/// A configured step.
pub trait Operator: Send + Sync + Debug {
    /// Expressions over the wide canonical row, each added to the narrow table under its name.
    /// Filters return their reason column here.
    fn row_columns(&self, ctx: &StepCtx, env: &dyn Env) -> Result<Vec<(String, Expr)>, OpsError>;

    /// Adds the reason column on the narrow table (group steps). `alive` is true for rows no
    /// earlier step dropped.
    fn decide(
        &self,
        df: DataFrame,
        _ctx: &StepCtx,
        _alive: Expr,
        _env: &dyn Env,
    ) -> Result<DataFrame, OpsError> {
        Ok(df)
    }

    /// Narrow-table columns that go to the outputs, as `(output name, narrow column)`.
    fn output_columns(&self, _ctx: &StepCtx) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The output layout, for the `write` step.
    fn write_options(&self) -> Option<&crate::operators::write::WriteOptions> {
        None
    }

    /// The tokenize settings, for the `tokenize` step.
    fn tokenize_options(&self) -> Option<&crate::operators::tokenize::TokenizeOptions> {
        None
    }

    /// The packing settings, for the `pack` step.
    fn pack_options(&self) -> Option<&crate::operators::pack::PackOptions> {
        None
    }
}

/// An operator type: its name, documentation, options and how to build it.
pub trait OperatorDef {
    const NAME: &'static str;
    const KIND: StepKind;
    /// One line for `--explain` and the docs.
    const SUMMARY: &'static str;
    /// A YAML step using the operator, for the docs (tested to parse).
    const EXAMPLE: &'static str;
    type Options: DeserializeOwned + Serialize + JsonSchema;
    fn build(options: Self::Options, ctx: &StepCtx) -> Result<Arc<dyn Operator>, OpsError>;
}

type BatchFn = dyn Fn(&[ArrayRef]) -> Result<ArrayRef, OpsError> + Send + Sync;

/// A scalar UDF that runs a Rust function over whole argument arrays.
///
/// Its name carries the step (`tf_no_execution_03`), which makes it unique in a plan, so
/// equality and hashing go by name.
pub struct BatchUdf {
    name: String,
    signature: Signature,
    returns: DataType,
    f: Arc<BatchFn>,
}

impl Debug for BatchUdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BatchUdf({})", self.name)
    }
}

impl PartialEq for BatchUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for BatchUdf {}

impl Hash for BatchUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl BatchUdf {
    /// A new UDF named `name` of `arity` arguments, computing `f` over the argument arrays.
    pub fn udf(
        name: String,
        returns: DataType,
        arity: usize,
        f: impl Fn(&[ArrayRef]) -> Result<ArrayRef, OpsError> + Send + Sync + 'static,
    ) -> ScalarUDF {
        ScalarUDF::from(BatchUdf {
            name,
            signature: Signature::any(arity, Volatility::Immutable),
            returns,
            f: Arc::new(f),
        })
    }

    /// A call of a new UDF named `name` on `args`, computing `f` over the argument arrays.
    pub fn call(
        name: String,
        returns: DataType,
        args: Vec<Expr>,
        f: impl Fn(&[ArrayRef]) -> Result<ArrayRef, OpsError> + Send + Sync + 'static,
    ) -> Expr {
        BatchUdf::udf(name, returns, args.len(), f).call(args)
    }
}

impl ScalarUDFImpl for BatchUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out = (self.f)(&arrays).map_err(|e| match e {
            OpsError::Plan(p) => p,
            other => {
                datafusion::error::DataFusionError::Execution(format!("{}: {other}", self.name))
            }
        })?;
        Ok(ColumnarValue::Array(out))
    }
}

/// A reason column of `n` rows from a per-row check (`None` = the row passes).
pub fn reasons(n: usize, mut check: impl FnMut(usize) -> Option<String>) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(n, 0);
    for i in 0..n {
        b.append_option(check(i));
    }
    Arc::new(b.finish())
}

/// A filter's reason column from a check over whole argument arrays.
pub fn batch_check(
    op: &str,
    ctx: &StepCtx,
    args: Vec<Expr>,
    check: impl Fn(&[ArrayRef]) -> Result<ArrayRef, OpsError> + Send + Sync + 'static,
) -> Vec<(String, Expr)> {
    let udf = BatchUdf::call(udf_name(op, ctx), DataType::Utf8, args, check);
    vec![(ctx.reason_col(), udf)]
}

/// A filter's reason column from a per-row check of the `messages` column.
pub fn message_check(
    op: &str,
    ctx: &StepCtx,
    check: impl Fn(&MessagesView, usize) -> Option<String> + Send + Sync + 'static,
) -> Vec<(String, Expr)> {
    batch_check(op, ctx, vec![col("messages")], move |args| {
        let view = MessagesView::try_new(&args[0])?;
        Ok(reasons(view.len(), |i| check(&view, i)))
    })
}

/// Adds `_ref` to the narrow table (false for its own rows) and, with reference paths, appends
/// the reference rows with `column` computed by `expr` over their canonical columns.
pub fn attach_reference(
    df: DataFrame,
    ctx: &StepCtx,
    env: &dyn Env,
    paths: &[String],
    column: String,
    expr: Expr,
) -> Result<DataFrame, OpsError> {
    if paths.is_empty() {
        return Ok(df.with_column("_ref", lit(false))?);
    }
    let paths: Vec<PathBuf> = paths.iter().map(|p| ctx.resolve(p)).collect();
    let mut provided = reference_basics();
    provided.push((column, expr));
    with_reference(df, env.reference(&paths)?, &provided)
}

/// `#[serde(default = "crate::operator::yes")]` for options that default to on.
pub fn yes() -> bool {
    true
}

/// A typed null literal (for reference rows that lack a column).
pub fn typed_null(dt: &DataType) -> Result<Expr, OpsError> {
    Ok(lit(ScalarValue::try_from(dt)?))
}

/// The UDF name for step `ctx` of operator `op`.
pub fn udf_name(op: &str, ctx: &StepCtx) -> String {
    format!("tf_{op}_{:02}", ctx.index)
}

/// Appends another dataset's rows to the narrow table for a reference comparison: the table
/// gains `_ref` (false for its own rows); reference rows get `_ref = true`, the expressions in
/// `provided` for the columns they name, and typed nulls elsewhere.
pub fn with_reference(
    df: DataFrame,
    reference: DataFrame,
    provided: &[(String, Expr)],
) -> Result<DataFrame, OpsError> {
    let df = df.with_column("_ref", lit(false))?;
    let mut exprs = Vec::new();
    for field in df.schema().fields() {
        let name = field.name();
        let expr = if name == "_ref" {
            lit(true)
        } else if let Some((_, e)) = provided.iter().find(|(n, _)| n == name) {
            e.clone()
        } else {
            typed_null(field.data_type())?
        };
        exprs.push(expr.alias(name));
    }
    let reference = reference.select(exprs)?;
    Ok(df.union(reference)?)
}

/// The narrow-table columns reference rows can provide from their own canonical columns.
pub fn reference_basics() -> Vec<(String, Expr)> {
    [
        "_row",
        "trajectory_id",
        "instance_id",
        "content_hash",
        "resolved",
    ]
    .into_iter()
    .map(|c| (c.to_string(), col(c)))
    .collect()
}
