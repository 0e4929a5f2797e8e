//! `trajforge publish`: the quickstart run and a ZERO + HERO run published in the Hugging Face
//! layout, checked file by file — rows equal to the run's, checksums that `sha256sum -c`
//! accepts, a card whose numbers are the manifest's, byte-identical output at any thread count —
//! and loaded by Hugging Face `datasets` both ways (`tests/interop/load_published.py`).

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::DataType;

use crate::common::{
    INTEROP_PIP, batches, python_script, quickstart_run, require_python, root, trajforge,
};

fn publish(run: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "publish", run.to_str().expect("utf8"), "--out"];
    args.push(out.to_str().expect("utf8"));
    args.extend_from_slice(extra);
    let o = trajforge(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("publish --json prints JSON")
}

fn front_matter(dataset: &Path) -> (serde_norway::Value, String) {
    let text = std::fs::read_to_string(dataset.join("README.md")).expect("card");
    let rest = text
        .strip_prefix("---\n")
        .expect("card starts with front matter");
    let (yaml, body) = rest.split_once("\n---\n").expect("front matter ends");
    (
        serde_norway::from_str(yaml).expect("front matter is YAML"),
        body.to_string(),
    )
}

fn string_column(batch: &arrow::record_batch::RecordBatch, name: &str) -> Vec<Option<String>> {
    let column = cast(batch.column_by_name(name).expect("column"), &DataType::Utf8).expect("cast");
    let strings = column.as_string::<i32>();
    (0..strings.len())
        .map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_string()))
        .collect()
}

fn all_rows(dir: &Path) -> arrow::record_batch::RecordBatch {
    let parts = batches(dir);
    concat_batches(&parts[0].schema(), &parts).expect("concat")
}

/// Kept rows of `run` whose `source_dataset` is `source`.
fn kept_rows_from(run: &Path, source: &str) -> usize {
    string_column(&all_rows(&run.join("kept")), "source_dataset")
        .iter()
        .filter(|s| s.as_deref() == Some(source))
        .count()
}

fn sha256sum_check(dataset: &Path) {
    let o = std::process::Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(dataset)
        .output()
        .expect("sha256sum runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn quickstart_run_publishes_in_the_hub_layout_with_an_honest_card() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = quickstart_run(tmp.path());
    let dataset = tmp.path().join("published");
    let summary = publish(&run, &dataset, &["--name", "quickstart-demo"]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).expect("manifest"))
            .expect("json");

    // Data: every kept row, in the run's order, unchanged; the packed rows likewise.
    let kept = all_rows(&run.join("kept"));
    let published = all_rows(&dataset.join("data/trajectories"));
    assert_eq!(published, kept);
    assert_eq!(
        all_rows(&dataset.join("data/packed")),
        all_rows(&run.join("shards"))
    );
    let configs = summary["configs"].as_array().expect("configs");
    let names: Vec<&str> = configs
        .iter()
        .filter_map(|c| c["config"].as_str())
        .collect();
    assert_eq!(names, ["trajectories", "packed"]);
    assert_eq!(configs[1]["rows"], manifest["tokenize"]["packed_rows"]);
    assert!(
        dataset
            .join("data/trajectories/train-00000-of-00001.parquet")
            .is_file()
    );

    // Checksums cover every file and verify with the standard tool.
    sha256sum_check(&dataset);
    let sums = std::fs::read_to_string(dataset.join("SHA256SUMS")).expect("sums");
    assert_eq!(
        sums.lines().count() as u64,
        summary["files"].as_u64().expect("files")
    );

    // Front matter: license of the sources, configs with data files, split sizes.
    let (front, body) = front_matter(&dataset);
    // NVIDIA's rows (CC-BY-4.0) and synth's generated ones (trajforge's Apache-2.0).
    let licenses: Vec<&str> = front["license"]
        .as_sequence()
        .expect("a license list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(licenses, ["apache-2.0", "cc-by-4.0"]);
    assert_eq!(front["pretty_name"].as_str(), Some("quickstart-demo"));
    assert_eq!(
        front["configs"][0]["config_name"].as_str(),
        Some("trajectories")
    );
    assert_eq!(front["configs"][0]["default"].as_bool(), Some(true));
    assert_eq!(
        front["configs"][1]["data_files"][0]["path"].as_str(),
        Some("data/packed/train-*")
    );
    assert_eq!(
        front["dataset_info"][0]["splits"][0]["num_examples"].as_u64(),
        Some(37)
    );
    assert_eq!(front["size_categories"][0].as_str(), Some("n<1K"));

    // Body: the manifest's counts, each step's removals, attribution for CC-BY sources.
    assert!(
        body.contains("37 of 74 input rows kept, 37 filtered"),
        "{body}"
    );
    for step in manifest["steps"].as_array().expect("steps") {
        let removed =
            step["rows_in"].as_u64().expect("in") - step["rows_out"].as_u64().expect("out");
        let row = format!(
            "| {} | `{}` | {} | {removed} |",
            step["name"].as_str().expect("name"),
            step["op"].as_str().expect("op"),
            step["rows_in"]
        );
        assert!(body.contains(&row), "missing {row}");
    }
    assert!(
        body.contains(&format!("{} tokens", manifest["tokenize"]["tokens"])),
        "{body}"
    );
    assert!(body.contains("by NVIDIA (https://huggingface.co/datasets/nvidia/SWE-Zero-openhands-trajectories), licensed under CC-BY-4.0"));
    // Each source's rows as the kept rows record them; synthetic rows are not NVIDIA's.
    for (source, format, license) in [
        (
            "nvidia/SWE-Zero-openhands-trajectories",
            "nvidia_openhands",
            "cc-by-4.0",
        ),
        ("trajforge/synth-zero", "nvidia_openhands", "apache-2.0"),
    ] {
        let rows = kept_rows_from(&run, source);
        assert!(rows > 0, "no kept rows from {source}");
        let line = format!("| {source} | {format} | {rows} | {license} |");
        assert!(body.contains(&line), "missing {line} in {body}");
    }
    assert!(!body.contains("material from *trajforge"), "{body}");
    assert!(
        body.contains("Apache-2.0 (13), BSD-3-Clause (12), MIT (11)"),
        "{body}"
    );

    // Provenance: the manifest byte for byte and the pipeline as written.
    assert_eq!(
        std::fs::read(dataset.join("provenance/manifest.json")).expect("copy"),
        std::fs::read(run.join("manifest.json")).expect("manifest")
    );
    assert_eq!(
        std::fs::read_to_string(dataset.join("provenance/pipeline.yaml")).expect("pipeline"),
        std::fs::read_to_string(root().join("pipelines/quickstart.yaml")).expect("yaml")
    );
}

/// A run over ZERO and HERO inputs (stages set at ingest) publishes configs `zero`, `hero` and
/// `packed`, split into several files when asked, the same bytes at 1 and 3 threads.
#[test]
fn staged_run_publishes_one_config_per_stage_across_shards_deterministically() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = staged_run(tmp.path());
    let a = tmp.path().join("a");
    let flags = [
        "--shard-mb",
        "0.05",
        "--row-group-rows",
        "7",
        "--name",
        "staged",
    ];
    let summary = publish(&run, &a, &flags);
    let names: Vec<&str> = summary["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .filter_map(|c| c["config"].as_str())
        .collect();
    assert_eq!(names, ["zero", "hero", "packed"]);

    let kept = all_rows(&run.join("kept"));
    // `trajforge sql --data DATASET`: `trajectories` spans the stage configs (several files
    // each), `packed` is the packed config, `runs` the embedded manifest.
    let o = trajforge(&[
        "sql",
        "--data",
        a.to_str().expect("utf8"),
        "--format",
        "csv",
        "SELECT (SELECT count(*) FROM trajectories) AS t, \
                (SELECT count(DISTINCT stage) FROM trajectories) AS s, \
                (SELECT count(*) FROM packed) AS p, (SELECT count(*) FROM runs) AS r",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let packed = all_rows(&run.join("shards")).num_rows();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().nth(1),
        Some(format!("{},2,{packed},1", kept.num_rows()).as_str())
    );
    let stages = string_column(&kept, "stage");
    let ids = string_column(&kept, "trajectory_id");
    for stage in ["zero", "hero"] {
        let dir = a.join("data").join(stage);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("config dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        let n = files.len();
        assert!(
            n > 1,
            "{stage}: expected several shards at 0.05 MB, got {n}"
        );
        for (i, f) in files.iter().enumerate() {
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            assert_eq!(name, format!("train-{i:05}-of-{n:05}.parquet"));
            let meta = parquet::file::reader::SerializedFileReader::new(
                std::fs::File::open(f).expect("open"),
            )
            .expect("parquet");
            use parquet::file::reader::FileReader;
            assert!(
                meta.metadata()
                    .row_groups()
                    .iter()
                    .all(|rg| rg.num_rows() <= 7)
            );
        }
        let want: Vec<Option<String>> = ids
            .iter()
            .zip(&stages)
            .filter(|(_, s)| s.as_deref() == Some(stage))
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(
            string_column(&all_rows(&dir), "trajectory_id"),
            want,
            "{stage}"
        );
    }
    let b = tmp.path().join("b");
    let o = trajforge(&[
        "--threads",
        "1",
        "publish",
        run.to_str().expect("utf8"),
        "--out",
        b.to_str().expect("utf8"),
        "--shard-mb",
        "0.05",
        "--row-group-rows",
        "7",
        "--name",
        "staged",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(a.join("README.md")).expect("a"),
        std::fs::read_to_string(b.join("README.md")).expect("b"),
    );
    assert_eq!(
        std::fs::read_to_string(a.join("SHA256SUMS")).expect("a"),
        std::fs::read_to_string(b.join("SHA256SUMS")).expect("b"),
        "same run, different bytes"
    );
    sha256sum_check(&b);
}

#[test]
fn publish_refuses_to_overwrite_or_guess_and_says_what_to_do() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = quickstart_run(tmp.path());
    let out = tmp.path().join("ds");
    std::fs::create_dir(&out).expect("mkdir");
    let o = trajforge(&[
        "publish",
        run.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--overwrite"));
    publish(&run, &out, &["--overwrite"]);
    assert!(out.join("README.md").is_file());
    // A dataset publish wrote is replaced under --overwrite.
    publish(&run, &out, &["--overwrite"]);

    // --overwrite never deletes the run, a folder holding it, or a folder publish did not write.
    let kept_before = crate::common::dir_bytes(&run, &["kept"]);
    let mine = tmp.path().join("notes");
    std::fs::create_dir(&mine).expect("mkdir");
    std::fs::write(mine.join("todo.txt"), "mine").expect("write");
    let spelled = format!(
        "{}/../{}",
        run.display(),
        run.file_name().expect("name").to_string_lossy()
    );
    for (target, says) in [
        (spelled.as_str(), "is or is inside the run folder"),
        (tmp.path().to_str().expect("utf8"), "holds the run folder"),
        (
            mine.to_str().expect("utf8"),
            "replaces only a dataset trajforge published",
        ),
    ] {
        let o = trajforge(&[
            "publish",
            run.to_str().expect("utf8"),
            "--out",
            target,
            "--overwrite",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(says),
            "--out {target}: {err}"
        );
    }
    assert_eq!(
        crate::common::dir_bytes(&run, &["kept"]),
        kept_before,
        "the run changed"
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("todo.txt")).expect("kept"),
        "mine"
    );

    let o = trajforge(&[
        "publish",
        run.join("kept").to_str().expect("utf8"),
        "--out",
        tmp.path().join("x").to_str().expect("utf8"),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("kept") && err.contains("error:"), "{err}");
    // Nothing half-written is left beside --out.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("tmp")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".trajforge-publish-")
        })
        .collect();
    assert!(leftovers.is_empty());
}

/// ZERO and HERO synthetic samples ingested with their stage, through a short pipeline that
/// tokenizes and packs.
pub fn staged_run(tmp: &Path) -> PathBuf {
    for (stage, file) in [("zero", "zero.parquet"), ("hero", "hero.parquet")] {
        let input = root().join("data-samples/synthetic").join(file);
        let o = trajforge(&[
            "ingest",
            input.to_str().expect("utf8"),
            "--stage",
            stage,
            "--out",
            tmp.join(stage).to_str().expect("utf8"),
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let pipeline = tmp.join("staged.yaml");
    std::fs::write(
        &pipeline,
        "version: 1\nsteps:\n  - op: non_empty_patch\n  - op: exact_dedupe\n  - op: write\n    \
         sort_by: [repo, instance_id]\n  - op: tokenize\n    max_tokens: 65536\n  - op: pack\n    \
         pack_len: 65536\n",
    )
    .expect("pipeline");
    let run = tmp.join("run");
    let o = trajforge(&[
        "run",
        pipeline.to_str().expect("utf8"),
        "--input",
        tmp.join("zero/trajectories").to_str().expect("utf8"),
        "--input",
        tmp.join("hero/trajectories").to_str().expect("utf8"),
        "--out",
        run.to_str().expect("utf8"),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    run
}

/// Both kinds of published dataset (the quickstart's, and a staged run's split into several
/// files) load through Hugging Face `datasets.load_dataset`, every config with its declared
/// features (`tests/interop/load_published.py`).
#[test]
#[ignore = "needs python3 with datasets, pyarrow, yaml; CI runs it"]
fn published_datasets_load_with_hugging_face_datasets() {
    require_python("datasets, pyarrow, yaml", INTEROP_PIP);
    let tmp = tempfile::tempdir().expect("tmp");
    let quick = tmp.path().join("quick");
    std::fs::create_dir(&quick).expect("mkdir");
    let run = quickstart_run(&quick);
    let dataset = tmp.path().join("published");
    publish(&run, &dataset, &["--name", "quickstart-demo"]);
    load_with_datasets(&dataset, tmp.path(), 2);
    let staged = tmp.path().join("staged");
    std::fs::create_dir(&staged).expect("mkdir");
    let run = staged_run(&staged);
    let dataset = tmp.path().join("staged-published");
    publish(
        &run,
        &dataset,
        &[
            "--shard-mb",
            "0.05",
            "--row-group-rows",
            "7",
            "--name",
            "staged",
        ],
    );
    load_with_datasets(&dataset, tmp.path(), 3);
}

fn load_with_datasets(dataset: &Path, tmp: &Path, configs: usize) {
    let out = python_script(
        "tests/interop/load_published.py",
        &[dataset.as_os_str()],
        &tmp.join("hf-home"),
    );
    assert!(
        out.contains(&format!(
            "all {configs} configs load with the declared features"
        )),
        "{out}"
    );
}
