//! Licenses and attribution of the trajectory datasets trajforge reads, keyed by the
//! `source_dataset` value ingest records. Each entry was checked against the dataset's own card
//! on the Hugging Face Hub (its `license:` front matter); a source not listed here is reported
//! as unknown in the card, never guessed.

/// What a published dataset must say about one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLicense {
    pub dataset: &'static str,
    /// Hugging Face license id.
    pub license: &'static str,
    pub holder: &'static str,
    pub title: &'static str,
    pub url: &'static str,
}

const KNOWN: [SourceLicense; 4] = [
    SourceLicense {
        dataset: "nvidia/SWE-Zero-openhands-trajectories",
        license: "cc-by-4.0",
        holder: "NVIDIA",
        title: "SWE-Zero OpenHands trajectories",
        url: "https://huggingface.co/datasets/nvidia/SWE-Zero-openhands-trajectories",
    },
    SourceLicense {
        dataset: "nvidia/SWE-Hero-openhands-trajectories",
        license: "cc-by-4.0",
        holder: "NVIDIA",
        title: "SWE-Hero OpenHands trajectories",
        url: "https://huggingface.co/datasets/nvidia/SWE-Hero-openhands-trajectories",
    },
    SourceLicense {
        dataset: "nebius/SWE-rebench-openhands-trajectories",
        license: "cc-by-4.0",
        holder: "Nebius",
        title: "SWE-rebench OpenHands trajectories",
        url: "https://huggingface.co/datasets/nebius/SWE-rebench-openhands-trajectories",
    },
    SourceLicense {
        dataset: "nebius/SWE-agent-trajectories",
        license: "cc-by-4.0",
        holder: "Nebius",
        title: "SWE-agent trajectories",
        url: "https://huggingface.co/datasets/nebius/SWE-agent-trajectories",
    },
];

/// The license of `source_dataset`, when trajforge knows it.
pub fn license_of(source_dataset: &str) -> Option<&'static SourceLicense> {
    KNOWN.iter().find(|s| s.dataset == source_dataset)
}

/// CC-BY requires credit, a link to the license and an indication of changes.
pub fn needs_attribution(license: &str) -> bool {
    license.starts_with("cc-by")
}
