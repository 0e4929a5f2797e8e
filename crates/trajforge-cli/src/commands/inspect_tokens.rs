//! `trajforge inspect` on tokenized or packed files: a row decoded document by document, the
//! supervised spans (loss_mask = 1) highlighted — green on a terminal, between ⟦ and ⟧
//! otherwise — with token and supervised counts.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, UInt8Type};
use arrow::record_batch::RecordBatch;
use console::style;
use trajforge_tokenize::model::Model;

/// Whether `batch` has the token layouts' columns.
pub fn is_token_layout(batch: &RecordBatch) -> bool {
    batch.column_by_name("input_ids").is_some() && batch.column_by_name("loss_mask").is_some()
}

fn list_i32(b: &RecordBatch, name: &str) -> Option<Vec<i32>> {
    let l = b.column_by_name(name)?.as_list_opt::<i32>()?;
    Some(
        l.value(0)
            .as_primitive_opt::<Int32Type>()?
            .values()
            .to_vec(),
    )
}

fn ids_of(b: &RecordBatch) -> Vec<String> {
    if let Some(l) = b
        .column_by_name("trajectory_ids")
        .and_then(|c| c.as_list_opt::<i32>())
    {
        let v = l.value(0);
        let s = v.as_string::<i32>();
        return (0..s.len()).map(|i| s.value(i).to_string()).collect();
    }
    b.column_by_name("trajectory_id")
        .and_then(|c| c.as_string_opt::<i32>().map(|s| s.value(0).to_string()))
        .into_iter()
        .collect()
}

/// Prints row 0 of `b` decoded with `tokenizer` (default: the bundled Qwen2.5-Coder).
pub fn print_token_row(
    out: &mut dyn Write,
    b: &RecordBatch,
    tokenizer: Option<&Path>,
    max_chars: usize,
) -> Result<()> {
    let model = Model::load(tokenizer).context("cannot load the tokenizer to decode the row")?;
    let ids = list_i32(b, "input_ids").context("input_ids is not a list of int32")?;
    let mask_col = b
        .column_by_name("loss_mask")
        .and_then(|c| c.as_list_opt::<i32>())
        .context("loss_mask is not a list")?;
    let mask_values = mask_col.value(0);
    let mask = mask_values
        .as_primitive_opt::<UInt8Type>()
        .context("loss_mask is not a list of uint8")?
        .values()
        .to_vec();
    let bounds = list_i32(b, "cu_seqlens").unwrap_or_else(|| vec![0, ids.len() as i32]);
    let docs = ids_of(b);
    let supervised = mask.iter().filter(|&&m| m == 1).count();
    writeln!(
        out,
        "{} tokens, {} supervised ({:.1}%), {} document(s); supervised text {}",
        ids.len(),
        supervised,
        100.0 * supervised as f64 / ids.len().max(1) as f64,
        docs.len(),
        if console::colors_enabled() {
            "in green".to_string()
        } else {
            "between ⟦ and ⟧".to_string()
        }
    )?;
    for (d, w) in bounds.windows(2).enumerate() {
        let (a, z) = (w[0].max(0) as usize, (w[1].max(0) as usize).min(ids.len()));
        let name = docs.get(d).map_or("-", String::as_str);
        writeln!(
            out,
            "\n{} {d}: {name} ({} tokens)",
            style("document").bold(),
            z.saturating_sub(a)
        )?;
        print_runs(out, &model, &ids[a..z], &mask[a..z], max_chars)?;
    }
    writeln!(out)?;
    Ok(())
}

/// Decodes maximal runs of equal mask bits; `max_chars` (0 = all) bounds each run's text.
fn print_runs(
    out: &mut dyn Write,
    model: &Model,
    ids: &[i32],
    mask: &[u8],
    max_chars: usize,
) -> Result<()> {
    let mut k = 0;
    while k < ids.len() {
        let start = k;
        while k < ids.len() && mask[k] == mask[start] {
            k += 1;
        }
        let tokens: Vec<u32> = ids[start..k].iter().map(|&t| t.max(0) as u32).collect();
        let text = super::inspect::clip(&model.decode(&tokens)?, max_chars);
        if mask[start] == 1 {
            if console::colors_enabled() {
                write!(out, "{}", style(text).green())?;
            } else {
                write!(out, "⟦{text}⟧")?;
            }
        } else {
            write!(out, "{}", style(text).dim())?;
        }
    }
    Ok(())
}
