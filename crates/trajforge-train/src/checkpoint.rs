//! Model folders and resumable checkpoints, written atomically.
//!
//! A model folder is what `transformers` loads: `config.json`, `model.safetensors` (fp32) and
//! the tokenizer files of the tokenizer the shards were made with. A checkpoint is a model
//! folder plus `trainer_state/` (the position in the run, the optimizer moments, the metrics so
//! far). Every folder is written under a temporary name and renamed into place, so a crash
//! never leaves a half folder under a name `--resume` would pick.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::model::Params;
use crate::optim::AdamW;

/// Files to put beside the weights (tokenizer files), by name.
pub type ExtraFiles = Vec<(String, Vec<u8>)>;

/// Where a run stands: enough to continue it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Optimizer steps taken in the whole run.
    pub global_step: u64,
    /// Index of the stage being trained (== number of stages when done).
    pub stage: usize,
    /// Epoch within the stage.
    pub epoch: u32,
    /// Next row of the epoch's shuffled order.
    pub next_row: usize,
    /// Optimizer steps taken in the stage (the schedule's step).
    pub stage_step: u64,
    /// The config hash the run was started with; `--resume` refuses another config.
    pub config_hash: String,
    pub seed: u64,
    /// Lines of `metrics.jsonl` at this point.
    pub metrics_lines: u64,
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| TrainError::io(path, e))
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| TrainError::io(path, e))
}

/// Writes a model folder's files into `dir` (which must exist).
fn write_model_files(dir: &Path, params: &Params, extra: &ExtraFiles) -> Result<()> {
    let config = serde_json::to_vec_pretty(&params.config.to_hf_json())
        .map_err(|e| TrainError::Internal(e.to_string()))?;
    write(&dir.join("config.json"), &config)?;
    params.save_safetensors(&dir.join("model.safetensors"))?;
    for (name, bytes) in extra {
        write(&dir.join(name), bytes)?;
    }
    Ok(())
}

/// Builds a folder under a temporary name beside `dest` with `fill`, then renames it to `dest`
/// (replacing an older one).
pub fn atomic_dir(dest: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    create_dir(parent)?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    create_dir(&tmp)?;
    fill(&tmp)?;
    if dest.exists() {
        let old = parent.join(format!(".{name}.old"));
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
        }
        std::fs::rename(dest, &old).map_err(|e| TrainError::io(dest, e))?;
        std::fs::rename(&tmp, dest).map_err(|e| TrainError::io(dest, e))?;
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    } else {
        std::fs::rename(&tmp, dest).map_err(|e| TrainError::io(dest, e))?;
    }
    Ok(())
}

/// Writes a complete model folder at `dest`.
pub fn save_model(dest: &Path, params: &Params, extra: &ExtraFiles) -> Result<()> {
    atomic_dir(dest, |tmp| write_model_files(tmp, params, extra))
}

/// `checkpoints/step-NNNNNNN`.
pub fn checkpoint_dir(out: &Path, step: u64) -> PathBuf {
    out.join("checkpoints").join(format!("step-{step:07}"))
}

/// Writes a resumable checkpoint.
pub fn save_checkpoint(
    out: &Path,
    params: &Params,
    opt: &AdamW,
    state: &RunState,
    metrics: &[u8],
    extra: &ExtraFiles,
) -> Result<PathBuf> {
    let dest = checkpoint_dir(out, state.global_step);
    atomic_dir(&dest, |tmp| {
        write_model_files(tmp, params, extra)?;
        let ts = tmp.join("trainer_state");
        create_dir(&ts)?;
        save_moments(&ts.join("optimizer.safetensors"), params, opt)?;
        let opt_json = serde_json::json!({ "step": opt.step, "config": opt.config });
        write(&ts.join("optimizer.json"), opt_json.to_string().as_bytes())?;
        write(&ts.join("metrics.jsonl"), metrics)?;
        let state_json =
            serde_json::to_vec_pretty(state).map_err(|e| TrainError::Internal(e.to_string()))?;
        write(&ts.join("state.json"), &state_json)
    })?;
    Ok(dest)
}

fn save_moments(path: &Path, params: &Params, opt: &AdamW) -> Result<()> {
    let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
    for ((p, m), v) in params.list.iter().zip(&opt.m).zip(&opt.v) {
        tensors.insert(format!("exp_avg.{}", p.name), m.to_dtype(DType::F32)?);
        tensors.insert(format!("exp_avg_sq.{}", p.name), v.to_dtype(DType::F32)?);
    }
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&map, path)
        .map_err(|e| TrainError::Internal(format!("{}: {e}", path.display())))
}

/// The newest complete checkpoint under `out/checkpoints`, if any.
pub fn latest_checkpoint(out: &Path) -> Result<Option<PathBuf>> {
    let dir = out.join("checkpoints");
    if !dir.is_dir() {
        return Ok(None);
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| TrainError::io(&dir, e))?;
    let mut best: Option<(u64, PathBuf)> = None;
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if e.path().join("trainer_state/state.json").is_file()
            && best.as_ref().is_none_or(|(b, _)| step > *b)
        {
            best = Some((step, e.path()));
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// Step checkpoints, oldest first.
pub fn list_checkpoints(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.join("checkpoints"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("step-"))
    });
    v.sort();
    v
}

/// A checkpoint read back.
#[derive(Debug)]
pub struct Loaded {
    pub params: Params,
    pub opt: AdamW,
    pub state: RunState,
    pub metrics: Vec<u8>,
}

/// Reads a checkpoint written by [`save_checkpoint`].
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<Loaded> {
    let config = crate::model::ModelConfig::from_dir(dir)?;
    let params = Params::load(dir, &config, device)?;
    let ts = dir.join("trainer_state");
    let read = |name: &str| -> Result<Vec<u8>> {
        let p = ts.join(name);
        std::fs::read(&p).map_err(|e| TrainError::io(&p, e))
    };
    let state: RunState = serde_json::from_slice(&read("state.json")?)
        .map_err(|e| TrainError::data(ts.join("state.json"), e))?;
    let opt_json: serde_json::Value = serde_json::from_slice(&read("optimizer.json")?)
        .map_err(|e| TrainError::data(ts.join("optimizer.json"), e))?;
    let config_value = opt_json.get("config").cloned().unwrap_or_default();
    let opt_config = serde_json::from_value(config_value)
        .map_err(|e| TrainError::data(ts.join("optimizer.json"), e))?;
    let mut opt = AdamW::new(opt_config, &params)?;
    opt.step = opt_json.get("step").and_then(|s| s.as_u64()).unwrap_or(0);
    let path = ts.join("optimizer.safetensors");
    let mut moments =
        candle_core::safetensors::load(&path, device).map_err(|e| TrainError::data(&path, e))?;
    for (i, p) in params.list.iter().enumerate() {
        let mut take = |kind: &str| {
            moments
                .remove(&format!("{kind}.{}", p.name))
                .ok_or_else(|| TrainError::data(&path, format!("no {kind} for `{}`", p.name)))
        };
        let (m, v) = (take("exp_avg")?, take("exp_avg_sq")?);
        if let (Some(ms), Some(vs)) = (opt.m.get_mut(i), opt.v.get_mut(i)) {
            *ms = m;
            *vs = v;
        }
    }
    Ok(Loaded {
        params,
        opt,
        state,
        metrics: read("metrics.jsonl")?,
    })
}

/// The files of a Hugging Face tokenizer folder a model folder should carry.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
];

/// Reads the tokenizer files present in `dir` (a `tokenizer.json.zst` is unpacked); at least
/// `tokenizer.json` must be there.
pub fn tokenizer_files_from_dir(dir: &Path) -> Result<ExtraFiles> {
    let mut out = Vec::new();
    for name in TOKENIZER_FILES {
        let p = dir.join(name);
        if p.is_file() {
            out.push((
                name.to_string(),
                std::fs::read(&p).map_err(|e| TrainError::io(&p, e))?,
            ));
        }
    }
    let packed = dir.join("tokenizer.json.zst");
    if !out.iter().any(|(n, _)| n == "tokenizer.json") && packed.is_file() {
        let bytes = std::fs::read(&packed).map_err(|e| TrainError::io(&packed, e))?;
        let json = zstd::decode_all(bytes.as_slice()).map_err(|e| TrainError::data(&packed, e))?;
        out.push(("tokenizer.json".into(), json));
    }
    if !out.iter().any(|(n, _)| n == "tokenizer.json") {
        return Err(TrainError::Config(format!(
            "{}: no tokenizer.json (a Hugging Face tokenizer folder is expected)",
            dir.display()
        )));
    }
    Ok(out)
}
