//! The published trajectory formats and how each maps to the canonical row.
//!
//! A file's format is detected once, from the field names of its first record (or forced with
//! `--format`); every record is then parsed by that format's reader. Readers take the fields
//! they understand out of a [`raw::RawObject`]; whatever is left — top-level fields and message
//! fields alike — is kept as JSON text in `metadata`, so nothing the source carried is lost.

mod messages;
mod mini_swe_agent;
mod openai;
mod openhands;
pub use openhands::SYNTH_DATASET_PREFIX;
pub mod raw;
mod swe_agent;
mod swe_smith;

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use trajforge_schema::{Stage, Trajectory, fill_derived, instance_key};
use xxhash_rust::xxh3::xxh3_64;

use self::messages::MessageExtras;
use self::raw::RawObject;
use crate::reject::{DataError, Location, RejectKind};

/// A trajectory format trajforge reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// `nvidia/SWE-{Zero,Hero}-openhands-trajectories`.
    NvidiaOpenhands,
    /// `nebius/SWE-rebench-openhands-trajectories`.
    NebiusOpenhands,
    /// `SWE-bench/SWE-smith-trajectories` (messages as a JSON string).
    SweSmith,
    /// SWE-agent `.traj` files.
    SweAgent,
    /// mini-swe-agent trajectories (`AlienKevin/SWE-ZERO-12M-trajectories`).
    MiniSweAgent,
    /// `SWE-Gym/OpenHands-Sampled-Trajectories`.
    SweGym,
    /// Generic OpenAI chat JSONL (`{"messages", "tools"?}` and request logs).
    OpenaiChat,
}

impl Format {
    pub const ALL: [Format; 7] = [
        Format::NvidiaOpenhands,
        Format::NebiusOpenhands,
        Format::SweSmith,
        Format::SweAgent,
        Format::MiniSweAgent,
        Format::SweGym,
        Format::OpenaiChat,
    ];

    /// The name used on the command line and in the `source_format` column.
    pub fn name(self) -> &'static str {
        match self {
            Format::NvidiaOpenhands => "nvidia_openhands",
            Format::NebiusOpenhands => "nebius_openhands",
            Format::SweSmith => "swe_smith",
            Format::SweAgent => "swe_agent",
            Format::MiniSweAgent => "mini_swe_agent",
            Format::SweGym => "swe_gym",
            Format::OpenaiChat => "openai_chat",
        }
    }

    /// Parses a format name (`-` and `_` both accepted).
    pub fn from_name(name: &str) -> Option<Format> {
        let name = name.replace('-', "_").to_ascii_lowercase();
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Recognises a record's format from its field names.
    pub fn detect(obj: &RawObject) -> Option<Format> {
        if obj.has("history") && obj.has("trajectory") && obj.has("info") {
            return Some(Format::SweAgent);
        }
        if obj.has("trajectory") {
            let nebius_only = [
                "tools",
                "exit_status",
                "resolved",
                "gen_tests_correct",
                "pred_passes_gen_tests",
            ];
            return Some(if nebius_only.iter().any(|k| obj.has(k)) {
                Format::NebiusOpenhands
            } else {
                Format::NvidiaOpenhands
            });
        }
        let messages = obj.peek("messages")?;
        Some(if obj.has("trajectory_format") {
            Format::MiniSweAgent
        } else if obj.has("run_id") || obj.has("test_result") {
            Format::SweGym
        } else if messages.get().trim_start().starts_with('"') || obj.has("traj_id") {
            Format::SweSmith
        } else {
            Format::OpenaiChat
        })
    }

    fn default_dataset(self, stage: Option<Stage>) -> Option<&'static str> {
        match self {
            Format::NvidiaOpenhands if stage == Some(Stage::Hero) => {
                Some("nvidia/SWE-Hero-openhands-trajectories")
            }
            Format::NvidiaOpenhands => Some("nvidia/SWE-Zero-openhands-trajectories"),
            Format::NebiusOpenhands => Some("nebius/SWE-rebench-openhands-trajectories"),
            Format::SweSmith => Some("SWE-bench/SWE-smith-trajectories"),
            Format::SweGym => Some("SWE-Gym/OpenHands-Sampled-Trajectories"),
            Format::SweAgent | Format::MiniSweAgent | Format::OpenaiChat => None,
        }
    }

    /// Parses one record into a canonical row.
    pub fn parse(self, obj: RawObject, ctx: &RecordCtx) -> Result<Trajectory, DataError> {
        let draft = match self {
            Format::NvidiaOpenhands => openhands::parse_nvidia(obj)?,
            Format::NebiusOpenhands => openhands::parse_nebius(obj)?,
            Format::SweGym => openhands::parse_swe_gym(obj)?,
            Format::SweSmith => swe_smith::parse(obj)?,
            Format::SweAgent => swe_agent::parse(obj, ctx)?,
            Format::MiniSweAgent => mini_swe_agent::parse(obj)?,
            Format::OpenaiChat => openai::parse(obj)?,
        };
        draft.finish(self, ctx)
    }
}

/// Where a record came from and the run's settings that shape every row.
#[derive(Debug, Clone)]
pub struct RecordCtx<'a> {
    /// The input path as given.
    pub file: &'a str,
    /// The file's parent folder and name (`data/train.jsonl`): stable when a dataset moves.
    pub file_name: &'a str,
    pub location: Location,
    pub stage: Option<Stage>,
    pub source: Option<&'a str>,
}

/// Parses a raw record with a known or detected format.
pub fn parse_record(
    json: &RawValue,
    format: Option<Format>,
    ctx: &RecordCtx,
) -> Result<Trajectory, DataError> {
    let obj = RawObject::parse(json, "")?;
    let format = match format.or_else(|| Format::detect(&obj)) {
        Some(f) => f,
        None => {
            let keys: Vec<&str> = obj.keys().collect();
            return Err(DataError::new(
                RejectKind::UnrecognisedFormat,
                format!(
                    "record matches no known trajectory format (fields: {}); pass --format to choose one",
                    keys.join(", ")
                ),
            ));
        }
    };
    format.parse(obj, ctx)
}

/// A row being built by a reader, with the source fields it did not use.
struct Draft {
    t: Trajectory,
    extras: MessageExtras,
    rest: BTreeMap<String, Box<RawValue>>,
}

impl Draft {
    fn new(scaffold: Option<&str>) -> Draft {
        let t = Trajectory {
            scaffold: scaffold.map(str::to_string),
            ..Trajectory::empty()
        };
        Draft {
            t,
            extras: MessageExtras::new(),
            rest: BTreeMap::new(),
        }
    }

    fn keep_rest(&mut self, obj: RawObject) {
        self.rest.extend(obj.into_rest());
    }

    fn finish(self, format: Format, ctx: &RecordCtx) -> Result<Trajectory, DataError> {
        let Draft {
            mut t,
            extras,
            mut rest,
        } = self;
        if t.messages.is_empty() {
            return Err(DataError::new(
                RejectKind::MissingField,
                "record has no messages",
            ));
        }
        if !extras.is_empty() {
            rest.insert("message_extras".into(), raw::to_raw(&extras)?);
        }
        if !rest.is_empty() {
            t.metadata = Some(raw::to_raw(&rest)?.get().to_string());
        }
        t.source_format = format.name().to_string();
        t.stage = ctx.stage;
        // The user's --source first, then what the record says of itself, then the format's.
        t.source_dataset = ctx
            .source
            .map(str::to_string)
            .or(t.source_dataset.take())
            .or_else(|| format.default_dataset(ctx.stage).map(str::to_string));
        if t.repo.is_none() {
            t.repo = t
                .instance_id
                .as_deref()
                .and_then(instance_key)
                .and_then(|k| k.split(['#', '@']).next().map(str::to_string));
        }
        if t.trajectory_id.is_empty() {
            t.trajectory_id = derived_id(t.instance_id.as_deref(), ctx);
        }
        fill_derived(&mut t);
        Ok(t)
    }
}

/// A stable id for sources without one: the instance id plus a hash of folder, file name and
/// position.
fn derived_id(instance_id: Option<&str>, ctx: &RecordCtx) -> String {
    let position = match ctx.location {
        Location::Row(r) => format!("row:{r}"),
        Location::Line(l) => format!("line:{l}"),
        Location::File => "file".to_string(),
    };
    let hash = xxh3_64(format!("{}\u{1f}{position}", ctx.file_name).as_bytes());
    format!("{}-{hash:016x}", instance_id.unwrap_or("traj"))
}
