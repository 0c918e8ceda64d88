#!/usr/bin/env bash
# TPE's overhead side by side with Optuna 5 (issue 3's targets): Optuna's default
# TPE settings on both sides (multivariate, 24 EI candidates, 10 start-up trials,
# constant liar; firebreak with scale_candidates = false), and firebreak's own
# defaults in memory too (24 candidates per dimension on this all-float space),
# on a 10-dimensional sphere, one worker, ask-and-tell, per-trial ask+tell time
# with the objective left out; in memory, and through SQLite (our ask/tell API on
# the SQLite store, with its ledger; Optuna's RDB storage on a SQLite file).
# Writes bench/results/tpe-overhead.md (and the raw per-trial seconds in
# bench/results/tpe-overhead.jsonl).
#
#   bench/tpe_overhead.sh
#
# REPEATS (3): runs per size, medians reported. OPTUNA_TRIALS (1000; 2000 adds
# the marginal cost at 1,900-2,000). OURS ("100 1000 10000"): our campaign sizes.
# Through SQLite: OURS_SQLITE ("1000 10000"), OPTUNA_SQLITE_TRIALS (1000; Optuna's
# RDB storage takes about a minute and a half for it).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-3}
OPTUNA_TRIALS=${OPTUNA_TRIALS:-1000}
OURS=${OURS:-"100 1000 10000"}
OURS_SQLITE=${OURS_SQLITE:-"1000 10000"}
OPTUNA_SQLITE_TRIALS=${OPTUNA_SQLITE_TRIALS:-1000}
DB=${TMPDIR:-/tmp}/firebreak-tpe-overhead-$$

# The venv bench/quality.sh makes (reused when it has Optuna 5).
VENV=bench/.venv
if ! "$VENV/bin/python" -c 'import optuna, sys; sys.exit(not optuna.__version__.startswith("5.0."))' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "optuna==5.0.0"
fi
cargo build --quiet --release -p firebreak-search --example tpe_overhead
cargo build --quiet --release -p firebreak-runner --example tpe_sqlite
BIN=${CARGO_TARGET_DIR:-target}/release/examples/tpe_overhead
SQLITE_BIN=${CARGO_TARGET_DIR:-target}/release/examples/tpe_sqlite

mkdir -p bench/results
raw=bench/results/tpe-overhead.jsonl
: > "$raw"
for seed in $(seq 0 $((REPEATS - 1))); do
  for n in $OURS; do
    echo "firebreak $n trials, seed $seed" >&2
    "$BIN" "$n" "$seed" >> "$raw"
    echo "firebreak $n trials with its own defaults, seed $seed" >&2
    "$BIN" "$n" "$seed" defaults >> "$raw"
  done
  for n in $OURS_SQLITE; do
    echo "firebreak through SQLite, $n trials, seed $seed" >&2
    "$SQLITE_BIN" "$n" "$seed" "$DB-ours.db" >> "$raw"
  done
  echo "optuna $OPTUNA_TRIALS trials, seed $seed" >&2
  "$VENV/bin/python" bench/tpe_overhead.py "$OPTUNA_TRIALS" "$seed" >> "$raw"
  echo "optuna through SQLite, $OPTUNA_SQLITE_TRIALS trials, seed $seed" >&2
  "$VENV/bin/python" bench/tpe_overhead.py "$OPTUNA_SQLITE_TRIALS" "$seed" "$DB-optuna.db" >> "$raw"
done

python3 bench/tpe_overhead_report.py "$raw" bench/results/tpe-overhead.md
