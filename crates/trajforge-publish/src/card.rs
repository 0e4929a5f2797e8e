//! The dataset card, `README.md`: YAML front matter the Hub reads (licenses, configs with their
//! data files, `dataset_info` with features and split sizes, size category, tags) and a body a
//! person reads (counts, tokens, filters, sources with licenses and attribution, the per-row
//! `license` column, provenance). Every number comes from the run's statistics and manifest.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde_json::{Value, json};
use trajforge_report::Stats;
use trajforge_report::charts::number;

use crate::shards::ConfigFiles;
use crate::sources::{license_of, needs_attribution};
use crate::{Provenance, PublishError};

pub struct Card<'a> {
    pub name: &'a str,
    pub stats: &'a Stats,
    pub manifest: &'a Value,
    pub configs: &'a [ConfigFiles],
    pub provenance: &'a Provenance,
}

impl Card<'_> {
    /// The whole `README.md`.
    pub fn render(&self) -> Result<String, PublishError> {
        let front = serde_norway::to_string(&ordered(&self.front_matter()))
            .map_err(|e| PublishError::Data(format!("card front matter: {e}")))?;
        let mut body = String::new();
        self.overview(&mut body);
        self.tokens(&mut body);
        self.filters(&mut body);
        self.sources(&mut body);
        self.usage(&mut body);
        self.provenance_section(&mut body);
        Ok(format!("---\n{front}---\n\n{body}"))
    }

    /// Hugging Face license ids of every kept row's source; `other` for sources trajforge does
    /// not know the license of.
    pub fn licenses(&self) -> Vec<String> {
        let mut set = BTreeSet::new();
        for source in &self.stats.sources {
            match license_of(&source.source_dataset) {
                Some(known) => set.insert(known.license.to_string()),
                None => set.insert("other".to_string()),
            };
        }
        set.into_iter().collect()
    }

    fn front_matter(&self) -> Value {
        let licenses = self.licenses();
        let configs: Vec<Value> = self
            .configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut config = json!({
                    "config_name": c.config,
                    "data_files": [{"split": "train", "path": format!("data/{}/train-*", c.config)}],
                });
                if i == 0 {
                    config["default"] = json!(true);
                }
                config
            })
            .collect();
        let info: Vec<Value> = self
            .configs
            .iter()
            .map(|c| {
                json!({
                    "config_name": c.config,
                    "features": c.features,
                    "splits": [{"name": "train", "num_bytes": c.uncompressed_bytes, "num_examples": c.rows}],
                    "download_size": c.bytes,
                    "dataset_size": c.uncompressed_bytes,
                })
            })
            .collect();
        let mut front = json!({
            "pretty_name": self.name,
            "license": if licenses.len() == 1 { json!(licenses[0]) } else { json!(licenses) },
            "language": ["en"],
            "task_categories": ["text-generation"],
            "tags": ["code", "agents", "software-engineering", "trajectories", "sft", "trajforge"],
            "size_categories": [size_category(self.stats.trajectories)],
            "configs": configs,
            "dataset_info": info,
        });
        if licenses.iter().any(|l| l == "other") {
            // The Hub asks for a name with `other`; the card's "Sources and licenses" section
            // lists which rows it covers.
            front["license_name"] = json!("unknown-source-licenses");
        }
        front
    }

    fn overview(&self, out: &mut String) {
        let s = self.stats;
        let pipeline = self
            .manifest
            .get("pipeline")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let version = self
            .manifest
            .get("tool_version")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let _ = writeln!(out, "# {}\n", self.name);
        let _ = writeln!(
            out,
            "Software-engineering agent trajectories (OpenAI chat messages with tool calls) in \
             trajforge's canonical schema, built by trajforge {version} with the pipeline \
             `{pipeline}`: {} of {} input rows kept, {} filtered, {} unreadable.\n",
            s.trajectories,
            s.read.map_or("?".into(), |r| r.to_string()),
            s.filtered,
            s.rejected
        );
        let _ = writeln!(
            out,
            "| config | rows | files | size on disk |\n|---|---:|---:|---:|"
        );
        for c in self.configs {
            let what = if c.packed {
                " (packed training rows)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "| `{}`{what} | {} | {} | {} B |",
                c.config,
                c.rows,
                c.files.len(),
                c.bytes
            );
        }
        out.push('\n');
        if !s.lengths.is_empty() {
            let _ = writeln!(
                out,
                "| per trajectory | mean | p50 | p90 | max |\n|---|---:|---:|---:|---:|"
            );
            for d in &s.lengths {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    d.name,
                    number(d.mean),
                    number(d.p50),
                    number(d.p90),
                    number(d.max)
                );
            }
            let _ = writeln!(out, "\n{} distinct repositories.\n", s.distinct_repos);
        }
    }

    fn tokens(&self, out: &mut String) {
        let Some(p) = &self.stats.packing else {
            return;
        };
        let _ = writeln!(out, "## Tokens\n");
        let tokenize = self.manifest.get("tokenize");
        let dropped = tokenize
            .and_then(|t| t.get("filtered"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(reason, n)| format!("{n} {reason}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into());
        let _ = writeln!(
            out,
            "The `packed` config holds {} training rows of up to {} tokens: {} samples, {} \
             tokens, {} of them supervised ({:.2}%, assistant turns only); packing fill {}. \
             Kept trajectories left out of packing: {dropped}.\n",
            p.rows,
            p.pack_len.map_or("?".into(), |l| l.to_string()),
            p.samples,
            p.tokens,
            p.supervised,
            100.0 * p.supervised_fraction,
            p.fill.map_or("?".into(), |f| format!("{:.2}%", 100.0 * f)),
        );
    }

    fn filters(&self, out: &mut String) {
        if self.stats.funnel.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "## Filters\n\nSteps in order, with the rows each removed:\n"
        );
        let _ = writeln!(
            out,
            "| step | op | rows in | removed |\n|---|---|---:|---:|"
        );
        for f in &self.stats.funnel {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} |",
                f.step, f.op, f.rows_in, f.removed
            );
        }
        out.push('\n');
    }

    fn sources(&self, out: &mut String) {
        let _ = writeln!(out, "## Sources and licenses\n");
        let _ = writeln!(
            out,
            "| source dataset | format | rows | license |\n|---|---|---:|---|"
        );
        let mut attributions = Vec::new();
        for s in &self.stats.sources {
            let license = match license_of(&s.source_dataset) {
                Some(known) => {
                    if needs_attribution(known.license) {
                        attributions.push(known);
                    }
                    known.license.to_string()
                }
                None => "unknown: check the source before redistributing".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {license} |",
                s.source_dataset, s.source_format, s.rows
            );
        }
        out.push('\n');
        attributions.dedup();
        for a in attributions {
            let _ = writeln!(
                out,
                "This dataset contains material from *{}* by {} ({}), licensed under {} \
                 (https://creativecommons.org/licenses/by/4.0/). Changes: rows were filtered, \
                 deduplicated and converted to trajforge's canonical schema; packed rows are \
                 tokenized renderings of the kept rows.\n",
                a.title,
                a.holder,
                a.url.unwrap_or("no public address"),
                a.license.to_uppercase()
            );
        }
        let licenses: Vec<String> = self
            .stats
            .licenses
            .iter()
            .map(|c| format!("{} ({})", c.name, c.count))
            .collect();
        let _ = writeln!(
            out,
            "The per-row `license` column is the license of the repository the trajectory works \
             on, as the source recorded it: {}. It binds the code quoted in that row.\n",
            licenses.join(", ")
        );
    }

    fn usage(&self, out: &mut String) {
        let first = self
            .configs
            .first()
            .map_or("trajectories", |c| c.config.as_str());
        let _ = writeln!(
            out,
            "## Loading\n\n```python\nfrom datasets import load_dataset\nds = \
             load_dataset(\"path/to/this/dataset\", \"{first}\", split=\"train\")\n```\n\nOr \
             with any Parquet reader (pyarrow, polars, DuckDB, DataFusion) over \
             `data/<config>/*.parquet`.\n"
        );
    }

    fn provenance_section(&self, out: &mut String) {
        let p = self.provenance;
        let _ = writeln!(out, "## Provenance\n");
        let _ = writeln!(
            out,
            "- run manifest (inputs with hashes, every step's counts): `{}`",
            p.manifest
        );
        if let Some(yaml) = &p.pipeline_yaml {
            let _ = writeln!(out, "- pipeline as written: `{yaml}`");
        }
        let _ = writeln!(
            out,
            "- pipeline as executed (validated, defaults filled in): `{}`",
            p.resolved_config
        );
        let _ = writeln!(
            out,
            "- SHA-256 of every file: `SHA256SUMS` (`sha256sum -c SHA256SUMS`)"
        );
        if let Some(hash) = self.manifest.get("config_hash").and_then(Value::as_str) {
            let _ = writeln!(out, "- config hash: `{hash}`");
        }
    }
}

/// Keys in the order the Hub's own cards use (`name` before `dtype`, `config_name` first);
/// serde_json's map would sort them alphabetically.
fn ordered(value: &Value) -> serde_norway::Value {
    const FIRST: [&str; 14] = [
        "pretty_name",
        "license",
        "license_name",
        "language",
        "task_categories",
        "tags",
        "size_categories",
        "configs",
        "dataset_info",
        "config_name",
        "name",
        "split",
        "path",
        "dtype",
    ];
    let rank = |k: &str| FIRST.iter().position(|f| *f == k).unwrap_or(FIRST.len());
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| (rank(k), k.as_str()));
            let mut out = serde_norway::Mapping::new();
            for k in keys {
                out.insert(serde_norway::Value::from(k.as_str()), ordered(&map[k]));
            }
            serde_norway::Value::Mapping(out)
        }
        Value::Array(items) => serde_norway::Value::Sequence(items.iter().map(ordered).collect()),
        other => serde_norway::to_value(other).unwrap_or(serde_norway::Value::Null),
    }
}

/// The Hub's size buckets.
pub fn size_category(rows: u64) -> &'static str {
    match rows {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        1_000_000..10_000_000 => "1M<n<10M",
        10_000_000..100_000_000 => "10M<n<100M",
        _ => "100M<n<1B",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_buckets_match_the_hub() {
        assert_eq!(size_category(0), "n<1K");
        assert_eq!(size_category(999), "n<1K");
        assert_eq!(size_category(1_000), "1K<n<10K");
        assert_eq!(size_category(300_000), "100K<n<1M");
    }
}
