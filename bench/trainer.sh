#!/usr/bin/env bash
# Training throughput side by side: firebreak's built-in trainer (burn, flex CPU
# backend) against PyTorch on CPU, one thread each, same shapes, batch sizes,
# optimiser and loss, in one invocation; writes bench/results/trainer.md.
#
#   bench/trainer.sh                 # REPEATS (3) timings per shape, medians
# PyTorch from PyPI is large (its Linux wheel needs the CUDA libraries' wheels,
# about 4.7 GB, even to run on CPU): set TORCH_VENV to a venv that has torch to
# reuse it; otherwise one is made at bench/.torch-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-3}
VENV=${TORCH_VENV:-bench/.torch-venv}
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet torch numpy
fi
cargo build --quiet --release -p firebreak-train --example train_speed
ours=$(target/release/examples/train_speed "$REPEATS")
theirs=$("$VENV/bin/python" bench/trainer_torch.py "$REPEATS")
mkdir -p bench/results
python3 - "$ours" "$theirs" "$REPEATS" "$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')" <<'PY' | tee bench/results/trainer.md
import json, sys
ours = {r["shape"]: r for r in map(json.loads, sys.argv[1].splitlines())}
theirs = {r["shape"]: r for r in map(json.loads, sys.argv[2].splitlines())}
print("# Training throughput: built-in trainer vs PyTorch (CPU, one thread each)\n")
print(f"Median of {sys.argv[3]} timings per shape; Adam, cross-entropy; torch {sys.argv[4]}.")
print("Rerun: `bench/trainer.sh` (`TORCH_VENV=… REPEATS=…`).\n")
print("| shape | firebreak steps/s | PyTorch steps/s | ratio (≥ 1 is faster) |")
print("|---|---:|---:|---:|")
for shape, r in ours.items():
    t = theirs[shape]["steps_per_s"]
    print(f"| {shape} | {r['steps_per_s']:.0f} | {t:.0f} | {r['steps_per_s'] / t:.2f} |")
PY
