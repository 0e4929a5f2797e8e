#!/usr/bin/env bash
# Training-step throughput on this CPU: trajforge's trainer (release build) next to PyTorch
# (transformers Qwen2ForCausalLM, f32, SDPA, torch.set_num_threads = ours), in the same run, on
# the same packed row (4 documents, odd positions supervised), same shape, f32: forward +
# backward + clipping + AdamW per step, median of the steps after a warm-up, and each process's
# peak RSS (/usr/bin/time). Shapes: `tiny` and the Qwen2.5-Coder-0.5B shape cut to 2 layers, at
# packed rows of 2k and 8k tokens. Then the FLOPs per token `--explain` prints for the four
# Qwen2.5-Coder shapes. Results go to bench/RESULTS.md by hand (the 2026-12-03 table is there).
# Usage: bash bench/train.sh [STEPS]   (default 4; THREADS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-4}
THREADS=${THREADS:-2}
export THREADS RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS
cargo build -q --release -p trajforge-train --example train_step_bench
BENCH=target/release/examples/train_step_bench
rss() { grep "Maximum resident" "$1" | awk '{printf "%.0f", $6/1024}'; }
printf "| shape | tokens | engine | step s | tokens/s | peak RSS MB |\n|---|---|---|---|---|---|\n"
for shape in tiny 0.5b-2l; do
  for tokens in 2048 8192; do
    for engine in trajforge pytorch; do
      log=$(mktemp)
      # A run the machine cannot hold (PyTorch's full logits at 8k tokens) is a row, not the end.
      status=0
      if [ "$engine" = trajforge ]; then
        out=$(/usr/bin/time -v "$BENCH" "$shape" "$tokens" "$STEPS" 2>"$log") || status=$?
      else
        out=$(/usr/bin/time -v python3 bench/train_torch.py "$shape" "$tokens" "$STEPS" 2>"$log") || status=$?
      fi
      if [ "$status" -ne 0 ]; then
        echo "| $shape | $tokens | $engine | failed: $(grep -m1 -E 'signal|Error' "$log" || echo "exit $status") | — | $(rss "$log") |"
        rm -f "$log"
        continue
      fi
      python3 - "$out" "$engine" "$(rss "$log")" <<'PY'
import json, sys
r = json.loads(sys.argv[1].strip().splitlines()[-1])
print(f"| {r['shape']} | {r['tokens']} | {sys.argv[2]} | {r['median_step_s']:.3f} | {r['tokens_per_s']:.0f} | {sys.argv[3]} |")
PY
      rm -f "$log"
    done
  done
done
echo
echo "FLOPs per token (training, as --explain prints them at a mean document length of 8,192):"
printf "| preset | parameters | doc tokens | FLOPs/token |\n|---|---|---|---|\n"
for preset in qwen2.5-coder-0.5b qwen2.5-coder-1.5b qwen2.5-coder-7b qwen2.5-coder-32b; do
  "$BENCH" flops "$preset" 8192
done
