#!/usr/bin/env bash
# Proposer quality side by side: firebreak's proposers (in memory, the `quality`
# example) and Optuna 5's samplers (default options, a venv made here) on the same
# problems and budgets, in one invocation; writes bench/results/quality.md.
#
#   bench/quality.sh [BENCHDATA_DIR]     # default ../shared/benchdata; the bundled
#                                        # NAS-Bench-201 table is always included
# SEEDS (20), TPE_SEEDS (40: TPE on both sides; at 20 seeds the differences
# between the two TPEs seen so far are below what the test resolves),
# TABLE_BUDGET (100), FUNCTION_BUDGET (200), FUNCTIONS, TABLES and
# NAS_LONG_BUDGET (500: the bundled NAS-Bench-201 table once more at this budget,
# TPE, random search and regularized evolution; 0 skips it) override. `mixed` is
# the mixed int/categorical problem (see the `quality` example's header).
# On the functions, CMA-ES runs SEEDS seeds on both sides; GP-BO runs GP_SEEDS (5):
# firebreak's here, Optuna's GPSampler (torch and scipy, slow) from the committed
# bench/results/optuna_gp_reference.jsonl that bench/optuna_gp_reference.sh writes.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/benchdata}
SEEDS=${SEEDS:-20}
TPE_SEEDS=${TPE_SEEDS:-40}
TABLE_BUDGET=${TABLE_BUDGET:-100}
FUNCTION_BUDGET=${FUNCTION_BUDGET:-200}
FUNCTIONS=${FUNCTIONS:-"branin hartmann6 rosenbrock10 ackley10 styblinski_tang10 mixed"}
NAS_LONG_BUDGET=${NAS_LONG_BUDGET:-500}
GP_SEEDS=${GP_SEEDS:-5}

VENV=bench/.venv
if ! "$VENV/bin/python" -c 'import optuna, cmaes, matplotlib, sys; sys.exit(not optuna.__version__.startswith("5."))' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "optuna==5.0.0" "cmaes==0.13.1" "matplotlib==3.11.2"
fi
cargo build --quiet --release -p firebreak-runner --example quality
BIN=target/release/examples/quality

nasbench="table:examples/tables/nasbench201-cifar10.csv:maximize"
tables=$nasbench
for spec in hpolib/naval_propulsion.csv:minimize hpolib/parkinsons_telemonitoring.csv:minimize \
            hpobench/australian.csv:maximize hpobench/car.csv:maximize hpobench/credit_g.csv:maximize; do
  [ -f "$DATA/${spec%:*}" ] && tables="$tables table:$DATA/$spec"
done
TABLES=${TABLES:-$tables}

mkdir -p bench/results
results=bench/results/quality.jsonl
: > "$results"
for problem in $TABLES; do
  echo "$problem" >&2
  "$BIN" "$problem" tpe "$TABLE_BUDGET" "$TPE_SEEDS" >> "$results"
  for p in random evolution; do "$BIN" "$problem" "$p" "$TABLE_BUDGET" "$SEEDS" >> "$results"; done
  "$VENV/bin/python" bench/optuna_quality.py "$problem" tpe "$TABLE_BUDGET" "$TPE_SEEDS" >> "$results"
  "$VENV/bin/python" bench/optuna_quality.py "$problem" random "$TABLE_BUDGET" "$SEEDS" >> "$results"
done
# NAS-Bench-201 at the longer budget too; report.py groups by (problem, budget).
if [ "$NAS_LONG_BUDGET" -gt 0 ]; then
  echo "$nasbench @ $NAS_LONG_BUDGET" >&2
  "$BIN" "$nasbench" tpe "$NAS_LONG_BUDGET" "$TPE_SEEDS" >> "$results"
  for p in random evolution; do "$BIN" "$nasbench" "$p" "$NAS_LONG_BUDGET" "$SEEDS" >> "$results"; done
  "$VENV/bin/python" bench/optuna_quality.py "$nasbench" tpe "$NAS_LONG_BUDGET" "$TPE_SEEDS" >> "$results"
  "$VENV/bin/python" bench/optuna_quality.py "$nasbench" random "$NAS_LONG_BUDGET" "$SEEDS" >> "$results"
fi
for problem in $FUNCTIONS; do
  echo "$problem" >&2
  "$BIN" "$problem" tpe "$FUNCTION_BUDGET" "$TPE_SEEDS" >> "$results"
  for p in random cmaes; do "$BIN" "$problem" "$p" "$FUNCTION_BUDGET" "$SEEDS" >> "$results"; done
  "$BIN" "$problem" gp "$FUNCTION_BUDGET" "$GP_SEEDS" >> "$results"
  "$VENV/bin/python" bench/optuna_quality.py "$problem" tpe "$FUNCTION_BUDGET" "$TPE_SEEDS" >> "$results"
  for p in random cmaes; do "$VENV/bin/python" bench/optuna_quality.py "$problem" "$p" "$FUNCTION_BUDGET" "$SEEDS" >> "$results"; done
  # Optuna's GP: committed reference lines of this problem and budget.
  if [ -f bench/results/optuna_gp_reference.jsonl ]; then
    python3 -c 'import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["problem"] == sys.argv[2] and len(r["curve"]) == int(sys.argv[3]):
        print(line, end="")' bench/results/optuna_gp_reference.jsonl "$problem" "$FUNCTION_BUDGET" >> "$results"
  fi
done
python3 bench/report.py "$results" bench/results/quality.md
"$VENV/bin/python" bench/plot.py "$results" bench/results/quality.png
