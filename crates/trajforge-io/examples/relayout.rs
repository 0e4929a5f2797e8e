//! Rewrites Parquet files with another row-group layout, for the layout comparison in
//! `bench/sql.sh` (same rows, same order, different row groups and bloom filters).
//!
//! usage: relayout IN.parquet OUT.parquet ROW_GROUP_ROWS ENCODED_MB DECODED_MB BLOOM(0|1)
//! DECODED_MB 0 means unbounded (the layout before decoded bounds existed).

use std::fs::File;
use std::path::Path;

use arrow::record_batch::RecordBatchReader;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use trajforge_io::writer::{ParquetFile, PartOptions, default_bloom_filter_columns};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, rows, encoded_mb, decoded_mb, bloom] = args.as_slice() else {
        return Err(
            "usage: relayout IN OUT ROW_GROUP_ROWS ENCODED_MB DECODED_MB BLOOM(0|1)".into(),
        );
    };
    let decoded_mb: usize = decoded_mb.parse()?;
    let options = PartOptions {
        row_group_rows: rows.parse()?,
        row_group_bytes: encoded_mb.parse::<usize>()? << 20,
        row_group_decoded_bytes: if decoded_mb == 0 {
            usize::MAX
        } else {
            decoded_mb << 20
        },
        bloom_filter_columns: if bloom == "1" {
            default_bloom_filter_columns()
        } else {
            Vec::new()
        },
        ..PartOptions::default()
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(input)?)?
        .with_batch_size(64)
        .build()?;
    let mut out = ParquetFile::create(Path::new(output), reader.schema(), &options)?;
    for batch in reader {
        out.write(&batch?)?;
    }
    out.finish()?;
    Ok(())
}
