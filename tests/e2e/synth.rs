//! The synthetic corpus: deterministic bytes, defect rates as requested, and every planted
//! defect visible in the canonical columns (and no clean row looking defective).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use trajforge_schema::Trajectory;
use trajforge_synth::{Kind, SynthOptions, synth, truth_path};

use crate::common::{ingest_checked, root, trajforge};

fn read_truth(path: &Path) -> Vec<(String, String)> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("truth"))
        .expect("parquet")
        .build()
        .expect("reader");
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let ids = batch.column(0).as_string::<i32>();
        let defects = batch.column(1).as_string::<i32>();
        for i in 0..batch.num_rows() {
            assert!(ids.is_valid(i) && defects.is_valid(i));
            rows.push((ids.value(i).to_string(), defects.value(i).to_string()));
        }
    }
    rows
}

#[test]
fn same_seed_same_bytes_at_any_thread_count() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut files = Vec::new();
    for (threads, name) in [("1", "a.parquet"), ("2", "b.parquet")] {
        let path = dir.path().join(name).display().to_string();
        let run = trajforge(&[
            "--threads",
            threads,
            "-q",
            "synth",
            "--kind",
            "zero",
            "--count",
            "60",
            "--seed",
            "11",
            "--defects",
            "0.3",
            "--out",
            &path,
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        files.push((
            std::fs::read(&path).expect("out"),
            std::fs::read(truth_path(Path::new(&path))).expect("truth"),
        ));
    }
    assert!(files[0] == files[1], "same seed must give identical bytes");
    let other = dir.path().join("c.parquet");
    let opts = SynthOptions {
        kind: Kind::Zero,
        count: 60,
        seed: 12,
        defect_rate: 0.3,
        batch_rows: 16,
    };
    synth(&opts, &other, &|_| {}).expect("synth");
    assert!(
        std::fs::read(&other).expect("c") != files[0].0,
        "another seed gives another corpus"
    );
}

/// What each planted defect must look like once ingested.
fn shows(
    defect: &str,
    t: &Trajectory,
    benchmark_keys: &HashSet<String>,
    hash_count: &HashMap<&str, usize>,
) -> bool {
    let assistant_calls: Vec<usize> = t
        .messages
        .iter()
        .filter(|m| m.role == "assistant")
        .map(|m| m.tool_calls.len())
        .collect();
    match defect {
        "exact_duplicate" => hash_count[t.content_hash.as_str()] > 1,
        "empty_patch" => t.model_patch.as_deref() == Some("") && t.patch_files.is_empty(),
        "too_many_turns" => t.num_assistant_turns > 100,
        "bad_tool_call_count" => assistant_calls.iter().any(|&n| n != 1),
        "touches_tests" => t.patch_files.iter().any(|p| p.starts_with("tests/")),
        "benchmark_instance" => t
            .instance_key
            .as_ref()
            .is_some_and(|k| benchmark_keys.contains(k)),
        "over_length" => t.content_bytes > 600_000,
        "failed_edits" => {
            t.messages
                .iter()
                .filter(|m| {
                    m.role == "tool"
                        && m.content
                            .as_deref()
                            .is_some_and(|c| c.contains("No replacement was performed"))
                })
                .count()
                >= 3
        }
        "forbidden_execution" => t.messages.iter().flat_map(|m| &m.tool_calls).any(|c| {
            c.name == "execute_bash"
                && ["python", "pytest", "pip ", "apt-get", "mypy"]
                    .iter()
                    .any(|w| c.arguments.contains(w))
                && !c.arguments.contains("grep -rn python")
        }),
        // Checked against its source below.
        "near_duplicate" => true,
        other => panic!("unknown defect {other}"),
    }
}

#[test]
fn planted_defects_match_their_rate_and_show_in_the_data() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("zero.parquet");
    let (count, rate) = (600u64, 0.3);
    let summary = synth(
        &SynthOptions {
            kind: Kind::Zero,
            count,
            seed: 5,
            defect_rate: rate,
            batch_rows: 64,
        },
        &path,
        &|_| {},
    )
    .expect("synth");
    let truth = read_truth(&truth_path(&path));
    // Binomial(600, 0.3): sd ≈ 11.2; allow 4.5 sd.
    let expected = count as f64 * rate;
    let sd = (count as f64 * rate * (1.0 - rate)).sqrt();
    assert!(
        (truth.len() as f64 - expected).abs() < 4.5 * sd,
        "{} planted, expected {expected}",
        truth.len()
    );
    assert_eq!(summary.defects.values().sum::<u64>() as usize, truth.len());
    let per_kind: BTreeMap<&str, usize> = truth.iter().fold(BTreeMap::new(), |mut m, (_, d)| {
        *m.entry(d.as_str()).or_default() += 1;
        m
    });
    assert_eq!(
        per_kind.len(),
        10,
        "every defect kind planted: {per_kind:?}"
    );

    let run = ingest_checked(&[path.display().to_string()], None);
    assert_eq!(run.manifest.counts.rejected, 0);
    let rows = run.rows;
    assert_eq!(rows.len() as u64, count);
    let benchmark_keys: HashSet<String> = std::fs::read_to_string(
        root().join("crates/trajforge-assets/data/benchmarks/swe-bench-verified.instance_ids.txt"),
    )
    .expect("ids")
    .lines()
    .filter_map(trajforge_schema::instance_key)
    .collect();
    let mut hash_count: HashMap<&str, usize> = HashMap::new();
    for t in &rows {
        *hash_count.entry(t.content_hash.as_str()).or_default() += 1;
    }
    let planted: HashMap<&str, &str> = truth
        .iter()
        .map(|(id, d)| (id.as_str(), d.as_str()))
        .collect();
    for t in &rows {
        match planted.get(t.trajectory_id.as_str()) {
            Some(defect) => assert!(
                shows(defect, t, &benchmark_keys, &hash_count),
                "{} does not show {defect}",
                t.trajectory_id
            ),
            None => {
                // A clean row shows none of the defects (duplicates aside: an original is clean).
                for defect in [
                    "empty_patch",
                    "too_many_turns",
                    "bad_tool_call_count",
                    "touches_tests",
                    "benchmark_instance",
                    "over_length",
                    "failed_edits",
                    "forbidden_execution",
                ] {
                    assert!(
                        !shows(defect, t, &benchmark_keys, &hash_count),
                        "clean row {} looks like {defect}",
                        t.trajectory_id
                    );
                }
            }
        }
    }
    // A near-duplicate shares instance, turn count and all but a couple of messages with a clean row.
    for t in rows
        .iter()
        .filter(|t| planted.get(t.trajectory_id.as_str()) == Some(&"near_duplicate"))
    {
        let best = rows
            .iter()
            .filter(|o| {
                o.trajectory_id != t.trajectory_id
                    && o.instance_id == t.instance_id
                    && o.num_messages == t.num_messages
            })
            .map(|o| {
                o.messages
                    .iter()
                    .zip(&t.messages)
                    .filter(|(a, b)| a != b)
                    .count()
            })
            .min();
        assert!(
            best.is_some_and(|d| (1..=2).contains(&d)),
            "{}: nearest copy differs in {best:?} messages",
            t.trajectory_id
        );
    }
}
