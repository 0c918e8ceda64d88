#!/usr/bin/env bash
# TPE's overhead side by side with Optuna 5 (issue 3's targets): default TPE on
# both sides (multivariate, 24 EI candidates, 10 start-up trials, constant liar)
# on a 10-dimensional sphere, in memory, one worker, ask-and-tell, per-trial
# ask+tell time with the objective left out. Writes bench/results/tpe-overhead.md
# (and the raw per-trial seconds in bench/results/tpe-overhead.jsonl).
#
#   bench/tpe_overhead.sh
#
# REPEATS (3): runs per size, medians reported. OPTUNA_TRIALS (1000; 2000 adds
# the marginal cost at 1,900-2,000). OURS ("100 1000 10000"): our campaign sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-3}
OPTUNA_TRIALS=${OPTUNA_TRIALS:-1000}
OURS=${OURS:-"100 1000 10000"}

# The venv bench/quality.sh makes (reused when it has Optuna 5).
VENV=bench/.venv
if ! "$VENV/bin/python" -c 'import optuna, sys; sys.exit(not optuna.__version__.startswith("5.0."))' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "optuna==5.0.0"
fi
cargo build --quiet --release -p firebreak-search --example tpe_overhead
BIN=${CARGO_TARGET_DIR:-target}/release/examples/tpe_overhead

mkdir -p bench/results
raw=bench/results/tpe-overhead.jsonl
: > "$raw"
for seed in $(seq 0 $((REPEATS - 1))); do
  for n in $OURS; do
    echo "firebreak $n trials, seed $seed" >&2
    "$BIN" "$n" "$seed" >> "$raw"
  done
  echo "optuna $OPTUNA_TRIALS trials, seed $seed" >&2
  "$VENV/bin/python" bench/tpe_overhead.py "$OPTUNA_TRIALS" "$seed" >> "$raw"
done

python3 bench/tpe_overhead_report.py "$raw" bench/results/tpe-overhead.md
