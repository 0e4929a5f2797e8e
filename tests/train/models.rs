//! Model folders both ways: transformers loads what we write and scores it as we do; we load
//! what `save_pretrained` writes (tied and untied heads, one file or a sharded index).

use std::path::Path;

use candle_core::{DType, Device};
use trajforge_train::checkpoint::save_model;
use trajforge_train::data::PackedRow;
use trajforge_train::model::backward::{PassOptions, loss_only};
use trajforge_train::model::{ModelConfig, Params};
use trajforge_train::trainer::flatten;

use crate::common::{python, require_torch};
use crate::parity::{config, row};

fn our_loss(params: &Params, r: &PackedRow) -> f64 {
    let (tokens, targets) =
        flatten(std::slice::from_ref(r), &params.config, &Device::Cpu).expect("flatten");
    let opts = PassOptions {
        scale: 1.0,
        loss_chunk: 7,
        recompute: false,
        dtype: DType::F32,
    };
    loss_only(params, &tokens, &targets, &opts)
        .expect("loss")
        .sum
        / targets.len() as f64
}

fn row_json(dir: &Path, r: &PackedRow) -> std::path::PathBuf {
    let path = dir.join("row.json");
    let json = serde_json::json!({ "ids": r.ids, "positions": r.positions, "mask": r.mask, "seq_lens": r.seq_lens });
    std::fs::write(&path, json.to_string()).expect("write row");
    path
}

fn loss_from(printed: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(printed.trim()).expect("json");
    v["loss"].as_f64().expect("loss")
}

#[test]
#[ignore = "needs python3 with torch and transformers; CI runs it"]
fn transformers_loads_our_model_folders_and_agrees_on_the_loss() {
    require_torch();
    for tie in [false, true] {
        let tmp = tempfile::tempdir().expect("tmp");
        let params = Params::init(&config(tie), 9, &Device::Cpu).expect("init");
        let dir = tmp.path().join("model");
        save_model(&dir, &params, &Vec::new()).expect("save");
        let r = row();
        let theirs = loss_from(&python(
            "tests/parity/hf_models.py",
            &[Path::new("loss"), &dir, &row_json(tmp.path(), &r)],
        ));
        let ours = our_loss(&params, &r);
        assert!(
            ((ours - theirs) / theirs).abs() <= 1e-4,
            "tied {tie}: ours {ours}, transformers {theirs}"
        );
    }
}

#[test]
#[ignore = "needs python3 with torch and transformers; CI runs it"]
fn we_load_what_save_pretrained_writes() {
    require_torch();
    for (tie, shard) in [(false, false), (true, false), (false, true), (true, true)] {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("hf");
        let r = row();
        let flag = |b: bool| Path::new(if b { "1" } else { "0" });
        let printed = python(
            "tests/parity/hf_models.py",
            &[
                Path::new("save"),
                &dir,
                flag(tie),
                flag(shard),
                &row_json(tmp.path(), &r),
            ],
        );
        assert_eq!(
            dir.join("model.safetensors.index.json").is_file(),
            shard,
            "sharding as asked"
        );
        let config = ModelConfig::from_dir(&dir).expect("config.json");
        assert_eq!(config.tie_word_embeddings, tie);
        let params = Params::load(&dir, &config, &Device::Cpu).expect("load");
        let ours = our_loss(&params, &r);
        let theirs = loss_from(&printed);
        assert!(
            ((ours - theirs) / theirs).abs() <= 1e-4,
            "tie {tie} shard {shard}: ours {ours}, transformers {theirs}"
        );
    }
}
