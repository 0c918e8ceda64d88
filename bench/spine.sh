#!/usr/bin/env bash
# The engine's spine, side by side with Optuna 5, in one invocation:
#  1. trivial in-process objective, random sampler, SQLite, every tell committed
#     before that worker's next ask: firebreak (ask/tell API) vs Optuna RDB (SQLite)
#     and Optuna journal file, at the same parallelism;
#  2. command trials: `firebreak`'s runner vs a bare spawn-and-wait loop of the same
#     program (a minimal printf, and a Python one).
# Prints medians over REPEATS runs and the ratios.
#
#   bench/spine.sh                     # defaults below
#   P=2 REPEATS=5 bench/spine.sh       # another parallelism
set -euo pipefail
cd "$(dirname "$0")/.."

P=${P:-8}
REPEATS=${REPEATS:-3}
N_FIREBREAK=${N_FIREBREAK:-20000}
N_OPTUNA_RDB=${N_OPTUNA_RDB:-600}
N_OPTUNA_JOURNAL=${N_OPTUNA_JOURNAL:-3000}
N_COMMAND=${N_COMMAND:-1000}
N_COMMAND_PYTHON=${N_COMMAND_PYTHON:-200}
P_COMMAND=${P_COMMAND:-2}

VENV=bench/.venv
if ! "$VENV/bin/python" -c 'import optuna, sys; sys.exit(not optuna.__version__.startswith("5."))' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "optuna==5.0.0"
fi
cargo build --quiet --release -p firebreak-runner --example throughput
BIN=target/release/examples/throughput
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

results="$TMP/results.jsonl"
for r in $(seq "$REPEATS"); do
  echo "round $r of $REPEATS" >&2
  "$BIN" asktell "$N_FIREBREAK" "$P" "$TMP/fb.db" | sed 's/^{/{"case": "firebreak ask\/tell", /' >> "$results"
  "$VENV/bin/python" bench/optuna_spine.py rdb "$N_OPTUNA_RDB" "$P" "$TMP/optuna-$r.db" | sed 's/^{/{"case": "optuna rdb", /' >> "$results"
  "$VENV/bin/python" bench/optuna_spine.py journal "$N_OPTUNA_JOURNAL" "$P" "$TMP/optuna-$r.log" | sed 's/^{/{"case": "optuna journal", /' >> "$results"
  "$BIN" command "$N_COMMAND" "$P_COMMAND" "$TMP/cmd.db" printf | sed 's/^{/{"case": "firebreak command printf", /' >> "$results"
  "$BIN" bare "$N_COMMAND" "$P_COMMAND" "$TMP/bare.db" printf | sed 's/^{/{"case": "bare loop printf", /' >> "$results"
  "$BIN" command "$N_COMMAND_PYTHON" "$P_COMMAND" "$TMP/cmdpy.db" python | sed 's/^{/{"case": "firebreak command python3", /' >> "$results"
  "$BIN" bare "$N_COMMAND_PYTHON" "$P_COMMAND" "$TMP/barepy.db" python | sed 's/^{/{"case": "bare loop python3", /' >> "$results"
done

python3 - "$results" "$P" "$P_COMMAND" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["case"], []).append(r["trials_per_second"])
pragmas = next(r["pragmas"] for r in rows if r["case"] == "firebreak ask/tell")
med = {k: statistics.median(v) for k, v in by.items()}
print(f"SQLite pragmas (firebreak): {pragmas}")
print(f"\nTrivial objective, parallelism {sys.argv[2]}, durable tells (median of {len(by['optuna rdb'])} runs, trials/s):")
for case in ["firebreak ask/tell", "optuna rdb", "optuna journal"]:
    print(f"  {case:<22} {med[case]:>10.1f}   (runs: {', '.join(f'{v:.0f}' for v in by[case])})")
print(f"  ratio firebreak / optuna rdb:     {med['firebreak ask/tell'] / med['optuna rdb']:.1f}x  (target >= 100x, >= 5000 trials/s)")
print(f"  ratio firebreak / optuna journal: {med['firebreak ask/tell'] / med['optuna journal']:.1f}x")
print(f"\nCommand trials, parallelism {sys.argv[3]} (trials/s):")
for prog in ["printf", "python3"]:
    fb, bare = med[f"firebreak command {prog}"], med[f"bare loop {prog}"]
    print(f"  {prog:<8} firebreak {fb:>8.1f}   bare loop {bare:>8.1f}   ratio {fb / bare:.2f}  (target >= 0.8)")
PY
