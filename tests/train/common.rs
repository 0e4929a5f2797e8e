//! Helpers of the trainer's tests.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub const TORCH_PIP: &str = "python3 -m pip install torch==2.15.0 transformers==4.57.1 safetensors";

/// Fails the test, with the pip line, unless python3 imports torch, transformers and
/// safetensors. The tests that call it are `#[ignore]`d: a plain `cargo test` lists them as
/// ignored; CI installs torch and runs them with `-- --include-ignored`.
pub fn require_torch() {
    let o = Command::new("python3")
        .args(["-c", "import torch, transformers, safetensors"])
        .output();
    let why = match o {
        Ok(o) if o.status.success() => return,
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => format!("python3 does not start: {e}"),
    };
    panic!(
        "this test needs python3 with torch and transformers; install them with `{TORCH_PIP}` ({why})"
    );
}

/// Runs a Python script of the repository offline; returns stdout, panics with stderr.
pub fn python(script: &str, args: &[&Path]) -> String {
    let o = Command::new("python3")
        .arg(root().join(script))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .env("OMP_NUM_THREADS", "2")
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
