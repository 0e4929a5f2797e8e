//! What a user's build is made of. The declared minimum Rust version is the real one: the
//! workspace's `rust-version` (and the README's "Rust X+") equals the highest `rust-version`
//! among the locked dependencies, as `cargo metadata --locked` resolves them, so a dependency
//! bump that raises the floor fails here until the declaration follows. Test hooks are in test
//! builds only.

use crate::common::root;

fn version(v: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = v
        .split('.')
        .map(|p| p.parse().expect("numeric version"))
        .collect();
    parts.resize(3, 0);
    parts
}

#[test]
fn rust_version_is_the_locked_dependencies_minimum() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let o = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&o.stdout).expect("metadata JSON");
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let resolved: Vec<&str> = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let mut declared = Vec::new();
    let mut floor: Option<(Vec<u64>, String)> = None;
    for p in meta["packages"].as_array().expect("packages") {
        let (Some(id), Some(rv)) = (p["id"].as_str(), p["rust_version"].as_str()) else {
            continue;
        };
        if members.contains(&id) {
            declared.push(version(rv));
        } else if resolved.contains(&id) && floor.as_ref().is_none_or(|(f, _)| version(rv) > *f) {
            floor = Some((
                version(rv),
                format!("{} {} (rust-version {rv})", p["name"], p["version"]),
            ));
        }
    }
    let (floor, by) = floor.expect("some dependency declares a rust-version");
    assert!(
        !declared.is_empty(),
        "no workspace member declares rust-version"
    );
    for d in &declared {
        assert_eq!(
            d, &floor,
            "Cargo.toml's rust-version must be {floor:?}, set by {by}"
        );
    }
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let said = format!("Rust {}.{}+", floor[0], floor[1]);
    assert!(
        readme.contains(&said),
        "the README must say {said:?} (set by {by})"
    );
}

/// The pause hook of the crash and lock tests (`TRAJFORGE_PAUSE_AFTER`) is a feature only the
/// tests turn on: the binary a user builds (`cargo build`, `cargo install`) does not contain it.
#[test]
fn test_hooks_are_only_in_test_builds() {
    let tree = |edges: &str| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let o = std::process::Command::new(cargo)
            .args(["tree", "--locked", "--offline", "-p", "trajforge-cli"])
            .args(["-e", edges, "-i", "trajforge-pipeline"])
            .current_dir(root())
            .output()
            .expect("cargo tree runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let hook = "trajforge-pipeline feature \"test-hooks\"";
    assert!(
        !tree("normal,features").contains(hook),
        "a normal build pauses on TRAJFORGE_PAUSE_AFTER"
    );
    assert!(
        tree("normal,dev,features").contains(hook),
        "the e2e tests need the hook"
    );
}
