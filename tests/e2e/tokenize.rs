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

use crate::common::{ingest_into, root, sample, trajectories};

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
        let opts = trajforge_synth::SynthOptions {
            kind,
            count,
            seed,
            defect_rate: 0.25,
            batch_rows: 64,
        };
        trajforge_synth::synth(&opts, &path, &|_| {}).expect("synth");
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

fn python_with_transformers() -> bool {
    Command::new("python3")
        .args(["-c", "import transformers"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The acceptance test of the tokenizer: our ids equal `apply_chat_template(messages,
/// tools=tools)` of transformers, row for row. Skipped (loudly) without Python transformers,
/// unless TRAJFORGE_REQUIRE_PARITY is set, as in CI.
#[test]
fn token_ids_equal_transformers_apply_chat_template() {
    if !python_with_transformers() {
        assert!(
            std::env::var_os("TRAJFORGE_REQUIRE_PARITY").is_none(),
            "TRAJFORGE_REQUIRE_PARITY is set but python3 cannot import transformers"
        );
        eprintln!(
            "SKIPPED token_ids_equal_transformers_apply_chat_template: python3 with transformers \
             not found (pip install transformers==4.57.1)"
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (rows, n_samples) = parity_rows(tmp.path());
    let model = Model::qwen2_5_coder().expect("model");
    let tools = ToolCatalogue::bundled().expect("catalogue");
    let mut cache = SegmentCache::default();
    let mut lines = String::new();
    let (mut compared, mut rejected, mut real) = (0, 0, 0);
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
        ]);
        lines.push_str(&pyjson::dumps(&row));
        lines.push('\n');
    }
    let jsonl = tmp.path().join("rows.jsonl");
    std::fs::write(&jsonl, lines).expect("write rows");
    let out = Command::new("python3")
        .arg(root().join("tests/parity/transformers_parity.py"))
        .arg(qwen_folder(tmp.path()))
        .arg(&jsonl)
        .output()
        .expect("python runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "parity failed: {report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "parity with transformers: {compared} rows identical ({real} from published/constructed samples), {rejected} not tokenizable"
    );
    assert!(compared >= 300, "{compared} rows compared");
    assert!(
        real + 2 >= n_samples,
        "{real} of {n_samples} samples compared"
    );
    assert!(
        report.contains(&format!("\"rows\": {compared}")),
        "{report}"
    );
}
