//! # trajforge-assets
//!
//! The data files the product ships with, compiled in so every crate that needs one packages and
//! builds on its own: the instance-id lists of the SWE-bench evaluation sets that `decontaminate`
//! removes and synth plants (`data/benchmarks/`, provenance and licenses in its `SOURCES.md`),
//! and the OpenHands tool catalogue that the chat template renders when a row carries no tool
//! definitions of its own (`data/tools/`).

/// SWE-bench Verified's 500 instance ids, one per line, byte-sorted.
pub const SWE_BENCH_VERIFIED_IDS: &str =
    include_str!("../data/benchmarks/swe-bench-verified.instance_ids.txt");
/// SWE-bench Lite's 300 instance ids, one per line, byte-sorted.
pub const SWE_BENCH_LITE_IDS: &str =
    include_str!("../data/benchmarks/swe-bench-lite.instance_ids.txt");
/// SWE-bench Multilingual's 300 instance ids, one per line, byte-sorted.
pub const SWE_BENCH_MULTILINGUAL_IDS: &str =
    include_str!("../data/benchmarks/swe-bench-multilingual.instance_ids.txt");
/// The OpenHands tool catalogue (OpenAI function definitions), as JSON.
pub const OPENHANDS_TOOLS: &str = include_str!("../data/tools/openhands.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_are_sorted_unique_and_as_long_as_their_sets() {
        for (ids, count) in [
            (SWE_BENCH_VERIFIED_IDS, 500),
            (SWE_BENCH_LITE_IDS, 300),
            (SWE_BENCH_MULTILINGUAL_IDS, 300),
        ] {
            let lines: Vec<&str> = ids.lines().collect();
            assert_eq!(lines.len(), count);
            assert!(
                lines.windows(2).all(|w| w[0] < w[1]),
                "sorted, no duplicates"
            );
            assert!(lines.iter().all(|l| l.contains("__")), "owner__repo-N ids");
        }
    }

    #[test]
    fn the_tool_catalogue_is_a_json_list_of_functions() {
        let tools: serde_json::Value = serde_json::from_str(OPENHANDS_TOOLS).expect("JSON");
        let tools = tools.as_array().expect("a list");
        assert!(!tools.is_empty());
        assert!(tools.iter().all(|t| t["function"]["name"].is_string()));
    }
}
