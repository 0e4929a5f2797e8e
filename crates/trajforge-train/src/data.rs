//! Packed shards: finding them, checking every row against the packed layout before the first
//! step, and reading single rows back in any order.
//!
//! A stage's `data` is a run folder (its `shards/`), a folder of Parquet files or a glob. The
//! check streams every shard once and refuses the run, naming shard, row and invariant, when a
//! row breaks the layout (`schemas/packed.schema.json`): lengths that disagree, `cu_seqlens`
//! that are not the running sum of `seq_lens`, position ids that do not restart at 0 at each
//! document and count up by one, ids outside the vocabulary, masks other than 0/1, rows longer
//! than the configured maximum. Columns of other integer widths or large lists (files other
//! tools rewrote) are cast to the canonical types. Afterwards rows are read one at a time by
//! row group and row selection, so memory holds one micro-batch, not the corpus.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ListArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use serde::Serialize;

use crate::error::{Result, TrainError};

/// One packed training row.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedRow {
    pub ids: Vec<u32>,
    pub mask: Vec<u8>,
    pub positions: Vec<u32>,
    pub seq_lens: Vec<u32>,
}

impl PackedRow {
    /// `[start, end)` of each document.
    pub fn docs(&self) -> Vec<(usize, usize)> {
        let mut start = 0usize;
        self.seq_lens
            .iter()
            .map(|&n| {
                let d = (start, start + n as usize);
                start += n as usize;
                d
            })
            .collect()
    }

    /// Positions scored by the loss (next token in the same document with `loss_mask = 1`).
    pub fn targets(&self) -> u64 {
        self.docs()
            .iter()
            .map(|&(s, e)| {
                self.mask
                    .get(s + 1..e)
                    .map_or(0, |m| m.iter().filter(|&&v| v == 1).count() as u64)
            })
            .sum()
    }
}

/// Where a row lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RowRef {
    pub shard: usize,
    pub row_group: usize,
    pub offset: usize,
    pub tokens: u32,
    pub targets: u32,
}

/// One shard file, checked.
#[derive(Debug, Clone, Serialize)]
pub struct ShardFile {
    pub path: PathBuf,
    pub rows: u64,
    pub tokens: u64,
    /// Documents (packed samples).
    pub docs: u64,
    pub targets: u64,
    pub bytes: u64,
    pub xxh3_128: String,
    /// The `trajforge.tokenizer` footer key: where the shard's tokenizer came from.
    pub tokenizer: Option<String>,
    #[serde(skip)]
    metadata: ArrowReaderMetadata,
}

/// The checked shards of one stage.
#[derive(Debug, Clone)]
pub struct ShardSet {
    pub files: Vec<ShardFile>,
    pub rows: Vec<RowRef>,
}

/// What a row must satisfy besides the layout.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub vocab_size: usize,
    pub max_tokens: usize,
}

/// The Parquet files a `data` entry names, sorted: a run folder's `shards/`, a folder's
/// `*.parquet`, or a glob.
pub fn resolve(spec: &str, base: &Path) -> Result<Vec<PathBuf>> {
    let path = base.join(spec);
    let dir = if path.join("shards").is_dir() {
        path.join("shards")
    } else {
        path.clone()
    };
    let mut files: Vec<PathBuf> = if dir.is_dir() {
        let entries = std::fs::read_dir(&dir).map_err(|e| TrainError::io(&dir, e))?;
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect()
    } else if path.is_file() {
        vec![path.clone()]
    } else {
        let pattern = path.display().to_string();
        glob::glob(&pattern)
            .map_err(|e| TrainError::Config(format!("data {spec:?}: not a valid glob: {e}")))?
            .filter_map(|p| p.ok())
            .collect()
    };
    files.sort();
    if files.is_empty() {
        return Err(TrainError::Config(format!(
            "data {spec:?}: no Parquet shards at {} (give a run folder, a folder of shards or a glob)",
            path.display()
        )));
    }
    Ok(files)
}

/// Reads and checks every row of `files`.
pub fn check(files: &[PathBuf], limits: Limits) -> Result<ShardSet> {
    let mut set = ShardSet {
        files: Vec::new(),
        rows: Vec::new(),
    };
    for (shard, path) in files.iter().enumerate() {
        let file = check_shard(path, shard, limits, &mut set.rows)?;
        set.files.push(file);
    }
    Ok(set)
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| TrainError::io(path, e))
}

fn check_shard(
    path: &Path,
    shard: usize,
    limits: Limits,
    rows: &mut Vec<RowRef>,
) -> Result<ShardFile> {
    let (bytes, xxh3_128) = fingerprint(path)?;
    let metadata = footer(path)?;
    let tokenizer = tokenizer_key(&metadata);
    let mut out = ShardFile {
        path: path.to_path_buf(),
        rows: 0,
        tokens: 0,
        docs: 0,
        targets: 0,
        bytes,
        xxh3_128,
        tokenizer,
        metadata: metadata.clone(),
    };
    for rg in 0..metadata.metadata().num_row_groups() {
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(open(path)?, metadata.clone())
                .with_row_groups(vec![rg])
                .build()
                .map_err(|e| TrainError::data(path, e))?;
        let mut offset = 0usize;
        for batch in reader {
            let batch =
                batch.map_err(|e| TrainError::data(path, format!("row group {rg}: {e}")))?;
            for (i, row) in rows_of(&batch, path)?.into_iter().enumerate() {
                let index = out.rows as usize + i;
                check_row(&row, limits)
                    .map_err(|m| TrainError::data(path, format!("row {index}: {m}")))?;
                let targets = row.targets();
                rows.push(RowRef {
                    shard,
                    row_group: rg,
                    offset: offset + i,
                    tokens: row.ids.len() as u32,
                    targets: targets as u32,
                });
                out.tokens += row.ids.len() as u64;
                out.docs += row.seq_lens.len() as u64;
                out.targets += targets;
            }
            offset += batch.num_rows();
            out.rows += batch.num_rows() as u64;
        }
    }
    Ok(out)
}

/// The row's invariant that fails, in words.
pub fn check_row(row: &PackedRow, limits: Limits) -> std::result::Result<(), String> {
    let n = row.ids.len();
    if row.mask.len() != n || row.positions.len() != n {
        return Err(format!(
            "lengths disagree: input_ids {n}, loss_mask {}, position_ids {}",
            row.mask.len(),
            row.positions.len()
        ));
    }
    if n > limits.max_tokens {
        return Err(format!(
            "{n} tokens, more than max_tokens {} (raise it or pack shorter rows)",
            limits.max_tokens
        ));
    }
    let total: u64 = row.seq_lens.iter().map(|&l| u64::from(l)).sum();
    if total != n as u64 {
        return Err(format!(
            "sum(seq_lens) = {total} but the row has {n} tokens"
        ));
    }
    if let Some(d) = row.seq_lens.iter().position(|&l| l == 0) {
        return Err(format!("document {d} has length 0"));
    }
    for (d, (start, end)) in row.docs().into_iter().enumerate() {
        let pos = row.positions.get(start..end).unwrap_or_default();
        if let Some(i) = pos.iter().enumerate().position(|(i, &p)| p as usize != i) {
            return Err(format!(
                "position_ids do not restart at cu_seqlens: document {d} (tokens {start}..{end}) has position {} at its token {i}",
                pos.get(i).copied().unwrap_or_default()
            ));
        }
    }
    if let Some((i, id)) = row
        .ids
        .iter()
        .enumerate()
        .find(|(_, id)| **id as usize >= limits.vocab_size)
    {
        return Err(format!(
            "input_ids[{i}] = {id} is not below the vocabulary size {}",
            limits.vocab_size
        ));
    }
    if let Some(i) = row.mask.iter().position(|&m| m > 1) {
        return Err(format!(
            "loss_mask[{i}] = {} (must be 0 or 1)",
            row.mask.get(i).copied().unwrap_or_default()
        ));
    }
    Ok(())
}

fn column(batch: &RecordBatch, name: &str, item: DataType, path: &Path) -> Result<ListArray> {
    let col = batch.column_by_name(name).ok_or_else(|| {
        TrainError::data(
            path,
            format!("no column `{name}`: not a packed shard (see schemas/packed.schema.json)"),
        )
    })?;
    let target = DataType::List(Arc::new(Field::new("item", item.clone(), true)));
    let cast_to: ArrayRef = cast(col, &target).map_err(|e| {
        TrainError::data(
            path,
            format!(
                "column `{name}` is {}, expected a list of {item}: {e}",
                col.data_type()
            ),
        )
    })?;
    let list = cast_to
        .as_any()
        .downcast_ref::<ListArray>()
        .cloned()
        .ok_or_else(|| TrainError::Internal(format!("cast of `{name}` gave no list")))?;
    if list.null_count() > 0 {
        return Err(TrainError::data(
            path,
            format!("column `{name}` has null rows"),
        ));
    }
    Ok(list)
}

fn values<T: arrow::datatypes::ArrowPrimitiveType>(
    list: &ListArray,
    row: usize,
    name: &str,
    path: &Path,
) -> Result<Vec<T::Native>> {
    let v = list.value(row);
    if v.null_count() > 0 {
        return Err(TrainError::data(
            path,
            format!("row {row}: `{name}` has null values"),
        ));
    }
    let prim = v
        .as_any()
        .downcast_ref::<arrow::array::PrimitiveArray<T>>()
        .ok_or_else(|| TrainError::Internal(format!("`{name}` values of the wrong type")))?;
    Ok(prim.values().to_vec())
}

fn nonneg(v: Vec<i32>, name: &str, row: usize, path: &Path) -> Result<Vec<u32>> {
    v.into_iter()
        .enumerate()
        .map(|(i, x)| {
            u32::try_from(x).map_err(|_| {
                TrainError::data(path, format!("row {row}: {name}[{i}] = {x} is negative"))
            })
        })
        .collect()
}

/// The rows of a batch of a packed shard (cast to the canonical types, `cu_seqlens` checked).
pub fn rows_of(batch: &RecordBatch, path: &Path) -> Result<Vec<PackedRow>> {
    use arrow::datatypes::{Int32Type, UInt8Type};
    let ids = column(batch, "input_ids", DataType::Int32, path)?;
    let mask = column(batch, "loss_mask", DataType::UInt8, path)?;
    let pos = column(batch, "position_ids", DataType::Int32, path)?;
    let lens = column(batch, "seq_lens", DataType::Int32, path)?;
    let cu = column(batch, "cu_seqlens", DataType::Int32, path)?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let seq_lens = nonneg(
            values::<Int32Type>(&lens, r, "seq_lens", path)?,
            "seq_lens",
            r,
            path,
        )?;
        let cu_seqlens = values::<Int32Type>(&cu, r, "cu_seqlens", path)?;
        let mut running = vec![0i64];
        running.extend(seq_lens.iter().scan(0i64, |acc, &l| {
            *acc += i64::from(l);
            Some(*acc)
        }));
        if cu_seqlens
            .iter()
            .map(|&c| i64::from(c))
            .ne(running.iter().copied())
        {
            return Err(TrainError::data(
                path,
                format!(
                    "row {r}: cu_seqlens {cu_seqlens:?} is not 0 then the running sum of seq_lens {seq_lens:?}"
                ),
            ));
        }
        out.push(PackedRow {
            ids: nonneg(
                values::<Int32Type>(&ids, r, "input_ids", path)?,
                "input_ids",
                r,
                path,
            )?,
            mask: values::<UInt8Type>(&mask, r, "loss_mask", path)?,
            positions: nonneg(
                values::<Int32Type>(&pos, r, "position_ids", path)?,
                "position_ids",
                r,
                path,
            )?,
            seq_lens,
        });
    }
    Ok(out)
}

impl ShardSet {
    /// Reads one row back (one row group, one selected row).
    pub fn read(&self, r: &RowRef) -> Result<PackedRow> {
        let file = self
            .files
            .get(r.shard)
            .ok_or_else(|| TrainError::Internal(format!("no shard {}", r.shard)))?;
        let selection =
            RowSelection::from(vec![RowSelector::skip(r.offset), RowSelector::select(1)]);
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
            open(&file.path)?,
            file.metadata.clone(),
        )
        .with_row_groups(vec![r.row_group])
        .with_row_selection(selection)
        .build()
        .map_err(|e| TrainError::data(&file.path, e))?;
        for batch in reader {
            let batch = batch.map_err(|e| TrainError::data(&file.path, e))?;
            if let Some(row) = rows_of(&batch, &file.path)?.into_iter().next() {
                return Ok(row);
            }
        }
        Err(TrainError::data(
            &file.path,
            format!(
                "row group {} has no row {} (the shard changed since it was checked)",
                r.row_group, r.offset
            ),
        ))
    }

    pub fn tokens(&self) -> u64 {
        self.files.iter().map(|f| f.tokens).sum()
    }

    /// Mean document length in tokens (0 when empty).
    pub fn mean_doc_len(sets: &[ShardSet]) -> f64 {
        let tokens: u64 = sets.iter().map(ShardSet::tokens).sum();
        let docs: u64 = sets.iter().flat_map(|s| &s.files).map(|f| f.docs).sum();
        if docs == 0 {
            0.0
        } else {
            tokens as f64 / docs as f64
        }
    }
}

/// The `trajforge.tokenizer` footer key of a shard: where its tokenizer came from
/// (`bundled:qwen2.5-coder` or a folder).
pub fn tokenizer_of(path: &Path) -> Result<Option<String>> {
    Ok(tokenizer_key(&footer(path)?))
}

/// The Parquet footer of a shard.
fn footer(path: &Path) -> Result<ArrowReaderMetadata> {
    ArrowReaderMetadata::load(&open(path)?, ArrowReaderOptions::new())
        .map_err(|e| TrainError::data(path, format!("not a readable Parquet file: {e}")))
}

fn tokenizer_key(metadata: &ArrowReaderMetadata) -> Option<String> {
    metadata
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == "trajforge.tokenizer"))
        .and_then(|k| k.value.clone())
}

/// Size and xxh3-128 (as the pipeline's shard index writes it) of a file, read in 1 MiB pieces
/// so a shard of long rows is never held whole.
fn fingerprint(path: &Path) -> Result<(u64, String)> {
    use std::io::Read;
    let mut file = open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| TrainError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        size += n as u64;
    }
    Ok((size, format!("{:032x}", hasher.digest128())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_fingerprint_equals_the_one_shot_checksum_of_the_shard_index() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| TrainError::io("tmp", e))?;
        let path = dir.path().join("f.bin");
        // Over two read buffers, so the streaming state carries across pieces.
        let bytes: Vec<u8> = (0..(3usize << 20) + 17)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        std::fs::write(&path, &bytes).map_err(|e| TrainError::io(&path, e))?;
        let (size, digest) = fingerprint(&path)?;
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(
            digest,
            format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
        );
        Ok(())
    }
}
