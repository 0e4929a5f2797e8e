//! Helpers of the trainer's tests.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub const TORCH_PIP: &str = "python3 -m pip install torch==2.15.0 transformers==4.57.1 safetensors";

/// Whether python3 has torch and transformers. Under CI (or with TRAJFORGE_REQUIRE_TORCH set)
/// their absence fails the test; elsewhere the test says it skipped and returns.
pub fn torch_available(what: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", "import torch, transformers, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var_os("TRAJFORGE_REQUIRE_TORCH").is_some();
    if !found {
        assert!(
            !required,
            "{what} is required here but python3 cannot import torch/transformers: {TORCH_PIP}"
        );
        eprintln!("SKIPPED {what}: python3 cannot import torch and transformers ({TORCH_PIP})");
    }
    found
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
