//! `trajforge eval`: the training loss of a model folder on packed shards, per row and in
//! total — a folder we wrote or one `transformers` wrote.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::{self, Limits};
use crate::error::Result;
use crate::model::backward::{PassOptions, loss_only};
use crate::model::{ModelConfig, Params};
use crate::trainer::{device, flatten};

/// The loss of one packed row.
#[derive(Debug, Clone, Serialize)]
pub struct RowLoss {
    pub shard: PathBuf,
    pub row: usize,
    /// Mean cross-entropy over the row's supervised tokens (0 when it has none).
    pub loss: f64,
    pub supervised_tokens: u64,
    pub tokens: u64,
}

/// Every row's loss and the total (mean over all supervised tokens).
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub rows: Vec<RowLoss>,
    pub loss: f64,
    pub supervised_tokens: u64,
    pub tokens: u64,
}

/// Scores the model in `model_dir` on the shards `data` names (run folders, folders, globs).
pub fn evaluate(
    model_dir: &Path,
    data_specs: &[String],
    max_tokens: usize,
    loss_chunk: usize,
) -> Result<EvalReport> {
    let (dev, dtype) = device()?;
    let config = ModelConfig::from_dir(model_dir)?;
    let params = Params::load(model_dir, &config, &dev)?;
    let mut files = Vec::new();
    for d in data_specs {
        files.extend(data::resolve(d, Path::new("."))?);
    }
    let set = data::check(
        &files,
        Limits {
            vocab_size: config.vocab_size,
            max_tokens,
        },
    )?;
    let opts = PassOptions {
        scale: 1.0,
        loss_chunk,
        recompute: false,
        dtype,
    };
    let mut report = EvalReport {
        rows: Vec::new(),
        loss: 0.0,
        supervised_tokens: 0,
        tokens: 0,
    };
    let mut sum = 0f64;
    let mut row_in_shard = vec![0usize; set.files.len()];
    for r in &set.rows {
        let row = set.read(r)?;
        let (tokens, targets) = flatten(std::slice::from_ref(&row), &config, &dev)?;
        let out = loss_only(&params, &tokens, &targets, &opts)?;
        let n = targets.len() as u64;
        let index = row_in_shard.get(r.shard).copied().unwrap_or_default();
        if let Some(slot) = row_in_shard.get_mut(r.shard) {
            *slot += 1;
        }
        report.rows.push(RowLoss {
            shard: set
                .files
                .get(r.shard)
                .map(|f| f.path.clone())
                .unwrap_or_default(),
            row: index,
            loss: if n == 0 { 0.0 } else { out.sum / n as f64 },
            supervised_tokens: n,
            tokens: row.ids.len() as u64,
        });
        sum += out.sum;
        report.supervised_tokens += n;
        report.tokens += row.ids.len() as u64;
    }
    report.loss = if report.supervised_tokens == 0 {
        0.0
    } else {
        sum / report.supervised_tokens as f64
    };
    Ok(report)
}
