//! The report of a training folder (`trajforge train`'s output): loss and learning-rate
//! curves over the optimizer steps from `metrics.jsonl`, the eval loss where it was measured,
//! and a table per stage.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::ReportError;

/// One stage's curves.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageCurves {
    pub name: String,
    /// (step, loss) of every optimizer step.
    pub loss: Vec<(u64, f64)>,
    pub lr: Vec<(u64, f64)>,
    pub eval_loss: Vec<(u64, f64)>,
    pub tokens: u64,
    pub supervised_tokens: u64,
}

/// Everything `metrics.jsonl` says.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrainingCurves {
    pub path: PathBuf,
    pub stages: Vec<StageCurves>,
}

/// Whether `dir` is a training folder (it has `metrics.jsonl`).
pub fn is_training_dir(dir: &Path) -> bool {
    dir.join("metrics.jsonl").is_file()
}

impl TrainingCurves {
    /// Reads `DIR/metrics.jsonl`; a line that is not a metrics object is an error naming it.
    pub fn read(dir: &Path) -> Result<TrainingCurves, ReportError> {
        let path = dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&path).map_err(|e| ReportError::io(&path, e))?;
        let mut curves = TrainingCurves {
            path: path.clone(),
            stages: Vec::new(),
        };
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| ReportError::data(&path, format!("line {}: {e}", i + 1)))?;
            let num = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
            let (Some(step), Some(loss), Some(lr)) = (
                v.get("step").and_then(serde_json::Value::as_u64),
                num("loss"),
                num("lr"),
            ) else {
                return Err(ReportError::data(
                    &path,
                    format!("line {}: needs step, loss and lr", i + 1),
                ));
            };
            let stage = v
                .get("stage")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_string();
            if curves.stages.last().is_none_or(|s| s.name != stage) {
                curves.stages.push(StageCurves {
                    name: stage,
                    ..StageCurves::default()
                });
            }
            if let Some(s) = curves.stages.last_mut() {
                s.loss.push((step, loss));
                s.lr.push((step, lr));
                if let Some(e) = num("eval_loss") {
                    s.eval_loss.push((step, e));
                }
                s.tokens += num("tokens").unwrap_or(0.0) as u64;
                s.supervised_tokens += num("supervised_tokens").unwrap_or(0.0) as u64;
            }
        }
        if curves.stages.is_empty() {
            return Err(ReportError::data(&path, "has no steps yet"));
        }
        Ok(curves)
    }
}
