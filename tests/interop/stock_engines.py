"""Every Parquet output of a trajforge run, read unchanged by stock engines.

Usage: python3 stock_engines.py RUN_DIR

For each output folder (kept, filtered, rejects, shards, tokenize_dropped) that the run's
manifest describes, reads the files with pyarrow, polars, DuckDB, DataFusion (Python bindings,
`CREATE EXTERNAL TABLE … STORED AS PARQUET LOCATION …` as in datafusion-cli) and Hugging Face
`datasets`, and checks that all of them see the same rows and columns, and that nested
columns (messages, tool calls, token lists) decode to the same totals. Prints one JSON line per
folder; exits 1 on any disagreement.
"""
import glob
import json
import os
import sys

import datafusion
import datasets
import duckdb
import polars as pl
import pyarrow.parquet as pq

# (folder, a nested list column whose total length every engine must agree on)
FOLDERS = [
    ("kept", "messages"),
    ("filtered", "messages"),
    ("rejects", None),
    ("shards", "input_ids"),
    ("tokenize_dropped", None),
]


def main():
    datasets.disable_progress_bars()
    run = sys.argv[1]
    manifest = json.load(open(os.path.join(run, "manifest.json")))
    expected = {
        "kept": manifest["ledger"]["kept"],
        "filtered": manifest["ledger"]["filtered"],
        "rejects": manifest["ledger"]["rejected"],
    }
    tok = manifest.get("tokenize") or {}
    expected["shards"] = tok.get("packed_rows")
    expected["tokenize_dropped"] = sum(tok.get("filtered", {}).values()) + tok.get("rejected", 0) if tok else None
    failures = []
    for folder, nested in FOLDERS:
        files = sorted(glob.glob(os.path.join(run, folder, "*.parquet")))
        if not files:
            continue
        seen = {}
        # pyarrow
        table = pq.read_table(os.path.join(run, folder))
        seen["pyarrow"] = (table.num_rows, table.column_names,
                           sum(len(v) for v in table.column(nested).to_pylist()) if nested else None)
        # polars
        df = pl.read_parquet(files)
        seen["polars"] = (df.height, df.columns,
                          int(df.select(pl.col(nested).list.len().sum()).item()) if nested else None)
        # DuckDB
        con = duckdb.connect()
        pattern = os.path.join(run, folder, "*.parquet")
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchone()[0]
        cols = [d[0] for d in con.execute(f"SELECT * FROM read_parquet('{pattern}') LIMIT 0").description]
        total = (con.execute(f"SELECT sum(len({nested})) FROM read_parquet('{pattern}')").fetchone()[0]
                 if nested else None)
        seen["duckdb"] = (rows, cols, int(total) if total is not None else None)
        # DataFusion, as datafusion-cli would
        ctx = datafusion.SessionContext()
        location = os.path.join(os.path.abspath(run), folder) + "/"
        ctx.sql(f"CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{location}'").collect()
        rows = ctx.sql("SELECT count(*) AS n FROM t").to_pydict()["n"][0]
        cols = ctx.table("t").schema().names
        total = (ctx.sql(f"SELECT sum(array_length({nested})) AS n FROM t").to_pydict()["n"][0]
                 if nested else None)
        seen["datafusion"] = (rows, cols, total)
        reference = seen["pyarrow"]
        # Hugging Face datasets (it refuses to build a split with no rows: an empty folder, e.g.
        # a run without rejects, is checked by the other engines only)
        if reference[0] > 0:
            ds = datasets.load_dataset("parquet", data_files=files, split="train")
            seen["datasets"] = (ds.num_rows, ds.column_names,
                                sum(len(v) for v in ds[nested]) if nested else None)
        for engine, got in seen.items():
            if got != reference:
                failures.append({"folder": folder, "engine": engine, "got": str(got)[:300],
                                 "pyarrow": str(reference)[:300]})
        if expected.get(folder) is not None and reference[0] != expected[folder]:
            failures.append({"folder": folder, "rows": reference[0], "manifest": expected[folder]})
        print(json.dumps({"folder": folder, "rows": reference[0], "columns": len(reference[1]),
                          "nested_total": reference[2], "engines": sorted(seen)}))
    if failures:
        print(json.dumps({"failures": failures}))
        sys.exit(1)


if __name__ == "__main__":
    main()
