//! `trajforge train` and `trajforge eval` through the binary on the quickstart shards: the
//! README's main job trains and its loss falls, `--resume` after `kill -9` reproduces an
//! uninterrupted two-stage run exactly (on small synthetic shards), `--explain` sizes the run,
//! bad configs name the key, `eval` agrees with training's eval loss.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{quickstart_run, root, trajforge};

fn train_config() -> String {
    root()
        .join("pipelines/train-quickstart.yaml")
        .display()
        .to_string()
}

/// `--set` pointing the preset at a quickstart run made in the test's folder.
fn data_set(run: &Path) -> String {
    format!("stages.zero.data=[{}]", run.display())
}

/// The values of `key` in `metrics.jsonl`, in order, from the lines that carry a number there.
fn metric(out: &Path, key: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .filter_map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).expect("metrics line");
            line[key].as_f64()
        })
        .collect()
}

fn losses(out: &Path) -> Vec<f64> {
    metric(out, "loss")
}

fn train(run: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let (cfg, set) = (train_config(), data_set(run));
    let mut args = vec![
        "train",
        cfg.as_str(),
        "--set",
        set.as_str(),
        "--out",
        out.to_str().expect("utf8"),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    trajforge(&args)
}

#[test]
fn main_job_trains_the_tiny_preset_and_the_loss_falls() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = quickstart_run(tmp.path());
    let whole = tmp.path().join("whole");
    let o = train(&run, &whole, &["--threads", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let l = losses(&whole);
    assert_eq!(l.len(), 2, "max_steps: 2");
    assert!(l[1] < l[0] - 0.2, "loss did not fall: {l:?}");

    // Complete model folders with the shards' tokenizer, and the manifest.
    for dir in ["final", "stages/zero", "checkpoints/step-0000002"] {
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ] {
            assert!(whole.join(dir).join(f).is_file(), "{dir}/{f} missing");
        }
    }
    assert!(
        !whole.join("checkpoints/step-0000001").exists(),
        "keep_checkpoints: 1 keeps the newest"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(whole.join("manifest.json")).expect("manifest"))
            .expect("json");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).expect("run manifest"))
            .expect("json");
    let ours = manifest["shards"][0]["xxh3_128"]
        .as_str()
        .expect("checksum");
    assert!(
        index.to_string().contains(ours),
        "the shard checksum is the pipeline's shard index's"
    );
    assert_eq!(manifest["summary"]["steps"], 2);

    // `report` on the training folder draws the loss and learning-rate curves.
    let page = tmp.path().join("train.html");
    let o = trajforge(&[
        "report",
        whole.to_str().expect("utf8"),
        "--out",
        page.to_str().expect("utf8"),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(
        html.contains("data-charts=\"2\"")
            && html.contains("loss per optimizer step")
            && html.contains("<polyline"),
        "curves missing"
    );
}

/// Shards of short synthetic documents (ids below 211) and a small model folder, so a run of
/// 16 steps takes seconds: the resume test kills it twice.
fn small_run(dir: &Path) -> PathBuf {
    use trajforge_tokenize::sample::Sample;
    use trajforge_tokenize::shard::{Doc, ShardWriter, packed_batch, packed_schema};
    let shards = dir.join("shards");
    std::fs::create_dir_all(&shards).expect("mkdir");
    let mut w = ShardWriter::new(&shards, "shard", packed_schema(), 8, Vec::new()).expect("writer");
    let mut x = 7u32;
    let rows: Vec<Vec<Doc>> = (0..16)
        .map(|r| {
            (0..3)
                .map(|d| {
                    let n = 40 + 13 * ((r + d) % 5) as u32;
                    let ids: Vec<u32> = (0..n)
                        .map(|_| {
                            x = (x * 31 + 11) % 211;
                            x
                        })
                        .collect();
                    let mask: Vec<u8> = (0..n).map(|i| u8::from(i > 5 && i % 3 != 0)).collect();
                    let supervised_tokens = mask.iter().map(|&m| u32::from(m)).sum();
                    Doc {
                        trajectory_id: format!("t{r}-{d}"),
                        sample: Sample {
                            input_ids: ids,
                            loss_mask: mask,
                            supervised_tokens,
                            dropped_exchanges: 0,
                        },
                    }
                })
                .collect()
        })
        .collect();
    w.write(&packed_batch(&rows).expect("batch"))
        .expect("write");
    w.finish().expect("finish");
    let mut c = trajforge_train::model::ModelConfig::preset("tiny").expect("tiny");
    c.vocab_size = 211;
    let params =
        trajforge_train::model::Params::init(&c, 3, &candle_core::Device::Cpu).expect("init");
    trajforge_train::checkpoint::save_model(&dir.join("model"), &params, &Vec::new())
        .expect("model");
    let config = dir.join("train.yaml");
    std::fs::write(&config, "version: 1\noutput: out\nmodel: {path: model}\nglobal_batch_rows: 2\nmax_tokens: 4096\n\
        optimizer: {lr: 1.0e-2, min_lr: 1.0e-4, warmup_ratio: 0.1, weight_decay: 0.1, max_grad_norm: 1.0}\n\
        checkpoint_every: 3\nstages:\n  - {name: zero, data: [shards], epochs: 1}\n  - {name: hero, data: [shards], epochs: 1, lr: 5.0e-3}\n").expect("yaml");
    config
}

#[test]
fn resume_after_kill_9_gives_the_same_losses_and_weights() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = small_run(tmp.path());
    let cfg = config.to_str().expect("utf8");
    let whole = tmp.path().join("whole");
    let o = trajforge(&[
        "train",
        cfg,
        "--out",
        whole.to_str().expect("utf8"),
        "--quiet",
        "--threads",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let l = losses(&whole);
    assert_eq!(l.len(), 16, "two stages of 8 steps");
    let final_bytes = std::fs::read(whole.join("final/model.safetensors")).expect("weights");
    assert!(
        whole.join("stages/zero/model.safetensors").is_file()
            && whole.join("stages/hero/config.json").is_file()
    );
    // Killed mid-stage (after the checkpoint at step 3) and in the second stage.
    for kill_after in [5usize, 11] {
        let out = tmp.path().join(format!("killed-{kill_after}"));
        kill_after_steps(&config, &out, kill_after);
        let o = trajforge(&[
            "train",
            cfg,
            "--out",
            out.to_str().expect("utf8"),
            "--quiet",
            "--threads",
            "2",
            "--resume",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            losses(&out),
            l,
            "losses after resuming (killed after {kill_after} steps)"
        );
        let resumed = std::fs::read(out.join("final/model.safetensors")).expect("weights");
        assert!(
            resumed == final_bytes,
            "final weights differ after resuming (killed after {kill_after} steps)"
        );
    }
    // A different config refuses to resume the run.
    let o = trajforge(&[
        "train",
        cfg,
        "--out",
        whole.to_str().expect("utf8"),
        "--quiet",
        "--resume",
        "--set",
        "optimizer.lr=0.5",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("another configuration"));
}

/// Starts a training run and SIGKILLs it once `metrics.jsonl` has `steps` lines.
fn kill_after_steps(config: &Path, out: &Path, steps: usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args([
            "train",
            config.to_str().expect("utf8"),
            "--out",
            out.to_str().expect("utf8"),
            "--quiet",
            "--threads",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    let metrics = out.join("metrics.jsonl");
    loop {
        let lines = std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count());
        if lines >= steps {
            break;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the run ended before {steps} steps"
        );
        assert!(started.elapsed() < Duration::from_secs(600), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");
}

#[test]
fn explain_sizes_the_run_and_bad_keys_are_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = quickstart_run(tmp.path());
    let set = data_set(&run);
    let o = trajforge(&[
        "train",
        &train_config(),
        "--set",
        &set,
        "--explain",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).expect("explain json");
    assert_eq!(e["stages"][0]["steps"], 2);
    assert!(
        e["parameters"].as_u64().expect("parameters") > 9_000_000,
        "tiny has the Qwen vocabulary"
    );
    assert!(e["flops_per_token"].as_f64().expect("flops") > 6.0 * 9.7e6);
    assert!(!tmp.path().join("out").exists());

    let o = trajforge(&[
        "train",
        &train_config(),
        "--set",
        &set,
        "--set",
        "optimizer.lrr=1",
        "--explain",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--set optimizer.lrr=1") && err.contains("did you mean `lr`"),
        "{err}"
    );
    let o = trajforge(&[
        "train",
        &train_config(),
        "--set",
        &set,
        "--set",
        "stages.hreo.epochs=1",
        "--explain",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("did you mean `zero`") || err.contains("`hreo`"),
        "{err}"
    );
}

#[test]
fn eval_scores_a_trained_model_per_row_and_in_total() {
    let tmp = tempfile::tempdir().expect("tmp");
    let config = small_run(tmp.path());
    let shards = tmp.path().join("shards");
    let out = tmp.path().join("t");
    let eval_set = format!("eval.data=[{}]", shards.display());
    let o = trajforge(&[
        "train",
        config.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
        "--quiet",
        "--set",
        "stages.zero.max_steps=2",
        "--set",
        "stages.hero.max_steps=1",
        "--set",
        &eval_set,
        "--set",
        "eval.every=1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let evals = metric(&out, "eval_loss");
    assert_eq!(
        evals.len(),
        3,
        "eval.every=1 measures the eval loss at every step"
    );
    let model = out.join("final");
    let o = trajforge(&[
        "eval",
        "--model",
        model.to_str().expect("utf8"),
        shards.to_str().expect("utf8"),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let (total, rows) = lines.split_last().expect("lines");
    assert_eq!(rows.len(), 16);
    let sup: u64 = rows
        .iter()
        .map(|r| r["supervised_tokens"].as_u64().expect("n"))
        .sum();
    assert_eq!(total["total"]["supervised_tokens"].as_u64(), Some(sup));
    let weighted: f64 = rows
        .iter()
        .map(|r| r["loss"].as_f64().expect("loss") * r["supervised_tokens"].as_f64().expect("n"))
        .sum::<f64>()
        / sup as f64;
    let reported = total["total"]["loss"].as_f64().expect("loss");
    assert!((weighted - reported).abs() < 1e-6 * reported.abs().max(1.0));
    // The same shards, the same weights: eval's total is training's last eval loss.
    let last_eval = evals.last().copied().unwrap_or_default();
    assert!(
        (last_eval - reported).abs() <= 1e-5 * reported,
        "eval {reported} vs training's eval loss {last_eval}"
    );
}
