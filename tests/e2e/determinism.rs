//! Same inputs, same bytes: across runs and across thread counts.

use crate::common::{output_bytes, root, trajforge};

#[test]
fn ingest_is_byte_identical_across_runs_and_thread_counts() {
    let samples = root().join("data-samples").display().to_string();
    let mut outputs = Vec::new();
    for threads in ["1", "2", "2"] {
        let out = tempfile::tempdir().expect("tmp");
        let dir = out.path().display().to_string();
        // Small parts so that part rolling is part of what must be deterministic.
        let run = trajforge(&[
            "--threads",
            threads,
            "--quiet",
            "ingest",
            &samples,
            "--out",
            &dir,
            "--rows-per-part",
            "16",
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        outputs.push((threads, output_bytes(out.path())));
    }
    let (_, first) = &outputs[0];
    assert!(
        first.len() > 4,
        "several parts written: {:?}",
        first.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (threads, files) in &outputs[1..] {
        assert_eq!(files.len(), first.len());
        for ((name_a, a), (name_b, b)) in first.iter().zip(files) {
            assert_eq!(name_a, name_b);
            assert!(
                a == b,
                "{name_a} differs between --threads 1 and --threads {threads}"
            );
        }
    }
}

#[test]
fn rerun_into_the_same_directory_replaces_old_parts() {
    let out = tempfile::tempdir().expect("tmp");
    let dir = out.path().display().to_string();
    let samples = root().join("data-samples").display().to_string();
    let run = trajforge(&[
        "-q",
        "ingest",
        &samples,
        "--out",
        &dir,
        "--rows-per-part",
        "10",
    ]);
    assert!(run.status.success());
    let nebius = root()
        .join("data-samples/constructed/nebius-openhands.jsonl")
        .display()
        .to_string();
    let run = trajforge(&["-q", "ingest", &nebius, "--out", &dir]);
    assert!(run.status.success());
    let files = output_bytes(out.path());
    assert_eq!(
        files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        vec![
            "trajectories/part-00000.parquet",
            "rejects/part-00000.parquet"
        ]
    );
    assert_eq!(crate::common::trajectories(out.path()).len(), 2);
}

#[test]
fn derived_ids_differ_for_same_named_files_in_different_folders() {
    let dir = tempfile::tempdir().expect("tmp");
    let source = root().join("data-samples/constructed/mini-swe-agent.json");
    for sub in ["zero", "hero"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        std::fs::copy(&source, dir.path().join(sub).join("train.json")).expect("copy");
    }
    let ids: Vec<String> = crate::common::ingest_checked(&[dir.path().display().to_string()], None)
        .rows
        .into_iter()
        .map(|t| t.trajectory_id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    assert!(
        ids.iter().all(|id| id.starts_with("demo-org__pkg-104-")),
        "{ids:?}"
    );
}
