//! `tokenize(messages, tools, scaffold)`: the sample step as a DataFusion scalar UDF, so that
//! DataFusion scans the trajectories and evaluates it like any other expression (the pipeline's
//! tokenize stage, `trajforge tokenize`, and SQL sessions use this same function).
//!
//! It returns one struct per row: `reason` and `detail` (null when the row is a sample;
//! otherwise `too_long`, `no_supervised_tokens` or `invalid_row` and why), then the tokenized
//! columns (`input_ids`, `loss_mask`, `num_tokens`, `num_supervised`, `dropped_exchanges`),
//! null for dropped rows. Rows of a batch are tokenized in parallel on the rayon pool, each
//! worker with its own segment cache, and the results keep the batch's row order.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringBuilder, StructArray, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Fields, Int32Type, Schema, UInt8Type, UInt32Type};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use rayon::prelude::*;
use serde::Deserialize;
use trajforge_schema::Message;

use crate::TokenizeError;
use crate::job::{REJECTED, ToolCatalogue};
use crate::model::{Model, SegmentCache};
use crate::sample::{Outcome, Sample, SampleOptions, tokenize};
use crate::shard::{ids_builder, list_of, mask_builder};

/// The function's name in SQL.
pub const NAME: &str = "tokenize";

/// The columns the function reads, in argument order.
pub const ARGUMENTS: [&str; 3] = ["messages", "tools", "scaffold"];

/// The struct the function returns.
pub fn output_fields() -> Fields {
    Fields::from(vec![
        Field::new("reason", DataType::Utf8, true),
        Field::new("detail", DataType::Utf8, true),
        Field::new("input_ids", list_of(DataType::Int32), true),
        Field::new("loss_mask", list_of(DataType::UInt8), true),
        Field::new("num_tokens", DataType::UInt32, true),
        Field::new("num_supervised", DataType::UInt32, true),
        Field::new("dropped_exchanges", DataType::UInt32, true),
    ])
}

/// What the function needs: the model, the tool catalogues, the sample options, and one
/// segment cache per rayon worker (their hit counts are read back after a run).
#[derive(Debug)]
pub struct TokenizeFn {
    model: Arc<Model>,
    tools: Arc<ToolCatalogue>,
    options: SampleOptions,
    caches: Vec<Mutex<SegmentCache>>,
}

impl TokenizeFn {
    pub fn new(
        model: Arc<Model>,
        tools: Arc<ToolCatalogue>,
        options: SampleOptions,
        cache_bytes: usize,
    ) -> Arc<TokenizeFn> {
        let caches = (0..rayon::current_num_threads().max(1))
            .map(|_| Mutex::new(SegmentCache::new(cache_bytes)))
            .collect();
        Arc::new(TokenizeFn {
            model,
            tools,
            options,
            caches,
        })
    }

    /// The scalar UDF evaluating this function.
    pub fn udf(self: &Arc<Self>) -> ScalarUDF {
        ScalarUDF::new_from_impl(TokenizeUdf {
            f: Arc::clone(self),
            signature: Signature::any(ARGUMENTS.len(), Volatility::Immutable),
        })
    }

    /// Cache hits and lookups so far, over all workers.
    pub fn cache_stats(&self) -> (u64, u64) {
        self.caches.iter().fold((0, 0), |(h, l), c| {
            let c = c.lock().unwrap_or_else(|p| p.into_inner());
            (h + c.hits, l + c.hits + c.misses)
        })
    }

    /// The outcome of every row of a batch, in order.
    pub fn evaluate(&self, args: &[ArrayRef]) -> Result<StructArray, TokenizeError> {
        let rows = udf_rows(args)?;
        let outcomes: Vec<Result<Outcome, TokenizeError>> = rows
            .par_iter()
            .map(|row| {
                let slot = rayon::current_thread_index().unwrap_or(0) % self.caches.len();
                let mut cache = self.caches[slot].lock().unwrap_or_else(|p| p.into_inner());
                self.tools
                    .tools_for(row.tools.as_deref(), row.scaffold.as_deref())
                    .and_then(|t| {
                        tokenize(
                            &self.model,
                            &row.messages,
                            t.as_deref(),
                            &self.options,
                            &mut cache,
                        )
                    })
            })
            .collect();
        outcomes_array(&outcomes)
    }
}

/// The columns of one row the function reads.
#[derive(Debug, Deserialize)]
struct UdfRow {
    messages: Vec<Message>,
    tools: Option<String>,
    scaffold: Option<String>,
}

fn udf_rows(args: &[ArrayRef]) -> Result<Vec<UdfRow>, TokenizeError> {
    if args.len() != ARGUMENTS.len() {
        return Err(TokenizeError::Config(format!(
            "{NAME}() takes {} arguments ({}), not {}",
            ARGUMENTS.len(),
            ARGUMENTS.join(", "),
            args.len()
        )));
    }
    let fields: Vec<Field> = ARGUMENTS
        .iter()
        .zip(args)
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), args.to_vec())
        .map_err(|e| TokenizeError::Internal(e.to_string()))?;
    serde_arrow::from_record_batch(&batch).map_err(|e| {
        TokenizeError::Data(format!(
            "{NAME}(): arguments are not (messages, tools, scaffold) of the canonical schema: {e}"
        ))
    })
}

fn outcomes_array(
    outcomes: &[Result<Outcome, TokenizeError>],
) -> Result<StructArray, TokenizeError> {
    let (mut reason, mut detail) = (StringBuilder::new(), StringBuilder::new());
    let (mut ids, mut mask) = (ids_builder(), mask_builder());
    let (mut tokens, mut supervised, mut dropped) = (
        UInt32Builder::new(),
        UInt32Builder::new(),
        UInt32Builder::new(),
    );
    for outcome in outcomes {
        let sample = match outcome {
            Ok(Outcome::Kept(s)) => Some(s),
            Ok(Outcome::Filtered(r, d)) => {
                reason.append_value(r);
                detail.append_value(d);
                None
            }
            Err(e) => {
                reason.append_value(REJECTED);
                detail.append_value(e.to_string());
                None
            }
        };
        match sample {
            Some(s) => {
                reason.append_null();
                detail.append_null();
                ids.values()
                    .extend(s.input_ids.iter().map(|&t| Some(t as i32)));
                ids.append(true);
                mask.values().append_slice(&s.loss_mask);
                mask.append(true);
                tokens.append_value(s.total_tokens());
                supervised.append_value(s.supervised_tokens);
                dropped.append_value(s.dropped_exchanges);
            }
            None => {
                ids.append_null();
                mask.append_null();
                tokens.append_null();
                supervised.append_null();
                dropped.append_null();
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(reason.finish()),
        Arc::new(detail.finish()),
        Arc::new(ids.finish()),
        Arc::new(mask.finish()),
        Arc::new(tokens.finish()),
        Arc::new(supervised.finish()),
        Arc::new(dropped.finish()),
    ];
    StructArray::try_new(output_fields(), columns, None)
        .map_err(|e| TokenizeError::Internal(e.to_string()))
}

/// Row `i` of a [`TokenizeFn::evaluate`] result: the sample, or why the row was dropped.
pub fn outcome_at(out: &StructArray, i: usize) -> Result<Sample, (String, String)> {
    let text = |k: usize| out.column(k).as_string::<i32>();
    if text(0).is_valid(i) {
        return Err((text(0).value(i).to_string(), text(1).value(i).to_string()));
    }
    let ids = out.column(2).as_list::<i32>().value(i);
    let mask = out.column(3).as_list::<i32>().value(i);
    let u32_at = |k: usize| out.column(k).as_primitive::<UInt32Type>().value(i);
    Ok(Sample {
        input_ids: ids
            .as_primitive::<Int32Type>()
            .values()
            .iter()
            .map(|&t| t as u32)
            .collect(),
        loss_mask: mask.as_primitive::<UInt8Type>().values().to_vec(),
        supervised_tokens: u32_at(5),
        dropped_exchanges: u32_at(6),
    })
}

/// The DataFusion face of a [`TokenizeFn`]; two are equal when they share the function.
#[derive(Debug)]
struct TokenizeUdf {
    f: Arc<TokenizeFn>,
    signature: Signature,
}

impl PartialEq for TokenizeUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.f, &other.f)
    }
}

impl Eq for TokenizeUdf {}

impl Hash for TokenizeUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        NAME.hash(state);
    }
}

impl ScalarUDFImpl for TokenizeUdf {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Struct(output_fields()))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out = self
            .f
            .evaluate(&arrays)
            .map_err(|e| DataFusionError::Execution(format!("{NAME}(): {e}")))?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use datafusion::prelude::SessionContext;
    use trajforge_schema::{ToolCall, Trajectory, batch};

    use crate::model::SegmentCache;

    fn row(id: &str, arguments: &str, result_lines: usize) -> Trajectory {
        let mut t = Trajectory::empty();
        t.trajectory_id = id.into();
        t.scaffold = Some("openhands".into());
        let mut call = Message::text("assistant", "Let me look.");
        call.tool_calls = vec![ToolCall {
            id: Some("c1".into()),
            name: "execute_bash".into(),
            arguments: arguments.into(),
        }];
        let mut result = Message::text("tool", &"x = 1\n".repeat(result_lines));
        result.tool_call_id = Some("c1".into());
        t.messages = vec![
            Message::text("system", "You are a coder."),
            Message::text("user", "Fix parse()."),
            call,
            result,
            Message::text("assistant", "Done."),
        ];
        t
    }

    /// `tokenize()` called from SQL gives, row for row, what `sample::tokenize` gives: the
    /// same ids and mask for samples, the same reasons for dropped rows.
    #[test]
    fn sql_calls_match_direct_tokenization() {
        let rows = vec![
            row("a-ok", r#"{"command": "ls"}"#, 3),
            row("b-bad-json", "{not json", 3),
            row("c-too-long", r#"{"command": "cat big.py"}"#, 2000),
            row("d-ok", r#"{"command": "pytest -q"}"#, 40),
        ];
        let options = SampleOptions {
            max_tokens: Some(2048),
            ..SampleOptions::default()
        };
        let model = Arc::new(Model::qwen2_5_coder().expect("model"));
        let tools = Arc::new(ToolCatalogue::bundled().expect("tools"));
        let f = TokenizeFn::new(model.clone(), tools.clone(), options.clone(), 1 << 20);
        let ctx = SessionContext::new();
        ctx.register_udf(f.udf());
        ctx.register_batch("t", batch::to_record_batch(&rows).expect("batch"))
            .expect("register");
        let sql = "SELECT trajectory_id, r['reason'] AS reason, r['input_ids'] AS ids, \
                   r['loss_mask'] AS mask, CAST(r['num_tokens'] AS BIGINT) AS n \
                   FROM (SELECT trajectory_id, tokenize(messages, tools, scaffold) AS r FROM t) \
                   ORDER BY trajectory_id";
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let out = rt
            .block_on(async { ctx.sql(sql).await?.collect().await })
            .expect("query runs");
        let out = arrow::compute::concat_batches(&out[0].schema(), &out).expect("concat");
        let reasons = out.column(1).as_string::<i32>();
        let ids = out.column(2).as_list::<i32>();
        let masks = out.column(3).as_list::<i32>();
        let counts = out
            .column(4)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("i64");
        let mut cache = SegmentCache::new(0);
        for (i, t) in rows.iter().enumerate() {
            let tools_for = tools.tools_for(None, Some("openhands")).expect("tools");
            match tokenize(
                &model,
                &t.messages,
                tools_for.as_deref(),
                &options,
                &mut cache,
            ) {
                Ok(Outcome::Kept(s)) => {
                    assert!(reasons.is_null(i), "{}", t.trajectory_id);
                    let got: Vec<u32> = ids
                        .value(i)
                        .as_primitive::<Int32Type>()
                        .values()
                        .iter()
                        .map(|&x| x as u32)
                        .collect();
                    assert_eq!(got, s.input_ids);
                    assert_eq!(
                        masks.value(i).as_primitive::<UInt8Type>().values().to_vec(),
                        s.loss_mask
                    );
                    assert_eq!(counts.value(i), i64::from(s.total_tokens()));
                }
                Ok(Outcome::Filtered(reason, _)) => assert_eq!(reasons.value(i), reason),
                Err(_) => assert_eq!(reasons.value(i), REJECTED),
            }
        }
        let got: Vec<Option<&str>> = reasons.iter().collect();
        assert_eq!(got, [None, Some(REJECTED), Some("too_long"), None]);
    }
}
