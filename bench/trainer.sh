#!/usr/bin/env bash
# Training throughput side by side: firebreak's built-in trainer (burn, flex CPU
# backend) against PyTorch on CPU, one thread each, same shapes, batch sizes,
# optimiser and loss, in one invocation; writes bench/results/trainer.md.
#
#   bench/trainer.sh                 # ROUNDS (3) x REPEATS (3) timings per shape, medians
# PyTorch from PyPI is large (its Linux wheel needs the CUDA libraries' wheels,
# about 4.7 GB, even to run on CPU): set TORCH_VENV to a venv that has torch to
# reuse it; otherwise one is made at bench/.torch-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
REPEATS=${REPEATS:-3}
VENV=${TORCH_VENV:-bench/.torch-venv}
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet torch numpy
fi
cargo build --quiet --release -p firebreak-train --example train_speed
# Rounds alternate the two sides, so that load from other work on the machine
# falls on both; each side's figure is its median over ROUNDS x REPEATS timings.
ours="" theirs=""
for _ in $(seq "$ROUNDS"); do
  ours+=$(target/release/examples/train_speed "$REPEATS")$'\n'
  theirs+=$("$VENV/bin/python" bench/trainer_torch.py "$REPEATS")$'\n'
done
mkdir -p bench/results
python3 - "$ours" "$theirs" "$ROUNDS x $REPEATS" "$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')" <<'PY' | tee bench/results/trainer.md
import json, statistics, sys
def rates(text):
    out = {}
    for r in map(json.loads, filter(None, text.splitlines())):
        out.setdefault(r["shape"], []).append(r["steps_per_s"])
    return out
ours, theirs = rates(sys.argv[1]), rates(sys.argv[2])
print("# Training throughput: built-in trainer vs PyTorch (CPU, one thread each)\n")
print(f"Medians of {sys.argv[3]} timings per shape, the two sides alternating;")
print(f"Adam, cross-entropy; torch {sys.argv[4]}. Rerun: `bench/trainer.sh`")
print("(`TORCH_VENV=… ROUNDS=… REPEATS=…`).\n")
print("| shape | firebreak steps/s | PyTorch steps/s | ratio (≥ 1 is faster) |")
print("|---|---:|---:|---:|")
for shape, ours_rates in ours.items():
    a, b = statistics.median(ours_rates), statistics.median(theirs[shape])
    print(f"| {shape} | {a:.0f} | {b:.0f} | {a / b:.2f} |")
PY
