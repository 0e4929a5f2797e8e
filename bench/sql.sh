#!/usr/bin/env bash
# The curated queries (queries/*.sql) and two point lookups over a synthetic corpus, timed
# through `trajforge sql` (DataFusion; one process per query, as a user runs it) and through
# DuckDB (Python, a fresh connection per query with the same tables and the tool_calls view
# defined over the same Parquet files), in the same run; prints a table with the per-query ratio
# for bench/RESULTS.md. Then the same queries over the same rows in other Parquet layouts
# (LAYOUTS), rewritten from the run's kept/ and filtered/ by the `relayout` example.
# Release build, run by hand.
# Usage: bash bench/sql.sh [ROWS]   (default 300000; ~120 KB of text per row and ~10 KB of zstd
#                                   Parquet: 300k rows need ~10 GB of disk and hours to tokenize)
#   REPEAT=3            best of REPEAT per query and engine
#   TOKENIZE=0          the pipeline stops after write (no tokenize + pack, which is ~80% of
#                       its time): the run goes to run-ROWS-notok and the queries over `packed`
#                       are listed as not run
#   LAYOUTS="before d32 d512 nobloom"   layouts compared with the run's own (default) one:
#     before  = the writer before decoded bounds: 4,096 rows / 64 MB encoded, no bloom filters
#     dN      = row groups of at most N MB decoded, bloom filters on (the writer's default is
#               d32; a run written before that commit keeps its own groups until relaid out)
#     nobloom = 128 MB decoded groups without bloom filters
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-300000}
REPEAT=${REPEAT:-3}
LAYOUTS=${LAYOUTS-before d32 d512 nobloom}
TOKENIZE=${TOKENIZE:-1}
WORK=${BENCH_DIR:-target/bench-sql}
mkdir -p "$WORK"
cargo build -q --release -p trajforge-cli -p trajforge-io --examples --bins
BIN=$PWD/target/release/trajforge
RELAYOUT=$PWD/target/release/examples/relayout
corpus="$WORK/zero-$ROWS.parquet"
[ -f "$corpus" ] || "$BIN" --quiet synth --kind zero --count "$ROWS" --seed 7 --defects 0.25 --out "$corpus"
run="$WORK/run-$ROWS"
config="$WORK/bench.yaml"
[ "$TOKENIZE" = 1 ] || { run="$run-notok"; config="$WORK/bench-notok.yaml"; }
if [ ! -f "$run/manifest.json" ]; then  # (--resume: an interrupted run goes on from its last stage)
  # quickstart's filters, dedupe and write, then tokenize + pack at the paper's 131,072 tokens.
  sed -e '/^input:/d' -e '/^output:/d' \
      -e 's/max_tokens: 32768/max_tokens: 131072/' -e 's/pack_len: 32768/pack_len: 131072/' \
      pipelines/quickstart.yaml > "$config"
  [ "$TOKENIZE" = 1 ] || sed -i '/^  - op: tokenize$/,$d' "$config"
  /usr/bin/time -f "# pipeline: %e s, peak RSS %M KB" \
    "$BIN" --quiet run "$config" --input "$corpus" --out "$run" --resume
fi
du -sh "$run"/kept "$run"/filtered $([ -d "$run/shards" ] && echo "$run/shards") | sed 's/^/# /'
python3 bench/sql_duckdb.py "$BIN" "$run" queries "$REPEAT" default

relayout() {  # relayout NAME ROWS ENCODED_MB DECODED_MB BLOOM
  local dir="$run-$1"
  rm -rf "$dir" && cp -al "$run" "$dir"
  for f in "$dir"/kept/*.parquet "$dir"/filtered/*.parquet; do
    "$RELAYOUT" "$f" "$f" "$2" "$3" "$4" "$5"
  done
  python3 - "$dir" <<'PY'
import sys, glob, pyarrow.parquet as pq
groups = [m.row_group(i) for f in sorted(glob.glob(sys.argv[1] + "/kept/*.parquet"))
          for m in [pq.ParquetFile(f).metadata] for i in range(m.num_row_groups)]
rows = sorted(g.num_rows for g in groups)
print(f"# {sys.argv[1]}: kept in {len(groups)} row groups, rows per group "
      f"{rows[0]}..{rows[-1]}, max {max(g.total_byte_size for g in groups) / 2**20:.0f} MB "
      f"uncompressed Parquet per group")
PY
  python3 bench/sql_duckdb.py "$BIN" "$dir" queries "$REPEAT" "$1"
  rm -rf "$dir"
}
for layout in $LAYOUTS; do
  case $layout in
    before) relayout before 4096 64 0 0 ;;
    nobloom) relayout nobloom 4096 64 128 0 ;;
    d*) relayout "$layout" 4096 64 "${layout#d}" 1 ;;
    *) echo "unknown layout $layout" >&2; exit 2 ;;
  esac
done
