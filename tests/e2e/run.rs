//! `trajforge run`: the shipped pipelines on the samples (snapshots), the synthetic corpus's
//! ground truth, thread-count determinism, resume after kill -9, and config errors.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::{AsArray, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use crate::common::{dir_bytes, root, trajforge};

const OUTPUTS: [&str; 5] = ["kept", "filtered", "rejects", "shards", "tokenize_dropped"];

fn pipeline(name: &str) -> String {
    root().join("pipelines").join(name).display().to_string()
}

/// Runs the binary and returns the manifest, failing with its stderr.
fn run(args: &[&str]) -> Value {
    let out = trajforge(args);
    assert!(
        out.status.success(),
        "trajforge {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = args
        .iter()
        .position(|a| *a == "--out")
        .map(|i| PathBuf::from(args[i + 1]))
        .expect("tests pass --out");
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("manifest is JSON")
}

/// `trajforge run PIPELINE --out OUT --quiet EXTRA...`, returning the manifest.
fn run_pipeline(pipeline_file: &str, out: &Path, extra: &[&str]) -> Value {
    let out = out.display().to_string();
    let args: Vec<&str> = ["run", pipeline_file, "--out", &out, "--quiet"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    run(&args)
}

fn batches(dir: &Path) -> Vec<RecordBatch> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("output folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&f).expect("open"))
            .expect("parquet")
            .build()
            .expect("reader");
        out.extend(reader.map(|b| b.expect("batch")));
    }
    out
}

/// `trajectory_id` → reason codes of every row in `out/filtered`.
fn filtered_reasons(out: &Path) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::new();
    for b in batches(&out.join("filtered")) {
        let ids = b
            .column_by_name("trajectory_id")
            .expect("id")
            .as_string::<i32>();
        let reasons = b
            .column_by_name("reasons")
            .expect("reasons")
            .as_list::<i32>();
        for i in 0..b.num_rows() {
            let r = reasons.value(i);
            let codes: Vec<String> = r
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap_or_default().to_string())
                .collect();
            assert!(!codes.is_empty(), "a filtered row has no reason");
            map.insert(ids.value(i).to_string(), codes);
        }
    }
    map
}

fn kept_ids(out: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for b in batches(&out.join("kept")) {
        let col = b
            .column_by_name("trajectory_id")
            .expect("id")
            .as_string::<i32>();
        ids.extend((0..b.num_rows()).map(|i| col.value(i).to_string()));
    }
    ids
}

/// What a snapshot records: the ledger, rows per step and per reason, and the kept ids.
fn summary(manifest: &Value, out: &Path) -> Value {
    let steps: Vec<Value> = manifest["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| serde_json::json!([s["name"], s["rows_in"], s["rows_out"], s["flagged"]]))
        .collect();
    let mut kept = kept_ids(out);
    kept.sort();
    serde_json::json!({
        "ledger": manifest["ledger"],
        "steps (name, in, out, flagged)": steps,
        "reasons": manifest["reasons"],
        "kept": kept,
    })
}

fn assert_ledger(m: &Value, out: &Path) {
    let l = &m["ledger"];
    let n = |k: &str| l[k].as_u64().expect("count");
    assert_eq!(n("read"), n("kept") + n("filtered") + n("rejected"));
    assert_eq!(l["balanced"], true);
    let rows = |sub: &str| -> u64 {
        batches(&out.join(sub))
            .iter()
            .map(|b| b.num_rows() as u64)
            .sum()
    };
    assert_eq!(rows("kept"), n("kept"));
    assert_eq!(rows("filtered"), n("filtered"));
    assert_eq!(rows("rejects"), n("rejected"));
}

#[test]
fn shipped_pipelines_on_the_samples() {
    let tmp = tempfile::tempdir().expect("tmp");
    let samples = root().join("data-samples").display().to_string();
    let quick = tmp.path().join("quickstart");
    let m = run_pipeline(&pipeline("quickstart.yaml"), &quick, &[]);
    assert_ledger(&m, &quick);
    insta::assert_json_snapshot!("quickstart", summary(&m, &quick));

    let zero = tmp.path().join("zero");
    let m = run_pipeline(&pipeline("zero.yaml"), &zero, &["--input", &samples]);
    assert_ledger(&m, &zero);
    insta::assert_json_snapshot!("zero", summary(&m, &zero));

    // HERO rows against the ZERO output just written.
    let hero = tmp.path().join("hero");
    let reference = format!(
        "steps.exact_dedupe.reference=[{}]",
        zero.join("kept").display()
    );
    let near_ref = format!(
        "steps.near_dedupe.reference=[{}]",
        zero.join("kept").display()
    );
    let m = run_pipeline(
        &pipeline("hero.yaml"),
        &hero,
        &["--input", &samples, "--set", &reference, "--set", &near_ref],
    );
    assert_ledger(&m, &hero);
    // Everything ZERO kept is in the reference, so HERO keeps none of those rows again.
    let zero_kept: BTreeSet<String> = kept_ids(&zero).into_iter().collect();
    assert!(kept_ids(&hero).iter().all(|id| !zero_kept.contains(id)));
    insta::assert_json_snapshot!("hero", summary(&m, &hero));
}

#[test]
fn filtered_rows_list_every_reason_that_applied() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("o");
    let samples = root().join("data-samples").display().to_string();
    // Two filters that overlap on purpose: every HERO synth row runs python and has > 5 turns.
    let yaml = tmp.path().join("p.yaml");
    std::fs::write(
        &yaml,
        "version: 1\nsteps:\n  - op: max_assistant_turns\n    max: 5\n  - op: no_execution\n  - op: exact_dedupe\n",
    )
    .expect("write");
    let m = run_pipeline(yaml.to_str().expect("utf8"), &out, &["--input", &samples]);
    assert_ledger(&m, &out);
    let reasons = filtered_reasons(&out);
    let both = reasons.values().filter(|r| r.len() >= 2).count();
    assert!(both > 0, "some rows fail both filters: {reasons:?}");
    let flagged: u64 = m["reasons"]["no_execution"].as_u64().expect("count");
    let listed = reasons
        .values()
        .filter(|r| r.contains(&"no_execution".to_string()))
        .count() as u64;
    assert_eq!(
        flagged, listed,
        "rows dropped first by max_assistant_turns still list no_execution"
    );
}

fn read_truth(path: &Path) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for b in batches_of(path) {
        let ids = b.column(0).as_string::<i32>();
        let defects = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            out.insert(ids.value(i).to_string(), defects.value(i).to_string());
        }
    }
    out
}

fn batches_of(file: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(File::open(file).expect("open"))
        .expect("parquet")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect()
}

/// The operator that must catch each planted defect (`over_length` is the tokenizer's).
fn catcher(defect: &str) -> Option<&'static str> {
    Some(match defect {
        "exact_duplicate" => "exact_dedupe",
        "near_duplicate" => "near_dedupe",
        "forbidden_execution" => "no_execution",
        "benchmark_instance" => "decontaminate",
        "empty_patch" => "non_empty_patch",
        "too_many_turns" => "max_assistant_turns",
        "bad_tool_call_count" => "one_tool_call_per_turn",
        "failed_edits" => "max_failed_edits",
        "touches_tests" => "patch_touches_tests",
        _ => return None,
    })
}

/// Every planted defect is caught by its operator, and no clean row is dropped by a quality
/// filter. Duplicates copy earlier rows, so `keep: first` makes the copy the one dropped.
#[test]
fn zero_pipeline_finds_the_planted_defects_and_only_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let corpus = tmp.path().join("zero.parquet");
    crate::common::synth_corpus(&corpus, trajforge_synth::Kind::Zero, 400, 11, 0.4);
    let truth = read_truth(&trajforge_synth::truth_path(&corpus));
    let out = tmp.path().join("out");
    let m = run_pipeline(
        &pipeline("zero.yaml"),
        &out,
        &[
            "--input",
            corpus.to_str().expect("utf8"),
            "--set",
            "steps.exact_dedupe.keep=first",
            "--set",
            "steps.near_dedupe.keep=first",
        ],
    );
    assert_ledger(&m, &out);
    let reasons = filtered_reasons(&out);
    let mut per_defect: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (id, defect) in &truth {
        let Some(step) = catcher(defect) else {
            continue;
        };
        let caught = reasons.get(id).is_some_and(|r| r.iter().any(|c| c == step));
        let e = per_defect.entry(defect.clone()).or_default();
        e.0 += 1;
        e.1 += u64::from(caught);
    }
    for (defect, (planted, caught)) in &per_defect {
        eprintln!("recall {defect}: {caught}/{planted}");
        assert_eq!(planted, caught, "{defect}: caught {caught} of {planted}");
    }
    assert!(
        per_defect.len() >= 8,
        "most defect kinds were planted: {per_defect:?}"
    );
    let group_steps = ["exact_dedupe", "near_dedupe"];
    let by_quality = reasons
        .values()
        .filter(|c| c.iter().any(|c| !group_steps.contains(&c.as_str())))
        .count();
    let planted_by_quality = reasons
        .iter()
        .filter(|(id, c)| {
            truth.contains_key(*id) && c.iter().any(|c| !group_steps.contains(&c.as_str()))
        })
        .count();
    eprintln!(
        "quality-filter precision: {planted_by_quality}/{by_quality} dropped rows carry a planted defect"
    );
    for (id, codes) in &reasons {
        if truth.contains_key(id) {
            continue;
        }
        let quality: Vec<&String> = codes
            .iter()
            .filter(|c| !group_steps.contains(&c.as_str()))
            .collect();
        assert!(quality.is_empty(), "clean row {id} dropped by {quality:?}");
    }
}

/// Near-dedupe decisions agree with brute-force exact Jaccard over the same shingles.
#[test]
fn near_dedupe_matches_brute_force_jaccard() {
    use trajforge_ops::minhash::MinHasher;
    use trajforge_ops::operators::near_dedupe::{ShingleText, row_words};
    use trajforge_ops::view::MessagesView;
    let tmp = tempfile::tempdir().expect("tmp");
    let corpus = tmp.path().join("zero.parquet");
    crate::common::synth_corpus(&corpus, trajforge_synth::Kind::Zero, 160, 5, 0.5);
    let yaml = tmp.path().join("p.yaml");
    std::fs::write(
        &yaml,
        "version: 1\nsteps:\n  - op: near_dedupe\n    threshold: 0.8\n    keep: first\n",
    )
    .expect("write");
    let out = tmp.path().join("out");
    run_pipeline(
        yaml.to_str().expect("utf8"),
        &out,
        &["--input", corpus.to_str().expect("utf8")],
    );
    let flagged: BTreeSet<String> = filtered_reasons(&out).into_keys().collect();
    // Brute force over the ingested rows in input order.
    let mh = MinHasher::new(128, 5, 1);
    let mut rows: Vec<(String, Vec<u64>)> = Vec::new();
    for b in batches_of(&corpus_canonical(&corpus, tmp.path())) {
        let ids = b
            .column_by_name("trajectory_id")
            .expect("id")
            .as_string::<i32>();
        let view =
            MessagesView::try_new(b.column_by_name("messages").expect("messages")).expect("view");
        for i in 0..b.num_rows() {
            let mut s = mh.shingles(row_words(&view, i, ShingleText::Conversation).into_iter());
            s.sort_unstable();
            s.dedup();
            rows.push((ids.value(i).to_string(), s));
        }
    }
    let jaccard = |a: &[u64], b: &[u64]| {
        let (mut i, mut j, mut both) = (0, 0, 0usize);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    both += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        both as f64 / (a.len() + b.len() - both).max(1) as f64
    };
    let truth: BTreeSet<String> = (0..rows.len())
        .filter(|&k| (0..k).any(|j| jaccard(&rows[k].1, &rows[j].1) >= 0.8))
        .map(|k| rows[k].0.clone())
        .collect();
    let tp = flagged.intersection(&truth).count() as f64;
    let precision = tp / flagged.len().max(1) as f64;
    let recall = tp / truth.len().max(1) as f64;
    assert!(
        truth.len() >= 5,
        "the corpus has near-duplicates: {}",
        truth.len()
    );
    eprintln!(
        "near_dedupe vs brute force: precision {precision:.3}, recall {recall:.3} ({} flagged, {} true)",
        flagged.len(),
        truth.len()
    );
    assert!(
        precision >= 0.95 && recall >= 0.95,
        "precision {precision:.3} recall {recall:.3} ({} flagged, {} true)",
        flagged.len(),
        truth.len()
    );
}

/// The synth corpus as canonical Parquet (ingested once).
fn corpus_canonical(corpus: &Path, tmp: &Path) -> PathBuf {
    let out = tmp.join("canonical");
    crate::common::ingest_into(&[corpus.display().to_string()], &out, None);
    out.join("trajectories/part-00000.parquet")
}

#[test]
fn outputs_do_not_depend_on_the_thread_count() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut results = Vec::new();
    for threads in ["1", "2", "3"] {
        let out = tmp.path().join(format!("t{threads}"));
        run_pipeline(
            &pipeline("quickstart.yaml"),
            &out,
            &[
                "--threads",
                threads,
                "--set",
                "steps.write.rows_per_shard=10",
            ],
        );
        results.push(dir_bytes(&out, &OUTPUTS));
    }
    assert!(results[0].len() > 3, "several shards");
    assert!(
        results.iter().all(|r| *r == results[0]),
        "outputs differ across thread counts"
    );
}

/// Starts `trajforge run ARGS` with a pause hook at `point`, waits for it there and kills it
/// with SIGKILL.
/// Starts `trajforge ARGS` and returns it paused at `point` (the test hook).
fn paused_at(point: &str, args: &[&str], out: &Path) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(args)
        .env("TRAJFORGE_PAUSE_AFTER", point)
        .spawn()
        .expect("spawn");
    let marker = out.join(".work").join(format!("paused-{point}"));
    let started = std::time::Instant::now();
    while !marker.exists() {
        assert!(started.elapsed().as_secs() < 120, "never reached {point}");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("run exited ({status}) before {point}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

fn kill_at(point: &str, args: &[&str], out: &Path) {
    let mut child = paused_at(point, args, out);
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
}

/// A second run into the folder a run is writing fails at once and names the holder; the lock
/// dies with its process, so a kill -9 leaves nothing to clean up before `--resume`.
#[test]
fn a_second_run_into_the_same_out_fails_naming_the_first() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("o");
    let quick = pipeline("quickstart.yaml");
    let args = [
        "run",
        quick.as_str(),
        "--out",
        out.to_str().expect("utf8"),
        "--quiet",
    ];
    let mut first = paused_at("ingest", &args, &out);
    let second = trajforge(&args);
    let err = String::from_utf8_lossy(&second.stderr);
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    assert!(!second.status.success(), "{err}");
    assert!(
        err.contains("in use by another trajforge run")
            && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );
    let m = run_pipeline(&quick, &out, &["--resume"]);
    assert_eq!(m["resumed"], true);
}

/// Kill -9 at a stage boundary or in the middle of writing, then `--resume`: the outputs are
/// byte-identical to an uninterrupted run.
#[test]
fn resume_after_kill_gives_identical_outputs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let shards = "steps.write.rows_per_shard=10";
    let reference = tmp.path().join("reference");
    run_pipeline(&pipeline("quickstart.yaml"), &reference, &["--set", shards]);
    let expected = dir_bytes(&reference, &OUTPUTS);
    for point in ["ingest", "decide", "write-part", "write", "tokenize"] {
        let out = tmp.path().join(point);
        let quick = pipeline("quickstart.yaml");
        let args = [
            "run",
            &quick,
            "--out",
            out.to_str().expect("utf8"),
            "--quiet",
            "--set",
            shards,
        ];
        kill_at(point, &args, &out);
        assert!(
            !out.join("manifest.json").exists(),
            "{point}: a killed run has no manifest"
        );
        let m = run_pipeline(
            &pipeline("quickstart.yaml"),
            &out,
            &["--set", shards, "--resume"],
        );
        assert_eq!(m["resumed"], true, "{point}");
        assert_eq!(
            dir_bytes(&out, &OUTPUTS),
            expected,
            "{point}: resumed outputs differ"
        );
        assert!(!out.join(".work").exists(), "{point}: work folder removed");
    }
}

#[test]
fn resume_refuses_a_changed_configuration() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("o");
    let quick = pipeline("quickstart.yaml");
    kill_at(
        "decide",
        &[
            "run",
            &quick,
            "--out",
            out.to_str().expect("utf8"),
            "--quiet",
        ],
        &out,
    );
    let res = trajforge(&[
        "run",
        &pipeline("quickstart.yaml"),
        "--out",
        out.to_str().expect("utf8"),
        "--resume",
        "--set",
        "steps.near_dedupe.threshold=0.9",
    ]);
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("configuration changed"), "{err}");
}

/// `--resume` never starts over where that would destroy something: a finished run says so,
/// exits 0 and changes nothing; a folder that is not a run is refused untouched.
#[test]
fn resume_does_not_wipe_a_finished_run_or_a_folder_that_is_not_a_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let quick = pipeline("quickstart.yaml");
    let out = tmp.path().join("done");
    run_pipeline(&quick, &out, &[]);
    let before = dir_bytes(&out, &OUTPUTS);
    let manifest = std::fs::read(out.join("manifest.json")).expect("manifest");
    let o = trajforge(&[
        "run",
        &quick,
        "--out",
        out.to_str().expect("utf8"),
        "--resume",
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("finished run: nothing to resume"), "{err}");
    assert_eq!(
        dir_bytes(&out, &OUTPUTS),
        before,
        "a finished run was rewritten"
    );
    assert_eq!(
        std::fs::read(out.join("manifest.json")).expect("manifest"),
        manifest
    );
    let o = trajforge(&[
        "run",
        &quick,
        "--out",
        out.to_str().expect("utf8"),
        "--resume",
        "--set",
        "steps.near_dedupe.threshold=0.9",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("another configuration"),
        "{err}"
    );
    assert_eq!(dir_bytes(&out, &OUTPUTS), before);

    let mine = tmp.path().join("mine");
    std::fs::create_dir_all(mine.join("kept")).expect("mkdir");
    std::fs::write(mine.join("kept/notes.txt"), "mine").expect("write");
    let o = trajforge(&[
        "run",
        &quick,
        "--out",
        mine.to_str().expect("utf8"),
        "--resume",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("not a run folder"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("kept/notes.txt")).expect("kept"),
        "mine"
    );
}

#[test]
fn config_errors_exit_non_zero_with_the_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let yaml = tmp.path().join("bad.yaml");
    std::fs::write(
        &yaml,
        "version: 1\nsteps:\n  - op: near_dedupe\n    treshold: 0.8\n",
    )
    .expect("write");
    let res = trajforge(&[
        "run",
        yaml.to_str().expect("utf8"),
        "--out",
        tmp.path().join("o").to_str().expect("utf8"),
    ]);
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("line 4, column 5: steps[0].treshold: unknown key"),
        "{err}"
    );
    assert!(err.contains("did you mean `threshold`"), "{err}");
}

#[test]
fn explain_prints_steps_and_plans_without_running() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("o");
    let res = trajforge(&[
        "run",
        &pipeline("quickstart.yaml"),
        "--out",
        out.to_str().expect("utf8"),
        "--explain",
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let text = String::from_utf8_lossy(&res.stdout);
    for needle in [
        "\"op\":\"near_dedupe\"",
        "== decide plan ==",
        "WindowAggExec",
        "TrajectoryScan",
        "== write plan ==",
        "HashJoinExec",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    assert!(!out.exists(), "--explain writes nothing");
}

/// Under a small memory limit the run spills and writes the same bytes; under an impossible one
/// it fails with a message that says what to change.
/// A 400-row synthetic corpus (~50 MB of trajectories) under 64 MiB on one thread (it runs from
/// 32 MiB and still spills at 96 MiB, so the check is not on a knife edge): the write sort
/// spills (the manifest says how much, compressed) and the outputs are byte-identical to an
/// unlimited run;
/// under 1 MiB the run fails naming the setting to raise.
#[test]
fn memory_limit_spills_or_fails_clearly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let corpus = tmp.path().join("zero.parquet");
    crate::common::synth_corpus(&corpus, trajforge_synth::Kind::Zero, 400, 5, 0.3);
    let quick = pipeline("quickstart.yaml");
    let input = corpus.display().to_string();
    let one_thread = ["--input", input.as_str(), "--threads", "1", "--set"];
    let free = tmp.path().join("free");
    let tight = tmp.path().join("tight");
    let unspilled = run_pipeline(
        &quick,
        &free,
        &[&one_thread[..], &["memory_limit=8GiB"]].concat(),
    );
    assert_eq!(unspilled["timings"]["write_spilled_bytes"], 0);
    let spilled = run_pipeline(
        &quick,
        &tight,
        &[&one_thread[..], &["memory_limit=64MiB"]].concat(),
    );
    assert!(
        spilled["timings"]["write_spilled_bytes"].as_u64() > Some(0),
        "64 MiB should make the write sort spill: {}",
        spilled["timings"]
    );
    // Spills are zstd-compressed Arrow IPC: measured at 1.7× the zstd Parquet corpus (10 MB);
    // uncompressed they were 17× (101 MB), more than the disk a large corpus leaves.
    let corpus_bytes = std::fs::metadata(&corpus).expect("corpus").len();
    let spilled_bytes = spilled["timings"]["write_spilled_bytes"]
        .as_u64()
        .expect("spilled bytes");
    assert!(
        spilled_bytes < 4 * corpus_bytes,
        "spills should be compressed: {spilled_bytes} bytes for a {corpus_bytes}-byte corpus"
    );
    assert_eq!(dir_bytes(&tight, &OUTPUTS), dir_bytes(&free, &OUTPUTS));
    let fail = tmp.path().join("fail").display().to_string();
    let args = ["run", quick.as_str(), "--out", fail.as_str()];
    let res = trajforge(&[&args[..], &one_thread[..], &["memory_limit=1MiB"]].concat());
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("memory_limit (1 MiB)") && err.contains("--set memory_limit="),
        "{err}"
    );
}

/// `ignore: [call_ids]` keys on the ingested `content_hash`; on the samples (whose duplicates
/// are exact copies) it finds the same duplicates as the full canonical key.
#[test]
fn exact_dedupe_on_content_hash_matches_the_canonical_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let quick = pipeline("quickstart.yaml");
    let full = tmp.path().join("full");
    let hashed = tmp.path().join("hashed");
    let a = run_pipeline(&quick, &full, &[]);
    let b = run_pipeline(
        &quick,
        &hashed,
        &["--set", "steps.exact_dedupe.ignore=[call_ids]"],
    );
    assert!(a["reasons"]["exact_dedupe"].as_u64() > Some(0));
    assert_eq!(a["reasons"]["exact_dedupe"], b["reasons"]["exact_dedupe"]);
    assert_eq!(kept_ids(&full), kept_ids(&hashed));
}

/// A pipeline over canonical Parquet (no raw inputs, so nothing to ingest) decides exactly as
/// it does over the raw files those rows came from.
#[test]
fn canonical_inputs_run_without_ingest() {
    let tmp = tempfile::tempdir().expect("tmp");
    let samples = root().join("data-samples").display().to_string();
    let canonical = tmp.path().join("canonical");
    crate::common::ingest_into(&[samples], &canonical, None);
    let raw_out = tmp.path().join("raw");
    let can_out = tmp.path().join("can");
    let raw = run_pipeline(&pipeline("quickstart.yaml"), &raw_out, &[]);
    let can = run_pipeline(
        &pipeline("quickstart.yaml"),
        &can_out,
        &[
            "--input",
            canonical.join("trajectories").to_str().expect("utf8"),
        ],
    );
    assert_ledger(&can, &can_out);
    assert_eq!(can["ledger"]["rejected"], 0);
    assert_eq!(
        can["ledger"]["read"].as_u64(),
        Some(
            raw["ledger"]["read"].as_u64().expect("read")
                - raw["ledger"]["rejected"].as_u64().expect("rejected")
        )
    );
    assert!(!kept_ids(&can_out).is_empty());
    assert_eq!(kept_ids(&can_out), kept_ids(&raw_out));
    assert_eq!(filtered_reasons(&can_out), filtered_reasons(&raw_out));
}
