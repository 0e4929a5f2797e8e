//! The two on-disk layouts a trainer reads, as Arrow schemas, and their zstd Parquet writer.
//!
//! - **tokenized** (one row per trajectory): `trajectory_id`, `input_ids` (int32), `loss_mask`
//!   (uint8, 1 = the token carries the loss), `num_tokens`, `num_supervised`,
//!   `dropped_exchanges`.
//! - **packed** (one row per training sequence of at most `pack_len` tokens, no padding stored):
//!   `input_ids`, `loss_mask`, `position_ids` (restarting at 0 for every document), `seq_lens`,
//!   `cu_seqlens` (0, then cumulative ends: `len(seq_lens) + 1` values, the last one
//!   `num_tokens`), `trajectory_ids` (one per document, in order), `num_tokens`,
//!   `num_supervised`, `num_samples`.
//!
//! `schemas/packed.schema.json` documents the packed layout and is generated from here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, ListBuilder, RecordBatch, StringBuilder, UInt8Builder, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use trajforge_io::source::fingerprint_file;
use trajforge_io::writer::{ParquetFile, PartOptions};

use crate::TokenizeError;
use crate::sample::Sample;

/// Version of the packed and tokenized layouts (in each file's metadata).
pub const LAYOUT_VERSION: u32 = 1;

pub(crate) fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, false)))
}

/// Columns of the tokenized layout, with what each holds.
pub const TOKENIZED_COLUMNS: &[(&str, &str)] = &[
    ("trajectory_id", "the trajectory's id"),
    ("input_ids", "token ids of the rendered conversation"),
    (
        "loss_mask",
        "1 where the token carries the loss (assistant turns), else 0",
    ),
    ("num_tokens", "length of input_ids"),
    ("num_supervised", "number of 1s in loss_mask"),
    (
        "dropped_exchanges",
        "oldest exchanges removed by truncate_turns (0 when none)",
    ),
];

/// Columns of the packed layout, with what each holds.
pub const PACKED_COLUMNS: &[(&str, &str)] = &[
    (
        "input_ids",
        "token ids of the documents, concatenated; no padding is stored",
    ),
    ("loss_mask", "1 where the token carries the loss, else 0"),
    (
        "position_ids",
        "position of each token within its own document (restarts at 0)",
    ),
    ("seq_lens", "length of each document, in order"),
    (
        "cu_seqlens",
        "0 then the cumulative document ends (len(seq_lens)+1 values), as flash-attention's varlen kernels take them",
    ),
    (
        "trajectory_ids",
        "the trajectory id of each document, in order",
    ),
    ("num_tokens", "length of input_ids (at most pack_len)"),
    ("num_supervised", "number of 1s in loss_mask"),
    ("num_samples", "number of documents"),
];

pub fn tokenized_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("trajectory_id", DataType::Utf8, false),
        Field::new("input_ids", list_of(DataType::Int32), false),
        Field::new("loss_mask", list_of(DataType::UInt8), false),
        Field::new("num_tokens", DataType::UInt32, false),
        Field::new("num_supervised", DataType::UInt32, false),
        Field::new("dropped_exchanges", DataType::UInt32, false),
    ]))
}

pub fn packed_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("input_ids", list_of(DataType::Int32), false),
        Field::new("loss_mask", list_of(DataType::UInt8), false),
        Field::new("position_ids", list_of(DataType::Int32), false),
        Field::new("seq_lens", list_of(DataType::Int32), false),
        Field::new("cu_seqlens", list_of(DataType::Int32), false),
        Field::new("trajectory_ids", list_of(DataType::Utf8), false),
        Field::new("num_tokens", DataType::UInt32, false),
        Field::new("num_supervised", DataType::UInt32, false),
        Field::new("num_samples", DataType::UInt32, false),
    ]))
}

/// A sample with the id it came from.
#[derive(Debug, Clone)]
pub struct Doc {
    pub trajectory_id: String,
    pub sample: Sample,
}

pub(crate) fn ids_builder() -> ListBuilder<Int32Builder> {
    ListBuilder::new(Int32Builder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Int32,
        false,
    )))
}

pub(crate) fn mask_builder() -> ListBuilder<UInt8Builder> {
    ListBuilder::new(UInt8Builder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::UInt8,
        false,
    )))
}

fn batch(schema: SchemaRef, cols: Vec<ArrayRef>) -> Result<RecordBatch, TokenizeError> {
    RecordBatch::try_new(schema, cols).map_err(|e| TokenizeError::Internal(e.to_string()))
}

/// Tokenized rows as a batch.
pub fn tokenized_batch(docs: &[Doc]) -> Result<RecordBatch, TokenizeError> {
    let mut ids = StringBuilder::new();
    let (mut input, mut mask) = (ids_builder(), mask_builder());
    for d in docs {
        ids.append_value(&d.trajectory_id);
        input.append_value(d.sample.input_ids.iter().map(|&t| Some(t as i32)));
        mask.append_value(d.sample.loss_mask.iter().map(|&b| Some(b)));
    }
    let u32s = |f: fn(&Doc) -> u32| Arc::new(UInt32Array::from_iter_values(docs.iter().map(f)));
    batch(
        tokenized_schema(),
        vec![
            Arc::new(ids.finish()),
            Arc::new(input.finish()),
            Arc::new(mask.finish()),
            u32s(|d| d.sample.total_tokens()),
            u32s(|d| d.sample.supervised_tokens),
            u32s(|d| d.sample.dropped_exchanges),
        ],
    )
}

/// Packed rows (each a list of documents) as a batch.
pub fn packed_batch(rows: &[Vec<Doc>]) -> Result<RecordBatch, TokenizeError> {
    let (mut input, mut mask, mut pos) = (ids_builder(), mask_builder(), ids_builder());
    let (mut lens, mut cu) = (ids_builder(), ids_builder());
    let mut tids = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Utf8,
        false,
    )));
    let (mut ntok, mut nsup, mut ndoc) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        let mut end = 0i32;
        cu.values().append_value(0);
        for d in row {
            let s = &d.sample;
            input
                .values()
                .extend(s.input_ids.iter().map(|&t| Some(t as i32)));
            mask.values().append_slice(&s.loss_mask);
            pos.values().extend((0..s.total_tokens() as i32).map(Some));
            lens.values().append_value(s.total_tokens() as i32);
            end += s.total_tokens() as i32;
            cu.values().append_value(end);
            tids.values().append_value(&d.trajectory_id);
        }
        for b in [&mut input, &mut pos, &mut lens, &mut cu] {
            b.append(true);
        }
        mask.append(true);
        tids.append(true);
        ntok.push(end as u32);
        nsup.push(row.iter().map(|d| d.sample.supervised_tokens).sum::<u32>());
        ndoc.push(row.len() as u32);
    }
    batch(
        packed_schema(),
        vec![
            Arc::new(input.finish()),
            Arc::new(mask.finish()),
            Arc::new(pos.finish()),
            Arc::new(lens.finish()),
            Arc::new(cu.finish()),
            Arc::new(tids.finish()),
            Arc::new(UInt32Array::from(ntok)),
            Arc::new(UInt32Array::from(nsup)),
            Arc::new(UInt32Array::from(ndoc)),
        ],
    )
}

/// One finished shard, as listed in the run manifest's index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name inside the shard folder.
    pub file: String,
    pub rows: u64,
    pub tokens: u64,
    pub supervised: u64,
    pub bytes: u64,
    /// xxh3-128 of the file's bytes (32 hex digits).
    pub xxh3_128: String,
}

/// Writes batches into numbered zstd Parquet shards of at most `rows_per_shard` rows (each
/// written under a temporary name and renamed when complete) and indexes them.
pub struct ShardWriter {
    dir: PathBuf,
    stem: &'static str,
    schema: SchemaRef,
    /// `rows_per_part` is the shard size.
    options: PartOptions,
    current: Option<Open>,
    done: Vec<ShardInfo>,
}

struct Open {
    file: ParquetFile,
    name: String,
    rows: u64,
    tokens: u64,
    supervised: u64,
}

impl std::fmt::Debug for ShardWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardWriter")
            .field("dir", &self.dir)
            .finish()
    }
}

impl ShardWriter {
    /// Shards named `<stem>-00000.parquet`, … in `dir`; `metadata` goes into each footer.
    pub fn new(
        dir: &Path,
        stem: &'static str,
        schema: SchemaRef,
        rows_per_shard: usize,
        metadata: Vec<(String, String)>,
    ) -> Result<ShardWriter, TokenizeError> {
        let mut kv = vec![(
            "trajforge.layout_version".to_string(),
            LAYOUT_VERSION.to_string(),
        )];
        kv.extend(metadata);
        let options = PartOptions {
            rows_per_part: rows_per_shard.max(1),
            // Packed rows are large (up to pack_len tokens each): small groups keep the
            // writer's buffer and a reader's first batch small.
            row_group_rows: 64,
            metadata: kv,
            ..PartOptions::default()
        };
        Ok(ShardWriter {
            dir: dir.to_path_buf(),
            stem,
            schema,
            options,
            current: None,
            done: Vec::new(),
        })
    }

    fn open(&mut self) -> Result<&mut Open, TokenizeError> {
        if self.current.is_none() {
            let name = format!("{}-{:05}.parquet", self.stem, self.done.len());
            let path = self.dir.join(&name);
            let file = ParquetFile::create(&path, self.schema.clone(), &self.options)
                .map_err(|e| TokenizeError::Internal(e.to_string()))?;
            self.current = Some(Open {
                file,
                name,
                rows: 0,
                tokens: 0,
                supervised: 0,
            });
        }
        self.current
            .as_mut()
            .ok_or_else(|| TokenizeError::Internal("no open shard".into()))
    }

    /// Appends rows (a batch of either layout; its `num_tokens` / `num_supervised` columns feed
    /// the index).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), TokenizeError> {
        let mut at = 0;
        while at < batch.num_rows() {
            let limit = self.options.rows_per_part;
            let open = self.open()?;
            let take = (limit - open.rows as usize).min(batch.num_rows() - at);
            let part = batch.slice(at, take);
            open.tokens += sum_u32(&part, "num_tokens");
            open.supervised += sum_u32(&part, "num_supervised");
            open.file
                .write(&part)
                .map_err(|e| TokenizeError::Internal(e.to_string()))?;
            open.rows += take as u64;
            at += take;
            if open.rows as usize >= limit {
                self.close()?;
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), TokenizeError> {
        let Some(open) = self.current.take() else {
            return Ok(());
        };
        open.file
            .finish()
            .map_err(|e| TokenizeError::Internal(e.to_string()))?;
        // Streamed in 1 MiB reads: a shard of 131k-token rows is hundreds of MB.
        let fp = fingerprint_file(&self.dir.join(&open.name))
            .map_err(|e| TokenizeError::Internal(e.to_string()))?;
        self.done.push(ShardInfo {
            file: open.name,
            rows: open.rows,
            tokens: open.tokens,
            supervised: open.supervised,
            bytes: fp.bytes,
            xxh3_128: fp.xxh3_128,
        });
        Ok(())
    }

    /// Closes the last shard and returns the index.
    pub fn finish(mut self) -> Result<Vec<ShardInfo>, TokenizeError> {
        self.close()?;
        Ok(self.done)
    }
}

fn sum_u32(batch: &RecordBatch, column: &str) -> u64 {
    batch
        .column_by_name(column)
        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
        .map_or(0, |a| a.values().iter().map(|&v| v as u64).sum())
}

pub(crate) fn io(path: &Path, source: std::io::Error) -> TokenizeError {
    TokenizeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int32Type;

    fn doc(id: &str, ids: &[u32], mask: &[u8]) -> Doc {
        Doc {
            trajectory_id: id.into(),
            sample: Sample {
                input_ids: ids.to_vec(),
                loss_mask: mask.to_vec(),
                supervised_tokens: mask.iter().map(|&b| b as u32).sum(),
                dropped_exchanges: 0,
            },
        }
    }

    #[test]
    fn packed_rows_carry_positions_lengths_and_boundaries() {
        let rows = vec![vec![
            doc("a", &[1, 2, 3], &[0, 1, 1]),
            doc("b", &[4, 5], &[1, 0]),
        ]];
        let b = packed_batch(&rows).expect("batch");
        let ints = |c: &str| -> Vec<i32> {
            let l = b.column_by_name(c).expect("column").as_list::<i32>();
            l.value(0).as_primitive::<Int32Type>().values().to_vec()
        };
        assert_eq!(ints("input_ids"), [1, 2, 3, 4, 5]);
        assert_eq!(ints("position_ids"), [0, 1, 2, 0, 1]);
        assert_eq!(ints("seq_lens"), [3, 2]);
        assert_eq!(ints("cu_seqlens"), [0, 3, 5]);
        assert_eq!(sum_u32(&b, "num_supervised"), 3);
        assert_eq!(sum_u32(&b, "num_tokens"), 5);
        assert_eq!(b.schema(), packed_schema());
        let t = b
            .column_by_name("trajectory_ids")
            .expect("col")
            .as_list::<i32>();
        assert_eq!(t.value(0).len(), 2);
    }

    #[test]
    fn shards_split_at_the_row_limit_and_checksum_their_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let docs: Vec<Doc> = (0..5)
            .map(|i| doc(&format!("t{i}"), &[i, i + 1], &[0, 1]))
            .collect();
        let mut w =
            ShardWriter::new(dir.path(), "part", tokenized_schema(), 2, vec![]).expect("writer");
        w.write(&tokenized_batch(&docs).expect("batch"))
            .expect("write");
        let index = w.finish().expect("finish");
        let rows: Vec<u64> = index.iter().map(|s| s.rows).collect();
        assert_eq!(rows, [2, 2, 1]);
        assert_eq!(index.iter().map(|s| s.tokens).sum::<u64>(), 10);
        for s in &index {
            let bytes = std::fs::read(dir.path().join(&s.file)).expect("shard exists");
            assert_eq!(
                s.xxh3_128,
                format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
            );
        }
        let leftovers = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    /// Row `r` of list column `c` as i64s (ids, masks and positions alike).
    fn list_at(b: &RecordBatch, c: &str, r: usize) -> Vec<i64> {
        let l = b
            .column_by_name(c)
            .expect("column")
            .as_list::<i32>()
            .value(r);
        let v = arrow::compute::cast(&l, &DataType::Int64).expect("cast");
        v.as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Through the packer and the packed layout, every sample comes back whole, once, with
        /// its own tokens and mask bits, positions restarting at its start, rows within
        /// capacity.
        #[test]
        fn packing_conserves_every_token_and_mask_bit(
            samples in proptest::collection::vec(
                (1usize..300, proptest::collection::vec(proptest::bool::ANY, 1..300)),
                1..80,
            ),
            pack_len in 300u32..1200,
            lookahead in 1usize..40,
        ) {
            let docs: Vec<Doc> = samples
                .iter()
                .enumerate()
                .map(|(i, (len, bits))| {
                    let ids: Vec<u32> = (0..*len).map(|k| (i * 1000 + k) as u32).collect();
                    let mask: Vec<u8> = (0..*len).map(|k| u8::from(bits[k % bits.len()])).collect();
                    doc(&format!("t{i}"), &ids, &mask)
                })
                .collect();
            let cfg = crate::pack::PackConfig { lookahead, max_open: 4, ..crate::pack::PackConfig::new(pack_len) };
            let mut packer = crate::pack::Packer::new(cfg).expect("config");
            let mut rows = Vec::new();
            for d in docs.clone() {
                let len = d.sample.total_tokens();
                let key = d.trajectory_id.clone();
                rows.extend(packer.push(len, key.as_bytes(), d).expect("fits"));
            }
            rows.extend(packer.finish());
            let rows: Vec<Vec<Doc>> = rows.into_iter().map(|b| b.items).collect();
            let b = packed_batch(&rows).expect("batch");
            let mut seen = vec![false; docs.len()];
            for r in 0..b.num_rows() {
                let (ids, mask, pos) = (list_at(&b, "input_ids", r), list_at(&b, "loss_mask", r), list_at(&b, "position_ids", r));
                let cu = list_at(&b, "cu_seqlens", r);
                let tids = b.column_by_name("trajectory_ids").expect("ids").as_list::<i32>().value(r);
                let tids = tids.as_string::<i32>();
                proptest::prop_assert!(ids.len() <= pack_len as usize);
                proptest::prop_assert_eq!(ids.len(), mask.len());
                for (d, w) in cu.windows(2).enumerate() {
                    let (a, z) = (w[0] as usize, w[1] as usize);
                    let i: usize = tids.value(d)[1..].parse().expect("index");
                    let want = &docs[i].sample;
                    proptest::prop_assert!(!seen[i], "sample packed twice");
                    seen[i] = true;
                    let got_ids: Vec<u32> = ids[a..z].iter().map(|&t| t as u32).collect();
                    let got_mask: Vec<u8> = mask[a..z].iter().map(|&m| m as u8).collect();
                    proptest::prop_assert_eq!(&got_ids, &want.input_ids);
                    proptest::prop_assert_eq!(&got_mask, &want.loss_mask);
                    proptest::prop_assert!(pos[a..z].iter().enumerate().all(|(k, &p)| p == k as i64));
                }
            }
            proptest::prop_assert!(seen.iter().all(|&s| s), "every sample packed");
        }
    }
}
