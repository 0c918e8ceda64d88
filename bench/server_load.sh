#!/usr/bin/env bash
# The server under bounded load (issue 19), in one invocation; writes
# bench/results/server-load.md.
#
# A campaign at full speed (N_TRIALS command trials of a `printf` program, two
# at a time: the engine, not the program, bounds its rate) runs twice on a fresh SQLite database each time:
# alone, and with `firebreak serve` on the same database while
# bench/server_load.py keeps CLIENTS SSE clients connected (each checking that
# the sequence numbers it receives are contiguous and reach the ledger's end)
# and sends RATE API requests/s for SECONDS seconds (latency measured from when
# each request was due). Everything runs on this machine: the load generator
# shares its cores with the campaign and the server, which bounds what the
# numbers can show on 2 cores. Repeated REPEATS times; medians.
#
#   bench/server_load.sh                       # defaults below
#   REPEATS=1 SECONDS_=20 bench/server_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REPEATS=${REPEATS:-3}
N_TRIALS=${N_TRIALS:-20000}
CLIENTS=${CLIENTS:-100}
RATE=${RATE:-200}
SECONDS_=${SECONDS_:-60}
OUT=${OUT:-bench/results/server-load.md}

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/firebreak/target}"
cargo build --release --quiet -p firebreak-cli
FB="$CARGO_TARGET_DIR/release/firebreak"
work=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

spec="$work/load.toml"
cat > "$work/template.toml" <<'TOML'
[campaign]
name = "NAME"
seed = 1

[objective]
metric = "y"
direction = "minimize"

[space]
x = { type = "float", low = 0.0, high = 1.0 }

[search]
sampler = "random"
n_trials = N
parallelism = 2

[task]
kind = "command"
command = ["printf", "\\173\"final\": true, \"y\": {x}\\175\\n"]
TOML
sed -e "s/NAME/load/" -e "s/^n_trials = N/n_trials = $N_TRIALS/" "$work/template.toml" > "$spec"
# A one-trial campaign creates the served database before the measured one starts.
sed -e "s/NAME/warmup/" -e "s/^n_trials = N/n_trials = 1/" "$work/template.toml" > "$work/warmup.toml"

rate() {  # trials/s of the campaign in database $1 (first to last finish)
  "$FB" --storage "sqlite://$1" trials load --format json | python3 -c '
import json, sys, datetime
t = json.load(sys.stdin)
ts = sorted(datetime.datetime.fromisoformat(x["finished_at"].replace("Z", "+00:00")).timestamp() for x in t if x["finished_at"])
print(len(ts) / (ts[-1] - ts[0]))'
}

results="$work/results.txt"
for round in $(seq 1 "$REPEATS"); do
  alone="$work/alone-$round.db"
  FIREBREAK_ENGINE_KEY="$work/engine.key" "$FB" --quiet --storage "sqlite://$alone" run "$spec" >/dev/null
  alone_rate=$(rate "$alone")

  served="$work/served-$round.db"
  FIREBREAK_ENGINE_KEY="$work/engine.key" "$FB" --quiet --storage "sqlite://$served" run "$work/warmup.toml" >/dev/null
  token=$("$FB" --storage "sqlite://$served" tokens new load --role auditor 2>/dev/null)
  "$FB" --quiet --storage "sqlite://$served" serve --bind 127.0.0.1:0 > "$work/url" 2>"$work/serve.log" &
  server_pid=$!
  for _ in $(seq 50); do [ -s "$work/url" ] && break; sleep 0.1; done
  url=$(head -1 "$work/url")
  start=$(curl -s -H "Authorization: Bearer $token" "$url/api/v1/ledger?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')
  FIREBREAK_ENGINE_KEY="$work/engine.key" "$FB" --quiet --storage "sqlite://$served" run "$spec" >/dev/null &
  run_pid=$!
  python3 bench/server_load.py "$url" "$token" --campaign load --clients "$CLIENTS" --rate "$RATE" \
    --seconds "$SECONDS_" --from "$start" --until 0 --out "$work/load-$round.json" &
  load_pid=$!
  wait "$run_pid"
  end=$(curl -s -H "Authorization: Bearer $token" "$url/api/v1/ledger?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')
  wait "$load_pid"
  # Every client must have every entry from start to the end of the run.
  python3 bench/server_load.py "$url" "$token" --campaign load --clients "$CLIENTS" --rate 1 \
    --seconds 1 --from "$start" --until "$end" --out "$work/replay-$round.json"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
  served_rate=$(rate "$served")
  echo "$round $alone_rate $served_rate $work/load-$round.json $work/replay-$round.json $start $end" >> "$results"
  echo "round $round: alone $alone_rate trials/s, served $served_rate trials/s" >&2
done

python3 - "$results" "$OUT" "$N_TRIALS" "$CLIENTS" "$RATE" "$SECONDS_" <<'PY'
import json, statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
out, n, clients, rate, seconds = sys.argv[2:7]
alone = [float(r[1]) for r in rows]
served = [float(r[2]) for r in rows]
loads = [json.load(open(r[3])) for r in rows]
replays = [json.load(open(r[4])) for r in rows]
med = statistics.median
lines = [
    "# `firebreak serve` under bounded load",
    "",
    f"Produced by `bench/server_load.sh` (REPEATS={len(rows)}, N_TRIALS={n}, CLIENTS={clients}, "
    f"RATE={rate}/s, SECONDS={seconds}) on this repository's 2-core machine; the load generator "
    "(bench/server_load.py), the server and the campaign share the two cores. Medians over rounds.",
    "",
    "| round | campaign alone (trials/s) | with server + load (trials/s) | ratio | API requests | p50 ms | p99 ms | max ms | statuses | SSE clients connected | clients with a gap | events per client (min–max) | clients that received every entry of the run (replay) |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
]
for r, a, s, l, p in zip(rows, alone, served, loads, replays):
    lines.append(f"| {r[0]} | {a:.0f} | {s:.0f} | {s / a:.2f} | {l['requests']} | {l['p50_ms']:.1f} | {l['p99_ms']:.1f} | "
                 f"{l['max_ms']:.0f} | {l['statuses']} | {l['clients_connected']} | {l['clients_with_gaps'] + p['clients_with_gaps']} | "
                 f"{l['events_min']}–{l['events_max']} | {p['clients_reaching_end']} of {p['clients']} (entries {r[5]}–{int(r[6]) - 1}) |")
lines += [
    "",
    f"Median: alone {med(alone):.0f} trials/s, with server and load {med(served):.0f} trials/s "
    f"(ratio {med(served) / med(alone):.2f}; target ≥ 0.90); p99 API latency {med(l['p99_ms'] for l in loads):.1f} ms "
    "(target ≤ 50 ms); clients with a gap in their sequence numbers: "
    f"{sum(l['clients_with_gaps'] + p['clients_with_gaps'] for l, p in zip(loads, replays))} (target 0).",
]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
