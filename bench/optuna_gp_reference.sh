#!/usr/bin/env bash
# Regenerates bench/results/optuna_gp_reference.jsonl: Optuna 5's GPSampler (default
# options) on the continuous functions of bench/quality.sh, GP_SEEDS seeds (5) at
# FUNCTION_BUDGET evaluations (200). GPSampler needs torch and scipy and takes
# seconds per trial, so its results are committed and quality.sh reads them.
#
#   bench/optuna_gp_reference.sh            # FUNCTIONS, GP_SEEDS, FUNCTION_BUDGET override
#
# Lines of the problems and budgets not run now are kept, so the functions can be
# run a few at a time (FUNCTIONS="rosenbrock10 ackley10" ...). On a 2-core machine
# a seed of a 10-D function took about 2 minutes, of `mixed` about 9 (44 minutes
# for its 5 seeds, at the lowest priority beside other work).
set -euo pipefail
cd "$(dirname "$0")/.."
GP_SEEDS=${GP_SEEDS:-5}
FUNCTION_BUDGET=${FUNCTION_BUDGET:-200}
FUNCTIONS=${FUNCTIONS:-"branin hartmann6 rosenbrock10 ackley10 styblinski_tang10 mixed"}
VENV=bench/.venv
if ! "$VENV/bin/python" -c 'import optuna, torch, scipy, greenlet' 2>/dev/null; then
  python3 -m venv "$VENV"
  # torch from PyPI brings its CUDA libraries (about 4 GB; it runs on the CPU
  # here); greenlet lets GPSampler batch its L-BFGS-B runs.
  "$VENV/bin/pip" install --quiet "optuna==5.0.0" "cmaes==0.13.1" scipy torch greenlet
fi
mkdir -p bench/results
out=bench/results/optuna_gp_reference.jsonl
# Keep the lines of other problems, or of these at another budget.
if [ -f "$out" ]; then
  python3 -c 'import json, sys
problems, budget = sys.argv[2].split(), int(sys.argv[3])
for line in open(sys.argv[1]):
    r = json.loads(line)
    if not (r["problem"] in problems and len(r["curve"]) == budget):
        print(line, end="")' "$out" "$FUNCTIONS" "$FUNCTION_BUDGET" > "$out.tmp"
else
  : > "$out.tmp"
fi
for problem in $FUNCTIONS; do
  echo "$problem" >&2
  "$VENV/bin/python" bench/optuna_quality.py "$problem" gp "$FUNCTION_BUDGET" "$GP_SEEDS" >> "$out.tmp"
done
mv "$out.tmp" "$out"
