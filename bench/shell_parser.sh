#!/usr/bin/env bash
# The cost of no_execution's shell parser at the paper's scale: the quickstart's filters and
# dedupe and the default write over 300k synthetic ZERO rows,
# and the `forbidden_commands` query (which parses every execute_bash command with the same
# parser), with this checkout's release binary and with BASE's, in the same session; the decide
# stage's seconds come from each run's manifest. Release builds, run by hand; ~1 h here and
# ~10 GB of disk. Results go to bench/RESULTS.md.
# Usage: bash bench/shell_parser.sh BASE_REV [ROWS]   (default ROWS 300000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE=${1:?give the revision to compare with, e.g. 486544d}
ROWS=${2:-300000}
WORK=${BENCH_DIR:-target/bench-shell}
mkdir -p "$WORK"
cargo build -q --release -p trajforge-cli
cp target/release/trajforge "$WORK/tf-new"
tree="$WORK/base-tree"
[ -d "$tree" ] || git worktree add --detach "$tree" "$BASE" >/dev/null
# The same target folder: only the crates that differ are rebuilt (tf-new was copied out first).
(cd "$tree" && CARGO_TARGET_DIR="$ROOT/target" cargo build -q --release -p trajforge-cli)
cp target/release/trajforge "$WORK/tf-old"
corpus="$WORK/zero-$ROWS.parquet"
[ -f "$corpus" ] || "$WORK/tf-new" --quiet synth --kind zero --count "$ROWS" --seed 7 --defects 0.25 --out "$corpus"
# quickstart's filter and dedupe steps, no tokenize or pack (they do not parse shell).
sed -e '/^input:/d' -e '/^output:/d' pipelines/quickstart.yaml | sed '/^  - op: write$/,$d' > "$WORK/bench.yaml"
echo "| binary | pipeline s | decide s | peak RSS MB | kept | forbidden_commands s (two runs) |"
echo "|---|---:|---:|---:|---:|---|"
for v in old new; do
  rm -rf "$WORK/run-$v"
  /usr/bin/time -f "%e %M" -o "$WORK/time-$v.txt" "$WORK/tf-$v" --quiet run "$WORK/bench.yaml" --input "$corpus" --out "$WORK/run-$v"
  q=()
  for _ in 1 2; do
    /usr/bin/time -f "%e" -o "$WORK/q.txt" "$WORK/tf-$v" --quiet sql --data "$WORK/run-$v" \
      -f queries/forbidden_commands.sql --format csv > "$WORK/fc-$v.csv"
    q+=("$(cat "$WORK/q.txt")")
  done
  python3 - "$WORK/run-$v/manifest.json" "$v" "$(cat "$WORK/time-$v.txt")" "${q[*]}" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); t = m["timings"]
wall, rss = sys.argv[3].split()
print(f"| {sys.argv[2]} | {float(wall):.1f} | {t['decide_seconds']:.1f} | {int(rss) // 1024} | {m['ledger']['kept']} | {' / '.join(sys.argv[4].split())} |")
PY
done
cmp "$WORK/fc-old.csv" "$WORK/fc-new.csv" && echo "forbidden_commands: same result from both binaries"
git worktree remove --force "$tree"
