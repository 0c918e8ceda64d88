#!/usr/bin/env bash
# Schedulers in SIMULATED time (issue 4): ASHA and Hyperband against full training
# of the same random proposer's configurations on the NAS-Bench-201 CIFAR-10 table,
# 4 simulated workers, synthetic learning curves (firebreak_sim::CurveModel).
# Writes bench/results/schedulers-simulated.md. Takes about a minute.
#   SEEDS=10 N_TRIALS=100 bench/schedulers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-10}
N_TRIALS=${N_TRIALS:-100}
mkdir -p bench/results
cargo run --quiet --release -p firebreak-sim --example schedulers -- "$SEEDS" "$N_TRIALS" \
  | tee bench/results/schedulers-simulated.md
