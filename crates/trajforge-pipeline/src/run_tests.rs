//! Runs through the library: what the progress hooks report.

use std::sync::Mutex;

use crate::run::{RunProgress, run};
use crate::{LoadOptions, RunOptions, load};

/// Records the last value each step bar got.
#[derive(Default)]
struct Recorder {
    names: Mutex<Vec<String>>,
    total: Mutex<u64>,
    last: Mutex<Vec<(u64, u64)>>,
}

impl RunProgress for Recorder {
    fn steps(&self, names: &[String], total_rows: u64) {
        *self.names.lock().expect("lock") = names.to_vec();
        *self.total.lock().expect("lock") = total_rows;
        *self.last.lock().expect("lock") = vec![(0, 0); names.len()];
    }
    fn step_advance(&self, index: usize, rows: u64, bytes: u64) {
        self.last.lock().expect("lock")[index] = (rows, bytes);
    }
    fn ingest(&self) -> &dyn trajforge_io::Progress {
        &trajforge_io::ingest::NoProgress
    }
}

/// Every step judges every row exactly once (filters see all rows; group steps see all rows,
/// flagging only live ones), so each step bar ends at the row count, and its bytes are the
/// rows' `content_bytes`.
#[test]
fn step_bars_end_at_every_row_once() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().expect("tmp");
    let pipeline = load(
        &root.join("pipelines/zero.yaml"),
        &LoadOptions {
            inputs: vec![root.join("data-samples").display().to_string()],
            output: Some(dir.path().to_path_buf()),
            ..Default::default()
        },
    )
    .expect("zero.yaml loads");
    let progress = Recorder::default();
    let opts = RunOptions {
        out: dir.path().to_path_buf(),
        threads: 2,
        resume: false,
        command: String::new(),
    };
    let manifest = run(&pipeline, &opts, &progress).expect("runs");
    let rows = manifest.ledger.read - manifest.ledger.rejected;
    let names = progress.names.lock().expect("lock").clone();
    let expected: Vec<String> = pipeline.steps.iter().map(|s| s.ctx.name.clone()).collect();
    assert_eq!(names, expected);
    assert_eq!(*progress.total.lock().expect("lock"), rows);
    let last = progress.last.lock().expect("lock").clone();
    let bytes = last[0].1;
    assert!(bytes > 0);
    for (name, (r, b)) in names.iter().zip(&last) {
        assert_eq!((*r, *b), (rows, bytes), "step {name}");
    }
}
