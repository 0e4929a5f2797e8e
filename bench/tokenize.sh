#!/usr/bin/env bash
# Tokenize and pack benchmarks (release build, run by hand; results go to bench/RESULTS.md):
#  1. render + tokenize + loss mask per core, trajforge with and without its cache of repeated
#     pieces, next to Python transformers apply_chat_template + fast tokenizer, and next to plain
#     tokenizer encodes of the rendered text, on the same rows in the same run (one core each);
#  2. packing 300,000 sample lengths at 32k: trajforge's streaming BFD vs a simple Python BFD;
#  3. packing fill at 32k and 131k on synthetic ZERO and HERO corpora (trajforge tokenize
#     --pack-len), next to the best fill any packing that never splits a sample could reach.
# Usage: bash bench/tokenize.sh [ROWS]   (default 300 rows per kind for 1-2, 3000 for 3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-300}
FILL_ROWS=${FILL_ROWS:-3000}
WORK=${BENCH_DIR:-target/bench-tokenize}
mkdir -p "$WORK"
cargo build -q --release -p trajforge-cli -p trajforge-tokenize --bins --example tokenize_bench
BIN=target/release/trajforge
QWEN="$WORK/qwen"
mkdir -p "$QWEN"
zstd -q -d -f crates/trajforge-tokenize/assets/qwen2.5-coder/tokenizer.json.zst -o "$QWEN/tokenizer.json"
cp crates/trajforge-tokenize/assets/qwen2.5-coder/tokenizer_config.json "$QWEN/"

for kind in zero hero; do
  corpus="$WORK/$kind-$ROWS.parquet"
  [ -f "$corpus" ] || "$BIN" --quiet synth --kind "$kind" --count "$ROWS" --seed 5 --out "$corpus"
  rm -rf "$WORK/canon-$kind"
  "$BIN" --quiet ingest "$corpus" --out "$WORK/canon-$kind"
  dir="$WORK/rows-$kind"
  mkdir -p "$dir"
  echo "== $kind: $ROWS rows, one core =="
  taskset -c 0 target/release/examples/tokenize_bench "$WORK/canon-$kind/trajectories/part-00000.parquet" "$dir"
  if python3 -c "import transformers" 2>/dev/null; then
    TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 taskset -c 0 python3 bench/tokenize_transformers.py "$QWEN" "$dir"
  else
    echo '{"what": "transformers", "skipped": "pip install transformers==4.57.1"}'
  fi
done

echo "== packing fill ($FILL_ROWS rows per kind, 2 threads, max_tokens = pack_len) =="
printf "| corpus | pack_len | rows | samples | too long | tokens | supervised %% | packed rows | fill | bound | seconds |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
for kind in zero hero; do
  corpus="$WORK/$kind-fill-$FILL_ROWS.parquet"
  [ -f "$corpus" ] || "$BIN" --quiet synth --kind "$kind" --count "$FILL_ROWS" --seed 6 --out "$corpus"
  for len in 32768 131072; do
    out="$WORK/fill-$kind-$len"
    "$BIN" --quiet --threads 2 tokenize "$corpus" --out "$out" --max-tokens "$len" --pack-len "$len"
    python3 - "$out/manifest.json" "$kind" "$len" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["tokenize"]
print(f"| synth {sys.argv[2]} | {sys.argv[3]} | {t['rows_in']} | {t['samples']} | {t['filtered'].get('too_long', 0)} | {t['tokens']} | "
      f"{100 * t['supervised_fraction']:.1f} | {t['packed_rows']} | {100 * t['packing_fill']:.2f}% | {100 * t['packing_fill_bound']:.2f}% | {t['seconds']:.1f} |")
PY
  done
done

# Peak memory beyond the look-ahead window: SCALE_ROWS rows per kind (e.g. 8000, four windows),
# tokenized and packed at 131,072 under /usr/bin/time -v.
if [ -n "${SCALE_ROWS:-}" ]; then
  echo "== peak memory, $SCALE_ROWS rows per kind, 2 threads, pack_len = max_tokens = 131072 =="
  printf "| corpus | rows | tokens | packed rows | fill | bound | peak RSS MB | seconds |\n|---|---|---|---|---|---|---|---|\n"
  for kind in zero hero; do
    corpus="$WORK/$kind-scale-$SCALE_ROWS.parquet"
    [ -f "$corpus" ] || "$BIN" --quiet synth --kind "$kind" --count "$SCALE_ROWS" --seed 6 --out "$corpus"
    out="$WORK/scale-$kind"
    /usr/bin/time -v "$BIN" --quiet --threads 2 tokenize "$corpus" --out "$out" \
      --max-tokens 131072 --pack-len 131072 2> "$WORK/scale-$kind.time"
    rss=$(awk '/Maximum resident/ {print int($6 / 1024)}' "$WORK/scale-$kind.time")
    python3 - "$out/manifest.json" "$kind" "$rss" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["tokenize"]
print(f"| synth {sys.argv[2]} | {t['rows_in']} | {t['tokens']} | {t['packed_rows']} | {100 * t['packing_fill']:.2f}% | "
      f"{100 * t['packing_fill_bound']:.2f}% | {sys.argv[3]} | {t['seconds']:.1f} |")
PY
  done
fi
