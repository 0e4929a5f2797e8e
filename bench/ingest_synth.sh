#!/usr/bin/env bash
# Throughput and peak memory of `trajforge synth` and `trajforge ingest` at growing corpus sizes.
# Peak RSS should stay flat as the corpus grows (streaming, bounded batches).
#
#   bash bench/ingest_synth.sh [SIZES...]     (default: 2000 8000 20000 ZERO rows)
#
# Builds a release binary, writes corpora under target/bench/, prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-2000 8000 20000}")
read -r -a sizes <<< "${sizes[*]}"
cargo build -q --release -p trajforge-cli
bin=target/release/trajforge
work=target/bench
mkdir -p "$work"
threads=$(nproc)

measure() { # label, command... -> prints "seconds peak_kb"
  local log; log=$(mktemp)
  /usr/bin/time -f "%e %M" -o "$log" "$@" > /dev/null 2>&1
  cat "$log"; rm -f "$log"
}

echo "| step | rows | input MB | seconds | rows/s | MB/s | peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for n in "${sizes[@]}"; do
  corpus="$work/zero-$n.parquet"
  read -r s kb < <(measure $bin -q --threads "$threads" synth --kind zero --count "$n" --seed 1 --defects 0.1 --out "$corpus")
  mb=$(awk -v b="$(stat -c %s "$corpus")" 'BEGIN{printf "%.1f", b/1e6}')
  awk -v n="$n" -v s="$s" -v kb="$kb" -v mb="$mb" 'BEGIN{printf "| synth zero | %d | %s (written) | %.2f | %.0f | %.1f | %.0f |\n", n, mb, s, n/s, mb/s, kb/1024}'
  out="$work/ingest-$n"
  read -r s kb < <(measure $bin -q --threads "$threads" ingest "$corpus" --out "$out")
  awk -v n="$n" -v s="$s" -v kb="$kb" -v mb="$mb" 'BEGIN{printf "| ingest | %d | %s | %.2f | %.0f | %.1f | %.0f |\n", n, mb, s, n/s, mb/s, kb/1024}'
done
