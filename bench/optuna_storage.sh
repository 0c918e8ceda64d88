#!/usr/bin/env bash
# One Optuna script (random sampler, trivial objective) against Optuna's own
# gRPC proxy over RDB on SQLite, Optuna's RDB on SQLite, Optuna's journal file,
# and `firebreak serve-optuna`, with 1 and 4 processes, in one invocation;
# writes bench/results/optuna-storage.md (bench/optuna_storage.py says how).
#
#   bench/optuna_storage.sh                       # defaults below
#   REPEATS=1 TRIALS=500 bench/optuna_storage.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${TRIALS:-2000}
PROCS=${PROCS:-1 4}
REPEATS=${REPEATS:-3}
OUT=${OUT:-bench/results/optuna-storage.md}

./scripts/optuna.sh install
cargo build --quiet --release -p firebreak-cli
BIN=${CARGO_TARGET_DIR:-target}/release/firebreak
"$(./scripts/optuna.sh python)" -W ignore bench/optuna_storage.py run --firebreak "$BIN" \
  --trials "$TRIALS" --procs "$PROCS" --repeats "$REPEATS" --out "$OUT"
