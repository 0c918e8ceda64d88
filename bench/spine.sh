#!/usr/bin/env bash
# The engine's spine, side by side with Optuna 5, in one invocation; writes
# bench/results/spine.md.
#  1. trivial in-process objective, random sampler, SQLite, every tell committed
#     before that worker's next ask, at the same parallelism:
#     - firebreak's ask/tell API with every check `firebreak run` makes (ledger
#       verified at open, each proposal validated against the space and authorised
#       by Cedar with its own context, each start authorised, every decision in
#       the ledger), at its default durability (WAL, synchronous = NORMAL, group
#       commit) and at synchronous = FULL (FIREBREAK_SQLITE_SYNCHRONOUS=FULL);
#     - Optuna RDB storage on SQLite and Optuna's journal file, at their defaults
#       (bench/optuna_spine.py reports them);
#  2. command trials: `firebreak`'s runner vs a bare spawn-and-wait loop of the same
#     program (a minimal printf, and a Python one).
# Cases interleave within each round; medians over REPEATS rounds and the ratios.
#
#   bench/spine.sh                     # defaults below
#   P=2 REPEATS=3 bench/spine.sh       # another parallelism
set -euo pipefail
cd "$(dirname "$0")/.."

P=${P:-8}
REPEATS=${REPEATS:-5}
N_FIREBREAK=${N_FIREBREAK:-20000}
N_OPTUNA_RDB=${N_OPTUNA_RDB:-600}
N_OPTUNA_JOURNAL=${N_OPTUNA_JOURNAL:-3000}
N_COMMAND=${N_COMMAND:-1000}
N_COMMAND_PYTHON=${N_COMMAND_PYTHON:-200}
P_COMMAND=${P_COMMAND:-2}
OUT=${OUT:-bench/results/spine.md}

VENV=bench/.venv
if ! "$VENV/bin/python" -c 'import optuna, sys; sys.exit(not optuna.__version__.startswith("5."))' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "optuna==5.0.0"
fi
cargo build --quiet --release -p firebreak-runner --example throughput
BIN=${CARGO_TARGET_DIR:-target}/release/examples/throughput
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

results="$TMP/results.jsonl"
tag() { sed "s/^{/{\"case\": \"$1\", /" >> "$results"; }
for r in $(seq "$REPEATS"); do
  echo "round $r of $REPEATS" >&2
  "$BIN" asktell "$N_FIREBREAK" "$P" "$TMP/fb-$r.db" | tag "firebreak normal"
  FIREBREAK_SQLITE_SYNCHRONOUS=FULL "$BIN" asktell "$N_FIREBREAK" "$P" "$TMP/fbfull-$r.db" | tag "firebreak full"
  "$VENV/bin/python" bench/optuna_spine.py rdb "$N_OPTUNA_RDB" "$P" "$TMP/optuna-$r.db" | tag "optuna rdb"
  "$VENV/bin/python" bench/optuna_spine.py journal "$N_OPTUNA_JOURNAL" "$P" "$TMP/optuna-$r.log" | tag "optuna journal"
  "$BIN" command "$N_COMMAND" "$P_COMMAND" "$TMP/cmd-$r.db" printf | tag "firebreak command printf"
  "$BIN" bare "$N_COMMAND" "$P_COMMAND" "$TMP/bare-$r.db" printf | tag "bare loop printf"
  "$BIN" command "$N_COMMAND_PYTHON" "$P_COMMAND" "$TMP/cmdpy-$r.db" python | tag "firebreak command python3"
  "$BIN" bare "$N_COMMAND_PYTHON" "$P_COMMAND" "$TMP/barepy-$r.db" python | tag "bare loop python3"
  if [ "$r" = 1 ]; then
    # What the ledger of a governed run holds, per trial (from the first database).
    "$VENV/bin/python" - "$TMP/fb-1.db" > "$TMP/ledger-kinds.txt" <<'PY'
import collections, json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
kinds, decided = collections.Counter(), 0
for (payload,) in db.execute("SELECT payload FROM ledger"):
    body = json.loads(payload)
    kinds[body["kind"]] += 1
    if body["kind"] == "trial_proposed" and (body.get("data") or {}).get("policy", {}).get("decision") == "allow":
        decided += 1
print(json.dumps({"kinds": dict(kinds), "proposals_with_cedar_allow": decided}))
PY
  fi
  rm -rf "$TMP"/*-"$r".db* "$TMP"/*-"$r".log
done

python3 - "$results" "$P" "$P_COMMAND" "$REPEATS" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(date -u +%Y-%m-%d)" \
  "$(cat "$TMP/ledger-kinds.txt")" "$N_FIREBREAK" "$N_OPTUNA_RDB" "$N_OPTUNA_JOURNAL" > "$OUT" <<'PY'
import json, statistics, sys
(path, p, p_cmd, repeats, load_start, load_end, cores, cpu, day, kinds,
 n_fb, n_rdb, n_journal) = sys.argv[1:14]
rows = [json.loads(l) for l in open(path)]
by = {}
for r in rows:
    by.setdefault(r["case"], []).append(r)
med = {k: statistics.median(r["trials_per_second"] for r in v) for k, v in by.items()}
runs = lambda k: " · ".join(f"{r['trials_per_second']:,.0f}" for r in by[k])
first = lambda k: by[k][0]
kinds = json.loads(kinds)
fb = first("firebreak normal")
per_trial = fb["ledger_entries"] / fb["trials"]
prag = lambda k: ", ".join(f"{a} = {b}" for a, b in first(k)["pragmas"].items() if a in ("journal_mode", "synchronous"))
rdb = first("optuna rdb")["durability"]
ratio = lambda a, b: med[a] / med[b]
print(f"""# The spine: firebreak ask/tell vs Optuna 5

Written by `bench/spine.sh` ({day}; {cores} cores, {cpu}; REPEATS={repeats}, the
cases interleaved within each round). The machine was shared with other agents
compiling and testing while this ran (load average {load_start} at the start,
{load_end} at the end, on {cores} cores): absolute rates are those of a loaded
machine and vary from round to round; read the medians and the ratios, which
compare cases run minutes apart under the same load.

Trivial objective (`x` uniform in [-10, 10], minimise x²), random sampler,
SQLite, parallelism {p}; every tell is committed before that worker's next ask.
firebreak runs with every check `firebreak run` makes: the ledger verified at
open, each proposal validated against the space and authorised by Cedar with its
own context (proposer and parameters, no cached decision), each start
authorised, every decision in the ledger. Its first database held
{fb['ledger_entries']:,} ledger entries for {fb['trials']:,} trials ({per_trial:.2f} per
trial: {", ".join(f"{k} {v:,}" for k, v in sorted(kinds['kinds'].items()))}),
{kinds['proposals_with_cedar_allow']:,} proposals carrying Cedar's `allow`.

| case | durability | trials | trials/s, median ({repeats} runs) |
|---|---|---|---|
| firebreak ask/tell, every check on | WAL, synchronous = NORMAL, group commit (the default): a commit survives a killed process; a power cut may lose the last commits | {n_fb} | {med['firebreak normal']:,.0f} ({runs('firebreak normal')}) |
| firebreak ask/tell, every check on, `FIREBREAK_SQLITE_SYNCHRONOUS=FULL` | WAL, synchronous = FULL ({prag('firebreak full')}), group commit: every commit synced | {n_fb} | {med['firebreak full']:,.0f} ({runs('firebreak full')}) |
| Optuna 5.0 RDBStorage, SQLite | its defaults: journal_mode = {rdb['journal_mode']}, synchronous = {rdb['synchronous']} (FULL): every commit synced | {n_rdb} | {med['optuna rdb']:,.1f} ({runs('optuna rdb')}) |
| Optuna 5.0 JournalStorage, JournalFileBackend | its default: fsync after every append | {n_journal} | {med['optuna journal']:,.0f} ({runs('optuna journal')}) |

| ratio of medians | |
|---|---|
| firebreak (NORMAL) / Optuna RDB | {ratio('firebreak normal', 'optuna rdb'):,.0f}× |
| firebreak (FULL) / Optuna RDB — equal durability (every commit synced on both) | {ratio('firebreak full', 'optuna rdb'):,.0f}× |
| firebreak (NORMAL) / Optuna journal | {ratio('firebreak normal', 'optuna journal'):,.1f}× |
| firebreak (FULL) / Optuna journal — equal durability | {ratio('firebreak full', 'optuna journal'):,.1f}× |
| firebreak FULL / NORMAL | {ratio('firebreak full', 'firebreak normal'):.2f} |

Command trials, parallelism {p_cmd} (the runner, its folders, parameter file,
process, pipes and commits, against a bare spawn-and-wait loop of the same
program):

| program | firebreak trials/s | bare loop trials/s | ratio |
|---|---|---|---|""")
for prog in ["printf", "python3"]:
    a, b = f"firebreak command {prog}", f"bare loop {prog}"
    print(f"| `{prog}` | {med[a]:,.1f} ({runs(a)}) | {med[b]:,.1f} ({runs(b)}) | {med[a] / med[b]:.2f} |")
print(f"""
## Old figure and new, side by side

"Before" is the README's table until this page (REPEATS=3, no results file, the
same 2-core machine at another time; its 8,097 trials/s ran without a
Cedar decision per proposal, the 7,116 row with the checks of that time, a
decision reused within a run). "Now" is the table above.

| case | before | now |
|---|---|---|
| firebreak ask/tell | 8,097 (no per-proposal Cedar) · 7,116 (checks of the time) | {med['firebreak normal']:,.0f} (every check, Cedar per proposal) |
| firebreak ask/tell, synchronous = FULL | not measured | {med['firebreak full']:,.0f} |
| Optuna RDB (SQLite) | 47 | {med['optuna rdb']:,.1f} |
| ratio to Optuna RDB | 171× | {ratio('firebreak normal', 'optuna rdb'):,.0f}× (NORMAL), {ratio('firebreak full', 'optuna rdb'):,.0f}× (FULL, equal durability) |
| Optuna journal | 399 | {med['optuna journal']:,.0f} |
| ratio to Optuna journal | 20× | {ratio('firebreak normal', 'optuna journal'):,.1f}× (NORMAL), {ratio('firebreak full', 'optuna journal'):,.1f}× (FULL) |
| command trials, `python3`, firebreak / bare | 16.9 / 18.4 = 0.92 | {med['firebreak command python3']:,.1f} / {med['bare loop python3']:,.1f} = {ratio('firebreak command python3', 'bare loop python3'):.2f} |
| command trials, `printf`, firebreak / bare | 408 / 2,031 = 0.20 | {med['firebreak command printf']:,.0f} / {med['bare loop printf']:,.0f} = {ratio('firebreak command printf', 'bare loop printf'):.2f} |

`FIREBREAK_SQLITE_SYNCHRONOUS=FULL` is read when the store opens its
connections (`crates/firebreak-store/src/sqlite.rs`); anything else, or unset,
leaves the default `NORMAL`. It exists for this comparison.
""")
PY
cat "$OUT"
