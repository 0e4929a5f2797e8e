//! `trajforge tokenize` and the tokenize library on real and synthetic rows: token-exact
//! parity with Python transformers, loss masks that decode to the assistant turns, every row
//! accounted for, bytes independent of the thread count.

use std::path::{Path, PathBuf};
use std::process::Command;

use trajforge_schema::Trajectory;
use trajforge_tokenize::job::ToolCatalogue;
use trajforge_tokenize::model::{Model, SegmentCache};
use trajforge_tokenize::pyjson::{self, Json};
use trajforge_tokenize::sample::{Outcome, SampleOptions, tokenize};
use trajforge_tokenize::template::message_value;

use crate::common::{ingest_into, require_python, root, sample, trajectories};

/// Every bundled real and constructed sample, then 200 ZERO and 100 HERO synthetic rows,
/// canonical; and how many of them are samples.
fn parity_rows(tmp: &Path) -> (Vec<Trajectory>, usize) {
    let samples = tmp.join("samples");
    ingest_into(&[sample("real"), sample("constructed")], &samples, None);
    let mut rows = trajectories(&samples);
    let n_samples = rows.len();
    let mut inputs = Vec::new();
    for (kind, count, seed) in [
        (trajforge_synth::Kind::Zero, 200, 31),
        (trajforge_synth::Kind::Hero, 100, 32),
    ] {
        let path = tmp.join(format!("{kind:?}.parquet"));
        crate::common::synth_corpus(&path, kind, count, seed, 0.25);
        inputs.push(path.display().to_string());
    }
    let out = tmp.join("synth");
    ingest_into(&inputs, &out, None);
    rows.extend(trajectories(&out));
    (rows, n_samples)
}

/// The bundled Qwen folder, uncompressed, as `AutoTokenizer.from_pretrained` reads it.
fn qwen_folder(tmp: &Path) -> PathBuf {
    let assets = root().join("crates/trajforge-tokenize/assets/qwen2.5-coder");
    let dir = tmp.join("qwen");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let packed = std::fs::read(assets.join("tokenizer.json.zst")).expect("bundled tokenizer");
    let json = zstd::decode_all(packed.as_slice()).expect("zstd");
    std::fs::write(dir.join("tokenizer.json"), json).expect("write");
    std::fs::copy(
        assets.join("tokenizer_config.json"),
        dir.join("tokenizer_config.json"),
    )
    .expect("copy");
    dir
}

/// The acceptance test of the tokenizer: our ids equal `apply_chat_template(messages,
/// tools=tools)` of transformers, row for row, and our loss masks equal the `assistant_masks`
/// transformers derives from the same template with `{% generation %}` markers.
#[test]
#[ignore = "needs python3 with transformers; CI runs it"]
fn token_ids_equal_transformers_apply_chat_template() {
    require_python(
        "transformers",
        "python3 -m pip install transformers==4.57.1",
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let (rows, n_samples) = parity_rows(tmp.path());
    let model = Model::qwen2_5_coder().expect("model");
    let tools = ToolCatalogue::bundled().expect("catalogue");
    let mut cache = SegmentCache::default();
    let mut lines = String::new();
    let (mut compared, mut rejected, mut real) = (0, 0, 0);
    let mut supervised = 0u64;
    for (k, t) in rows.iter().enumerate() {
        let row_tools = tools
            .tools_for(t.tools.as_deref(), t.scaffold.as_deref())
            .expect("tools");
        let msgs: Result<Vec<Json>, _> = t
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| message_value(i, m))
            .collect();
        let Ok(msgs) = msgs else {
            rejected += 1;
            continue;
        };
        let opts = SampleOptions::default();
        let s = match tokenize(&model, &t.messages, row_tools.as_deref(), &opts, &mut cache) {
            Ok(Outcome::Kept(s)) => s,
            Ok(Outcome::Filtered(..)) | Err(_) => {
                rejected += 1;
                continue;
            }
        };
        compared += 1;
        real += usize::from(k < n_samples);
        let row = Json::Object(vec![
            ("id".into(), Json::Str(t.trajectory_id.clone())),
            ("messages".into(), Json::Array(msgs)),
            ("tools".into(), row_tools.map_or(Json::Null, Json::Array)),
            (
                "ids".into(),
                Json::Array(s.input_ids.iter().map(|&i| Json::Int(i as i64)).collect()),
            ),
            (
                "mask".into(),
                Json::Array(s.loss_mask.iter().map(|&b| Json::Int(b as i64)).collect()),
            ),
        ]);
        supervised += u64::from(s.supervised_tokens);
        lines.push_str(&pyjson::dumps(&row));
        lines.push('\n');
    }
    let jsonl = tmp.path().join("rows.jsonl");
    std::fs::write(&jsonl, lines).expect("write rows");
    let out = Command::new("python3")
        .arg(root().join("tests/parity/transformers_parity.py"))
        .arg(qwen_folder(tmp.path()))
        .arg(&jsonl)
        .arg(root().join("tests/parity/qwen2_5_generation_marked.jinja"))
        .output()
        .expect("python runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "parity failed: {report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "parity with transformers: {compared} rows with identical ids and loss masks \
         ({supervised} supervised tokens; {real} rows from published/constructed samples), \
         {rejected} not tokenizable"
    );
    assert!(compared >= 300, "{compared} rows compared");
    // Every sample and every synthetic row renders: none is left out of the comparison.
    assert_eq!(real, n_samples, "{real} of {n_samples} samples compared");
    assert_eq!(rejected, 0, "rows that could not be tokenized");
    assert!(
        report.contains(&format!(
            "\"rows\": {compared}, \"masked_tokens\": {supervised}"
        )),
        "{report}"
    );
}

/// One Parquet folder's rows as JSON objects (lists become arrays), in file order.
fn rows_of(dir: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let mut rows = Vec::new();
    for b in crate::common::batches(dir) {
        let mut w = arrow::json::ArrayWriter::new(Vec::new());
        w.write(&b).expect("json");
        w.finish().expect("json");
        let v: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(&w.into_inner()).expect("rows");
        rows.extend(v);
    }
    rows
}

fn ints(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("int") as u32)
        .collect()
}

/// What Qwen's template makes of an assistant message after the generation prompt
/// (`<|im_start|>assistant\n`), built here from the canonical message, not by our renderer:
/// content, each call as a `<tool_call>` block, `<|im_end|>`. Without content, the first
/// block's leading newline is the prompt's own.
fn expected_assistant_text(m: &trajforge_schema::Message) -> String {
    let mut s = m.content.clone().unwrap_or_default();
    let absorbed = s.is_empty() && !m.tool_calls.is_empty();
    for c in &m.tool_calls {
        let args = Json::parse(&c.arguments).expect("arguments are JSON");
        s.push_str(&format!(
            "\n<tool_call>\n{{\"name\": \"{}\", \"arguments\": {}}}\n</tool_call>",
            c.name,
            pyjson::dumps(&args)
        ));
    }
    s.push_str("<|im_end|>");
    if absorbed {
        s.remove(0);
    }
    s
}

/// `trajforge tokenize` on every bundled sample: each row is tokenized or dropped with a
/// reason; the supervised tokens of a row decode to exactly its assistant turns.
#[test]
fn tokenize_cli_masks_exactly_the_assistant_turns_and_accounts_for_every_row() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("tok");
    let o = crate::common::trajforge(&[
        "tokenize",
        &root().join("data-samples").display().to_string(),
        "--out",
        out.to_str().expect("utf8"),
        "--max-tokens",
        "65536",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let canonical = tmp.path().join("canonical");
    ingest_into(
        &[root().join("data-samples").display().to_string()],
        &canonical,
        None,
    );
    let by_id: std::collections::HashMap<String, Trajectory> = trajectories(&canonical)
        .into_iter()
        .map(|t| (t.trajectory_id.clone(), t))
        .collect();
    assert!(
        !out.join(".ingest").exists(),
        "the ingested copy is removed"
    );
    assert!(out.join("rejects").is_dir(), "the ingest rejects are kept");
    let tokenized = rows_of(&out.join("tokenized"));
    let dropped = rows_of(&out.join("tokenize_dropped"));
    assert_eq!(
        tokenized.len() + dropped.len(),
        by_id.len(),
        "every row accounted for"
    );
    assert!(tokenized.len() >= 40, "{} rows tokenized", tokenized.len());
    for d in &dropped {
        assert!(
            ["too_long", "no_supervised_tokens", "invalid_row"]
                .contains(&d["reason"].as_str().expect("reason"))
        );
    }
    let model = Model::qwen2_5_coder().expect("model");
    for row in &tokenized {
        let id = row["trajectory_id"].as_str().expect("id");
        let (ids, mask) = (ints(&row["input_ids"]), ints(&row["loss_mask"]));
        assert_eq!(ids.len(), mask.len());
        assert_eq!(ids.len() as u64, row["num_tokens"].as_u64().expect("n"));
        let supervised: u32 = mask.iter().sum();
        assert_eq!(
            supervised as u64,
            row["num_supervised"].as_u64().expect("n")
        );
        let mut runs = Vec::new();
        let mut k = 0;
        while k < ids.len() {
            let start = k;
            while k < ids.len() && mask[k] == mask[start] {
                k += 1;
            }
            if mask[start] == 1 {
                runs.push(model.decode(&ids[start..k]).expect("decode"));
            }
        }
        let expected: Vec<String> = by_id[id]
            .messages
            .iter()
            .filter(|m| m.role == "assistant")
            .map(expected_assistant_text)
            .collect();
        assert_eq!(runs.len(), expected.len(), "{id}");
        for (run, want) in runs.iter().zip(&expected) {
            // A token straddling the turn start (the template's `\n` merged with the newlines
            // an answer begins with) carries the loss: only template whitespace may precede.
            let extra = run.strip_suffix(want.as_str()).unwrap_or_else(|| {
                panic!("{id}: supervised {run:?} is not the assistant turn {want:?}")
            });
            assert!(
                extra.is_empty()
                    || (extra.trim().is_empty() && want.starts_with(char::is_whitespace)),
                "{id}: supervised text has {extra:?} before the assistant turn"
            );
        }
    }
}

/// Packed shards from the quickstart pipeline: within capacity, boundaries consistent, and
/// every sample's tokens and mask bits exactly those of its unpacked form.
#[test]
fn packed_shards_conserve_samples_and_do_not_depend_on_threads() {
    let tmp = tempfile::tempdir().expect("tmp");
    let quick = root()
        .join("pipelines/quickstart.yaml")
        .display()
        .to_string();
    let mut shard_bytes = Vec::new();
    for threads in ["1", "3"] {
        let out = tmp.path().join(format!("t{threads}"));
        let o = crate::common::trajforge(&[
            "run",
            &quick,
            "--out",
            out.to_str().expect("utf8"),
            "--quiet",
            "--threads",
            threads,
            "--set",
            "steps.pack.rows_per_shard=4",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        shard_bytes.push(crate::common::dir_bytes(
            &out,
            &["shards", "tokenize_dropped"],
        ));
    }
    assert!(shard_bytes[0].len() > 2, "several shards");
    assert_eq!(
        shard_bytes[0], shard_bytes[1],
        "shards differ across thread counts"
    );

    let out = tmp.path().join("t1");
    let tok = tmp.path().join("unpacked");
    let o = crate::common::trajforge(&[
        "tokenize",
        out.join("kept").to_str().expect("utf8"),
        "--out",
        tok.to_str().expect("utf8"),
        "--max-tokens",
        "32768",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let unpacked: std::collections::HashMap<String, (Vec<u32>, Vec<u32>)> =
        rows_of(&tok.join("tokenized"))
            .into_iter()
            .map(|r| {
                (
                    r["trajectory_id"].as_str().expect("id").to_string(),
                    (ints(&r["input_ids"]), ints(&r["loss_mask"])),
                )
            })
            .collect();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest"))
            .expect("json");
    let mut seen = std::collections::HashSet::new();
    let mut tokens = 0u64;
    let packed = rows_of(&out.join("shards"));
    for row in &packed {
        let (ids, mask, pos) = (
            ints(&row["input_ids"]),
            ints(&row["loss_mask"]),
            ints(&row["position_ids"]),
        );
        let (lens, cu) = (ints(&row["seq_lens"]), ints(&row["cu_seqlens"]));
        let tids: Vec<&str> = row["trajectory_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_str().expect("id"))
            .collect();
        assert!(ids.len() <= 32_768 && ids.len() == mask.len() && ids.len() == pos.len());
        assert_eq!(cu.len(), lens.len() + 1);
        assert_eq!(tids.len(), lens.len());
        assert_eq!(*cu.last().expect("cu"), ids.len() as u32);
        for (d, id) in tids.iter().enumerate() {
            let (a, b) = (cu[d] as usize, cu[d + 1] as usize);
            assert_eq!(b - a, lens[d] as usize);
            assert!(
                pos[a..b].iter().enumerate().all(|(i, &p)| p as usize == i),
                "positions restart"
            );
            let (u_ids, u_mask) = &unpacked[*id];
            assert_eq!(&ids[a..b], u_ids.as_slice(), "{id}: tokens");
            assert_eq!(&mask[a..b], u_mask.as_slice(), "{id}: mask bits");
            assert!(seen.insert(id.to_string()), "{id} packed twice");
        }
        tokens += ids.len() as u64;
    }
    assert_eq!(seen.len(), unpacked.len(), "every sample packed once");
    assert_eq!(manifest["tokenize"]["tokens"].as_u64(), Some(tokens));
    let index_rows: u64 = manifest["tokenize"]["shards"]
        .as_array()
        .expect("index")
        .iter()
        .map(|s| s["rows"].as_u64().expect("rows"))
        .sum();
    assert_eq!(index_rows, packed.len() as u64);

    // inspect decodes a packed row document by document, supervised text marked.
    let o = crate::common::trajforge(&[
        "inspect",
        out.join("shards").to_str().expect("utf8"),
        "--max-chars",
        "0",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let first = packed[0]["trajectory_ids"][0].as_str().expect("id");
    assert!(text.contains(&format!("document 0: {first}")), "{text}");
    assert!(
        text.contains("<|im_start|>assistant\n⟦"),
        "supervised spans are marked"
    );
    assert!(
        text.contains("<|im_end|>⟧"),
        "the end-of-turn token is supervised"
    );
}

/// `notebooks/load_packed_shard.py` turns every row of the quickstart's first shard into torch
/// tensors (its own asserts check cu_seqlens and position restarts) and counts what the row
/// says.
#[test]
#[ignore = "needs python3 with torch and pyarrow; CI runs it"]
fn load_packed_shard_script_reads_the_rows_we_pack() {
    require_python(
        "torch, pyarrow",
        "python3 -m pip install torch==2.15.0 pyarrow==26.0.1",
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("run");
    let quick = root().join("pipelines/quickstart.yaml");
    let o = crate::common::trajforge(&[
        "run",
        quick.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
        "--quiet",
        "--set",
        "steps.pack.rows_per_shard=4",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let packed = rows_of(&out.join("shards"));
    let shard = out.join("shards/shard-00000.parquet");
    // rows_per_shard=4: the first shard holds the first four packed rows.
    for (k, row) in packed.iter().take(4).enumerate() {
        let o = Command::new("python3")
            .arg(root().join("notebooks/load_packed_shard.py"))
            .arg(&shard)
            .arg(k.to_string())
            .output()
            .expect("python runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let want = format!(
            "{} tokens, {} documents, {} supervised",
            row["num_tokens"], row["num_samples"], row["num_supervised"]
        );
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), want, "row {k}");
    }
}

/// A wrong tokenizer folder is a configuration error raised before any stage runs.
#[test]
fn a_missing_tokenizer_fails_before_the_filters_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let quick = root()
        .join("pipelines/quickstart.yaml")
        .display()
        .to_string();
    let missing = tmp.path().join("no-such-tokenizer");
    let set = format!("steps.tokenize.tokenizer={}", missing.display());
    let o = crate::common::trajforge(&[
        "run",
        &quick,
        "--out",
        out.to_str().expect("utf8"),
        "--quiet",
        "--set",
        &set,
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no tokenizer.json"), "{err}");
    assert!(
        !out.join("kept").exists(),
        "nothing was filtered or written"
    );
}
