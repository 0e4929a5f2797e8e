//! Shards that break the packed layout stop the run before the first step, naming the shard,
//! the row and the invariant; none panics. The rows are written with arrow as another tool
//! would write them (plain `list<int32>` columns, sometimes other widths).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, Int64Builder, ListBuilder, RecordBatch, UInt8Builder};
use parquet::arrow::ArrowWriter;
use trajforge_train::data::{Limits, check};

struct Row {
    ids: Vec<i32>,
    mask: Vec<u8>,
    pos: Vec<i32>,
    lens: Vec<i32>,
    cu: Vec<i32>,
}

fn good() -> Row {
    Row {
        ids: vec![1, 2, 3, 4, 5],
        mask: vec![0, 1, 1, 0, 1],
        pos: vec![0, 1, 2, 0, 1],
        lens: vec![3, 2],
        cu: vec![0, 3, 5],
    }
}

fn list_i32(values: &[&[i32]]) -> ArrayRef {
    let mut b = ListBuilder::new(Int32Builder::new());
    for v in values {
        b.values().append_slice(v);
        b.append(true);
    }
    Arc::new(b.finish())
}

fn write_rows(path: &Path, rows: &[Row], skip: Option<&str>, wide_ids: bool) {
    let mut cols: Vec<(&str, ArrayRef)> = Vec::new();
    let ids: ArrayRef = if wide_ids {
        let mut b = ListBuilder::new(Int64Builder::new());
        for r in rows {
            b.values()
                .append_slice(&r.ids.iter().map(|&x| i64::from(x)).collect::<Vec<_>>());
            b.append(true);
        }
        Arc::new(b.finish())
    } else {
        list_i32(&rows.iter().map(|r| r.ids.as_slice()).collect::<Vec<_>>())
    };
    cols.push(("input_ids", ids));
    let mut m = ListBuilder::new(UInt8Builder::new());
    for r in rows {
        m.values().append_slice(&r.mask);
        m.append(true);
    }
    cols.push(("loss_mask", Arc::new(m.finish())));
    cols.push((
        "position_ids",
        list_i32(&rows.iter().map(|r| r.pos.as_slice()).collect::<Vec<_>>()),
    ));
    cols.push((
        "seq_lens",
        list_i32(&rows.iter().map(|r| r.lens.as_slice()).collect::<Vec<_>>()),
    ));
    cols.push((
        "cu_seqlens",
        list_i32(&rows.iter().map(|r| r.cu.as_slice()).collect::<Vec<_>>()),
    ));
    cols.retain(|(n, _)| Some(*n) != skip);
    let batch = RecordBatch::try_from_iter(cols).expect("batch");
    let file = std::fs::File::create(path).expect("create");
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

fn limits() -> Limits {
    Limits {
        vocab_size: 100,
        max_tokens: 64,
    }
}

fn error_of(path: &Path) -> String {
    match check(&[PathBuf::from(path)], limits()) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn each_broken_invariant_is_named_with_shard_and_row() {
    let tmp = tempfile::tempdir().expect("tmp");
    type Breaker = Box<dyn Fn(&mut Row)>;
    let cases: Vec<(&str, Breaker, &str)> = vec![
        (
            "lengths",
            Box::new(|r: &mut Row| r.mask.pop().map(|_| ()).unwrap_or(())),
            "lengths disagree",
        ),
        (
            "seq_lens",
            Box::new(|r: &mut Row| r.lens = vec![3, 3]),
            "cu_seqlens",
        ),
        (
            "sum",
            Box::new(|r: &mut Row| {
                r.lens = vec![3, 3];
                r.cu = vec![0, 3, 6];
            }),
            "sum(seq_lens) = 6 but the row has 5 tokens",
        ),
        (
            "positions",
            Box::new(|r: &mut Row| r.pos = vec![0, 1, 2, 3, 4]),
            "position_ids do not restart at cu_seqlens: document 1",
        ),
        (
            "vocab",
            Box::new(|r: &mut Row| r.ids[2] = 100),
            "input_ids[2] = 100 is not below the vocabulary size 100",
        ),
        (
            "negative",
            Box::new(|r: &mut Row| r.ids[0] = -1),
            "input_ids[0] = -1 is negative",
        ),
        (
            "mask",
            Box::new(|r: &mut Row| r.mask[1] = 2),
            "loss_mask[1] = 2",
        ),
        (
            "too_long",
            Box::new(|r: &mut Row| {
                r.ids = vec![1; 65];
                r.mask = vec![1; 65];
                r.pos = (0..65).collect();
                r.lens = vec![65];
                r.cu = vec![0, 65];
            }),
            "65 tokens, more than max_tokens 64",
        ),
    ];
    for (name, breaker, expected) in cases {
        let path = tmp.path().join(format!("{name}.parquet"));
        let mut bad = good();
        breaker(&mut bad);
        write_rows(&path, &[good(), bad], None, false);
        let e = error_of(&path);
        assert!(
            e.contains(&path.display().to_string()),
            "{name}: the shard is not named: {e}"
        );
        assert!(e.contains("row 1"), "{name}: the row is not named: {e}");
        assert!(e.contains(expected), "{name}: expected {expected:?} in {e}");
    }
}

#[test]
fn missing_columns_truncated_files_and_other_widths() {
    let tmp = tempfile::tempdir().expect("tmp");
    let missing = tmp.path().join("missing.parquet");
    write_rows(&missing, &[good()], Some("position_ids"), false);
    let e = error_of(&missing);
    assert!(
        e.contains("no column `position_ids`") && e.contains("missing.parquet"),
        "{e}"
    );

    let whole = tmp.path().join("whole.parquet");
    write_rows(&whole, &[good(), good()], None, false);
    let bytes = std::fs::read(&whole).expect("read");
    let truncated = tmp.path().join("truncated.parquet");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let e = error_of(&truncated);
    assert!(
        e.contains("truncated.parquet") && e.contains("not a readable Parquet file"),
        "{e}"
    );

    // int64 ids (as polars or pandas write them) are cast, not refused.
    let wide = tmp.path().join("wide.parquet");
    write_rows(&wide, &[good(), good()], None, true);
    let set = check(&[wide], limits()).expect("int64 ids are accepted");
    assert_eq!(set.rows.len(), 2);
    assert_eq!(
        set.rows[0].targets, 3,
        "next tokens with mask 1 inside a document: 2 in the first, 1 in the second"
    );
    let row = set.read(&set.rows[1]).expect("read back");
    assert_eq!(row.ids, vec![1, 2, 3, 4, 5]);
}
