#!/usr/bin/env bash
# The curated queries (queries/*.sql) over a synthetic corpus, timed through `trajforge sql`
# (DataFusion; one process per query, as a user runs it) and through DuckDB (Python, a fresh
# connection per query with the same tables and the tool_calls view defined over the same
# Parquet files), in the same run; prints a table with the per-query ratio for bench/RESULTS.md.
# Release build, run by hand.
# Usage: bash bench/sql.sh [ROWS]   (default 300000; ~100 KB of text per row, so 300k rows need
#                                   ~10 GB of disk for the run and hours to tokenize)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-300000}
REPEAT=${REPEAT:-3}
WORK=${BENCH_DIR:-target/bench-sql}
mkdir -p "$WORK"
cargo build -q --release -p trajforge-cli
BIN=$PWD/target/release/trajforge
corpus="$WORK/zero-$ROWS.parquet"
[ -f "$corpus" ] || "$BIN" --quiet synth --kind zero --count "$ROWS" --seed 7 --defects 0.25 --out "$corpus"
run="$WORK/run-$ROWS"
if [ ! -f "$run/manifest.json" ]; then
  # quickstart's filters, dedupe and write, then tokenize + pack at the paper's 131,072 tokens.
  sed -e '/^input:/d' -e '/^output:/d' \
      -e 's/max_tokens: 32768/max_tokens: 131072/' -e 's/pack_len: 32768/pack_len: 131072/' \
      pipelines/quickstart.yaml > "$WORK/bench.yaml"
  "$BIN" --quiet run "$WORK/bench.yaml" --input "$corpus" --out "$run"
fi
du -sh "$run"/kept "$run"/filtered "$run"/shards | sed 's/^/# /'
python3 bench/sql_duckdb.py "$BIN" "$run" queries "$REPEAT"
