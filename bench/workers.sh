#!/usr/bin/env bash
# Many worker processes on one PostgreSQL, firebreak against Optuna's RDB
# storage, in one invocation; writes bench/results/workers.md.
#
# Starts its own throwaway PostgreSQL (initdb + pg_ctl into a temporary folder,
# a free port of 127.0.0.1; as root, through `runuser -u postgres`), stopped and
# removed at exit whatever happens. The server keeps PostgreSQL's defaults for
# durability (fsync = on, synchronous_commit = on, full_page_writes = on: every
# commit flushed to the WAL before it returns); only what both sides share is
# set: the address, the port, the socket folder and max_connections = 200.
#
# For each process count in PROCS_LIST, each round (REPEATS), on a fresh
# database each:
#   - firebreak: `workers_throughput workers` (examples/workers_throughput.rs):
#     PROCS processes each `Campaign::join` one campaign (random sampler,
#     trivial objective y = x²) and loop ask → tell until every slot of
#     N_FIREBREAK is started;
#   - Optuna: bench/optuna_workers.py: PROCS processes each `optimize` their
#     share of N_OPTUNA trials of one study (RandomSampler, the same objective);
#   - the bare lease claim: `workers_throughput claims` (N_CLAIMS queued trials
#     claimed by PROCS processes).
# Both sides run the same total by default: a joined firebreak worker re-reads
# the campaign's history (every 200 ms, or ten times a read's duration), so its
# rate falls somewhat as the campaign grows, and equal totals compare like with
# like. Medians over the rounds, and their
# ratios. Then, once, firebreak with one process at each total in SCALING_N,
# which shows that fall.
#
#   bench/workers.sh                      # defaults below
#   REPEATS=1 N_FIREBREAK=2000 bench/workers.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REPEATS=${REPEATS:-3}
PROCS_LIST=${PROCS_LIST:-1 2 4 8}
N_FIREBREAK=${N_FIREBREAK:-2000}
N_OPTUNA=${N_OPTUNA:-2000}
N_CLAIMS=${N_CLAIMS:-5000}
SCALING_N=${SCALING_N:-500 1000 2000 4000}
OUT=${OUT:-bench/results/workers.md}

# Optuna 5 and psycopg2 in a virtual environment: FIREBREAK_BENCH_VENV, else
# the shared cache's, else bench/spine.sh's (bench/.venv) when it has Optuna 5.
optuna_ok() {
  "$1/bin/python" -c 'import optuna, sys; sys.exit(int(optuna.__version__.split(".")[0]) < 5)' 2>/dev/null
}
VENV=${FIREBREAK_BENCH_VENV:-$HOME/.cache/firebreak/optuna-venv}
if [ -z "${FIREBREAK_BENCH_VENV:-}" ] && ! optuna_ok "$VENV" && optuna_ok bench/.venv; then
  VENV=bench/.venv
fi
if ! optuna_ok "$VENV"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "optuna>=5"
fi
if ! "$VENV/bin/python" -c 'import psycopg2' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet psycopg2-binary
fi

cargo build --quiet --release -p firebreak-runner --example workers_throughput
BIN=${CARGO_TARGET_DIR:-target}/release/examples/workers_throughput

# The throwaway PostgreSQL.
PGBIN=${FIREBREAK_PG_BINDIR:-$(pg_config --bindir 2>/dev/null || true)}
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  PGBIN=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
fi
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL's server binaries are missing (initdb, pg_ctl): install postgresql" >&2; exit 1; }
TMP=$(mktemp -d)
AS=()
if [ "$(id -u)" = 0 ]; then
  AS=(runuser -u postgres --)
  chown postgres "$TMP"
fi
PGDATA_DIR=$TMP/data
cleanup() {
  if [ -f "$PGDATA_DIR/postmaster.pid" ]; then
    "${AS[@]}" "$PGBIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w >/dev/null 2>&1 ||
      "${AS[@]}" "$PGBIN/pg_ctl" stop -D "$PGDATA_DIR" -m immediate -w >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
# --no-sync: initdb does not flush the new cluster's files (not a server setting).
"${AS[@]}" "$PGBIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres -E UTF8 --locale=C --no-sync --no-instructions >/dev/null
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${AS[@]}" "$PGBIN/pg_ctl" start -D "$PGDATA_DIR" -l "$TMP/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories='$TMP' -c max_connections=200" >/dev/null
psql() { PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qAtX "$@"; }
settings=$(psql -c "SELECT string_agg(name || ' = ' || setting || coalesce(' ' || unit, ''), ', ' ORDER BY name) FROM pg_settings
  WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'wal_level',
                 'shared_buffers', 'max_connections', 'default_transaction_isolation', 'commit_delay')")
fresh_db() { psql -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"; }

results=$TMP/results.jsonl
tag() { sed "s/^{/{\"case\": \"$1\", /" >> "$results"; }
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$REPEATS"); do
  for p in $PROCS_LIST; do
    echo "round $r of $REPEATS, $p process(es)" >&2
    fresh_db fb
    "$BIN" workers "postgres://postgres@127.0.0.1:$PORT/fb" "$N_FIREBREAK" "$p" | tag firebreak
    fresh_db op
    "$VENV/bin/python" bench/optuna_workers.py "postgresql+psycopg2://postgres@127.0.0.1:$PORT/op" "$N_OPTUNA" "$p" | tag optuna
    fresh_db cl
    "$BIN" claims "postgres://postgres@127.0.0.1:$PORT/cl" "$N_CLAIMS" "$p" | tag claims
    psql -c "DROP DATABASE fb" -c "DROP DATABASE op" -c "DROP DATABASE cl"
  done
done
for n in $SCALING_N; do
  echo "firebreak, 1 process, $n trials" >&2
  fresh_db sc
  "$BIN" workers "postgres://postgres@127.0.0.1:$PORT/sc" "$n" 1 | tag scaling
  psql -c "DROP DATABASE sc"
done
psycopg2_version=$("$VENV/bin/python" -c 'import psycopg2; print(psycopg2.__version__.split()[0])')

python3 - "$results" "$REPEATS" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(date -u +%Y-%m-%d)" \
  "$settings" "$psycopg2_version" "$N_FIREBREAK" "$N_OPTUNA" "$N_CLAIMS" "$PROCS_LIST" > "$OUT" <<'PY'
import json, statistics, sys
(path, repeats, load_start, load_end, cores, cpu, day, settings, psycopg2_version,
 n_fb, n_optuna, n_claims, procs_list) = sys.argv[1:14]
rows = [json.loads(line) for line in open(path)]
procs = [int(p) for p in procs_list.split()]
def runs(case, p):
    return [r for r in rows if r["case"] == case and r["procs"] == p]
def rate(r):
    return r.get("trials_per_s", r.get("claims_per_s"))
def med(case, p):
    return statistics.median(rate(r) for r in runs(case, p))
def each(case, p, fmt):
    return " · ".join(format(rate(r), fmt) for r in runs(case, p))
optuna_row = rows[[r["case"] for r in rows].index("optuna")]
fb_1 = med("firebreak", procs[0])
fb_max = med("firebreak", procs[-1])
ratios = {p: med("firebreak", p) / med("optuna", p) for p in procs}
all_dup = {c: sum(r["duplicates"] for r in rows if r["case"] == c) for c in ("firebreak", "optuna", "claims")}
verified = all(r["ledger_verified"] is True for r in rows if r["case"] in ("firebreak", "claims", "scaling"))
scaling = [r for r in rows if r["case"] == "scaling"]
print(f"""# Many workers on PostgreSQL: firebreak against Optuna {optuna_row['optuna']}

Written by `bench/workers.sh` ({day}; `REPEATS={repeats} bench/workers.sh`;
{cores} cores, {cpu}). The machine was shared with other agents compiling and
testing (load average {load_start} at the start, {load_end} at the end): read
the medians and the ratios, which compare cases run minutes apart under the
same load, more than the absolute rates.

One throwaway PostgreSQL server for both sides, started by the script
(initdb + pg_ctl, a free port on 127.0.0.1, a fresh database per case), with
PostgreSQL's default durability: every commit is flushed to the WAL before it
returns. Settings: {settings}. Optuna {optuna_row['optuna']}, SQLAlchemy
{optuna_row['sqlalchemy']}, psycopg2 {psycopg2_version}.

Trivial objective (`x` uniform in [-10, 10], minimise x²), random sampler, PROCS
separate processes on one campaign or study; the clock runs from the first
process's start to the last one's exit (process start, connecting and joining
included). Totals: firebreak {int(n_fb):,} trials, Optuna {int(n_optuna):,}
trials (split evenly over its processes, `study.optimize(n_trials=share)` each),
claims {int(n_claims):,} queued trials.

- firebreak: each process `Campaign::join`s the campaign (ledger verified at
  join, 60 s lease with its heartbeat) and loops ask → y = x² → tell until
  the store answers `NoSlot`: every proposal validated and authorised by Cedar,
  every start authorised and counted against `n_trials` inside its own
  transaction, every decision in the hash-chained ledger.
- Optuna: `optuna.load_study(storage="postgresql+psycopg2://…",
  sampler=RandomSampler)` and `study.optimize` in each process (forked after the
  study was created).
- claims: the bare lease claim, `Store::claim_queued` (with the `n_trials` slot
  check, no policy decision) by PROCS processes until the queue is empty.

| procs | firebreak trials/s, median ({repeats} runs) | Optuna trials/s, median | firebreak / Optuna | firebreak duplicates |
|---|---|---|---|---|""")
for p in procs:
    dup = sum(r["duplicates"] for r in runs("firebreak", p))
    print(f"| {p} | {med('firebreak', p):,.0f} ({each('firebreak', p, ',.0f')}) "
          f"| {med('optuna', p):,.1f} ({each('optuna', p, ',.1f')}) | {ratios[p]:,.1f}× | {dup} |")
print()
print("Bare lease claims/s, median: " + "; ".join(
    f"{p} proc{'s' if p > 1 else ''} {med('claims', p):,.0f} ({each('claims', p, ',.0f')})" for p in procs)
    + f"; duplicates {all_dup['claims']}.")
if scaling:
    print("\nfirebreak, one process, by campaign size (one run each): " + "; ".join(
        f"{r['trials']:,} trials {r['trials_per_s']:,.0f}/s" for r in scaling)
        + ". A joined worker re-reads the whole history every 200 ms (or ten times a read's duration), so the rate falls somewhat as the campaign grows.")
ok_ratio = all(v >= 50 for v in ratios.values())
ok_scale = fb_max >= 2 * fb_1
print(f"""
Every firebreak, claims and size database passed `verify_ledger` afterwards (the full
audit: chain, replay, state): {'yes' if verified else 'NO'}. Duplicates or missing
trials over every run: firebreak {all_dup['firebreak']}, Optuna {all_dup['optuna']},
claims {all_dup['claims']}.

## The issue's targets

- firebreak ≥ 50× Optuna's trials/s at every process count: {'met' if ok_ratio else 'NOT met'}
  ({", ".join(f"{p}: {ratios[p]:,.1f}×" for p in procs)}).
- firebreak at {procs[-1]} processes ≥ 2× firebreak at {procs[0]}: {'met' if ok_scale else 'NOT met'}
  ({fb_max:,.0f} / {fb_1:,.0f} = {fb_max / fb_1:.2f}×).

## What bounds the numbers

- {cores} cores shared by PostgreSQL, the worker processes and whatever else the
  machine ran: past {cores} processes, more workers only add contention, on
  both sides.
- Every firebreak append (a start, a finish, each with its ledger entries)
  takes one transaction-level advisory lock (`pg_advisory_xact_lock`) before
  reading the ledger head, so that many processes keep one hash chain: appends
  are serialised, each holding the lock through its commit's WAL flush.
  A trial is two such transactions (start, finish) of four round trips each
  on loopback: `BEGIN` with the lock; the head (with the next number and the
  started count, for a start); the state change with its ledger entries as
  one statement; `COMMIT`. Eight round trips per trial, three of every four
  of them under the lock, bound the rate whatever the process count.
- A joined worker proposes from the store's history, not its own, so it
  re-reads the campaign's trials and reports (`Store::trials`) every 200 ms,
  or ten times as long as a read takes: at most a tenth of its time, but a
  share of the {cores} cores that grows with the campaign (the size line
  above). The claims line is the store's claim alone, without it.
""")
PY
cat "$OUT"
