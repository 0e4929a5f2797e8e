//! Keep policies: which row of a group survives (dedupe clusters, per-instance caps).

use datafusion::logical_expr::SortExpr;
use datafusion::prelude::{Expr, col};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::OpsError;
use crate::operator::Env;

/// Which row a group keeps when `order_by` is not given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// The first row in input order.
    #[default]
    First,
    /// Resolved rows first, then fewest assistant turns, then fewest bytes, then input order.
    Best,
}

const BEST: [&str; 3] = [
    "resolved DESC NULLS LAST",
    "num_assistant_turns ASC",
    "content_bytes ASC",
];

/// Parses `expr [ASC|DESC] [NULLS FIRST|LAST]`.
fn sort_item(item: &str, env: &dyn Env) -> Result<SortExpr, OpsError> {
    let mut words: Vec<&str> = item.split_whitespace().collect();
    let upper = |w: &str| w.to_ascii_uppercase();
    let mut nulls_first = None;
    if words.len() >= 2 && upper(words[words.len() - 2]) == "NULLS" {
        nulls_first = Some(upper(words[words.len() - 1]) == "FIRST");
        words.truncate(words.len() - 2);
    }
    let mut asc = true;
    if let Some(last) = words.last().map(|w| upper(w))
        && (last == "ASC" || last == "DESC")
    {
        asc = last == "ASC";
        words.pop();
    }
    if words.is_empty() {
        return Err(OpsError::Config(format!(
            "order_by item {item:?} has no expression"
        )));
    }
    let expr: Expr = env.parse_expr(&words.join(" "))?;
    Ok(expr.sort(asc, nulls_first.unwrap_or(!asc)))
}

/// The full keep order: reference rows first (when `reference`), the policy, then `_row`,
/// which makes the order total and so the choice deterministic.
pub fn keep_order(
    keep: Keep,
    order_by: &[String],
    reference: bool,
    env: &dyn Env,
) -> Result<Vec<SortExpr>, OpsError> {
    let mut out = Vec::new();
    if reference {
        out.push(col("_ref").sort(false, false));
    }
    let items: Vec<String> = if !order_by.is_empty() {
        order_by.to_vec()
    } else if keep == Keep::Best {
        BEST.iter().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    };
    for item in &items {
        out.push(sort_item(item, env)?);
    }
    out.push(col("_row").sort(true, false));
    Ok(out)
}

/// Names of the columns [`rank_groups`] adds.
#[derive(Debug, Clone)]
pub struct RankCols {
    /// 1-based position of the row in its group's keep order.
    pub rank: String,
    /// `trajectory_id` of the group's first row.
    pub first: String,
    /// Whether the group's first row is a reference row (only with a reference).
    pub first_is_ref: Option<String>,
}

impl RankCols {
    /// The step's own names (`_sNN_rank`, `_sNN_first`, and `_sNN_first_ref` with a reference).
    pub fn for_step(ctx: &crate::StepCtx, with_reference: bool) -> RankCols {
        RankCols {
            rank: ctx.col("rank"),
            first: ctx.col("first"),
            first_is_ref: with_reference.then(|| ctx.col("first_ref")),
        }
    }

    /// All the names, to drop once the step has decided.
    pub fn names(&self) -> Vec<&str> {
        let mut names = vec![self.rank.as_str(), self.first.as_str()];
        names.extend(self.first_is_ref.as_deref());
        names
    }
}

/// Ranks the rows of each group (`alive` rows only take part together; dropped rows form
/// groups of their own that the caller ignores) with window functions.
pub fn rank_groups(
    df: datafusion::dataframe::DataFrame,
    alive: Expr,
    key: Expr,
    order: Vec<SortExpr>,
    cols: &RankCols,
) -> Result<datafusion::dataframe::DataFrame, OpsError> {
    use datafusion::functions_window::expr_fn::{first_value, row_number};
    use datafusion::logical_expr::ExprFunctionExt;
    let partition = vec![alive, key];
    let mut exprs = vec![
        row_number()
            .partition_by(partition.clone())
            .order_by(order.clone())
            .build()?
            .alias(&cols.rank),
        first_value(col("trajectory_id"))
            .partition_by(partition.clone())
            .order_by(order.clone())
            .build()?
            .alias(&cols.first),
    ];
    if let Some(first_ref) = &cols.first_is_ref {
        exprs.push(
            first_value(col("_ref"))
                .partition_by(partition)
                .order_by(order)
                .build()?
                .alias(first_ref),
        );
    }
    Ok(df.window(exprs)?)
}
