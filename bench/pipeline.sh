#!/usr/bin/env bash
# Pipeline benchmarks (release build, run by hand; results go to bench/RESULTS.md):
#  1. MinHash signatures per second on one core, trajforge vs Python datasketch, same texts and
#     num_perm, measured in the same run;
#  2. pipelines/zero.yaml on synthetic ZERO corpora of growing size: rows/s, MB/s, peak RSS.
# Usage: bash bench/pipeline.sh [SIZES...]   (default: 5000 10000 20000 40000)
# MEMORY_LIMIT=1GiB runs the pipelines under that limit instead of the default (2 GiB).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@")
[ $# -eq 0 ] && SIZES=(5000 10000 20000 40000)
LIMIT=()
[ -n "${MEMORY_LIMIT:-}" ] && LIMIT=(--set "memory_limit=$MEMORY_LIMIT")
WORK=${BENCH_DIR:-target/bench-pipeline}
mkdir -p "$WORK"
# --bins too: with --example alone cargo builds only the example, not the trajforge binary (and
# one invocation keeps one feature resolution, so datafusion is not built twice).
cargo build -q --release -p trajforge-cli -p trajforge-ops --bins --example minhash_bench
BIN=target/release/trajforge

echo "== MinHash (1 core, num_perm=128, word 5-grams, 2000 texts of 15000 words) =="
python3 bench/make_texts.py "$WORK/texts.jsonl" 2000 15000
taskset -c 0 target/release/examples/minhash_bench "$WORK/texts.jsonl" 128 5
if python3 -c "import datasketch" 2>/dev/null; then
  taskset -c 0 python3 bench/minhash_datasketch.py "$WORK/texts.jsonl" 128 5
else
  echo '{"impl": "datasketch", "skipped": "pip install datasketch"}'
fi

echo "== zero.yaml on synthetic ZERO corpora =="
printf "| rows | input MB | memory_limit MiB | seconds | rows/s | MB/s | peak RSS MB | kept | filtered |\n|---|---|---|---|---|---|---|---|---|\n"
for n in "${SIZES[@]}"; do
  corpus="$WORK/zero-$n.parquet"
  [ -f "$corpus" ] || "$BIN" --quiet synth --kind zero --count "$n" --seed 3 --defects 0.3 --out "$corpus"
  out="$WORK/out-$n"
  /usr/bin/time -v "$BIN" --quiet run pipelines/zero.yaml --input "$corpus" --out "$out" "${LIMIT[@]}" 2> "$WORK/time-$n.txt"
  rss=$(awk -F: '/Maximum resident/ {print int($2/1024)}' "$WORK/time-$n.txt")
  python3 - "$out/manifest.json" "$n" "$rss" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); t = m["timings"]; l = m["ledger"]
mb = sum(i["bytes"] for i in m["inputs"]) / 1e6
lim = m["memory_limit"] >> 20
print(f"| {sys.argv[2]} | {mb:.0f} | {lim} | {t['total_seconds']:.1f} | {t['rows_per_second']:.0f} | {t['input_mb_per_second']:.1f} | {sys.argv[3]} | {l['kept']} | {l['filtered']} |")
PY
done
