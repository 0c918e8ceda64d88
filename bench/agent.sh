#!/usr/bin/env bash
# The LLM agent proposer with a real local model (tracker issue 16, "Measured"):
# llama.cpp's server with Gemma 3 270M (scripts/local-llm.sh install first), started
# and stopped here on a free port with a private pid file. Writes
# bench/results/agent.md through bench/agent_report.py; every number on that page
# comes from the campaigns' `trials --format json` and `audit export`.
#
# Config mode: the bundled NAS-Bench-201 table (examples/nasbench201.toml's space),
# EVALS evaluations per campaign, the agent against TPE and random search on the
# same campaign seeds 1..SEEDS, one worker each.
# Code mode: examples/agent/code.toml as shipped (its model settings, debug rounds
# and sandbox), three trials per campaign on campaign seeds 1, 2, ... until the
# agent has answered CANDIDATES times; and the parent program once, through a
# one-trial campaign whose endpoint does not answer, so the fallback runs the
# workspace's program unchanged and the engine scores it.
#
#   bench/agent.sh                       # SEEDS=10 EVALS=50 CANDIDATES=30
#   SEEDS=3 CANDIDATES=30 bench/agent.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-10}
EVALS=${EVALS:-50}
CANDIDATES=${CANDIDATES:-30}
OUT=${OUT:-bench/results/agent.md}

cargo build --quiet --release -p firebreak-cli
BIN=$(realpath "${CARGO_TARGET_DIR:-target}/release/firebreak")
INSTALLED=${FIREBREAK_LLM_CACHE:-${HOME:-/root}/.cache/firebreak/llm}
if [[ ! -x "$INSTALLED/bin/llama-server" || ! -f "$INSTALLED/models/gemma-3-270m-q4_k_m.gguf" ]]; then
  echo "bench/agent.sh: the local model is not installed; run scripts/local-llm.sh install" >&2
  exit 1
fi

WORK=$(mktemp -d)
# A private cache folder (links to the installed server and model): its own pid
# file, so `stop` stops this server only.
mkdir -p "$WORK/llm" "$WORK/db"
# A copy of the binary: a rebuild while the benchmark runs does not change it midway.
cp "$BIN" "$WORK/firebreak"
BIN="$WORK/firebreak"
ln -s "$INSTALLED/bin" "$WORK/llm/bin"
ln -s "$INSTALLED/models" "$WORK/llm/models"
export FIREBREAK_LLM_CACHE="$WORK/llm"
export FIREBREAK_ENGINE_KEY="$WORK/engine.key"
unset FIREBREAK_STORAGE
cleanup() {
  scripts/local-llm.sh stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
scripts/local-llm.sh start --port "$PORT" >"$WORK/start.txt"
URL="http://127.0.0.1:$PORT/v1"
MANIFEST="$WORK/manifest.jsonl"
: >"$MANIFEST"

# run MODE SAMPLER SEED CAMPAIGN SPEC: one campaign on its own database; its
# wall time and exit status go to the manifest.
run() {
  local db="$WORK/db/$4.db" start end status=0
  start=$(date +%s.%N)
  (cd "$WORK" && "$BIN" --quiet --storage "sqlite://$db" run "$5") >"$WORK/$4.out" 2>&1 || status=$?
  end=$(date +%s.%N)
  if ((status != 0)); then
    echo "bench/agent.sh: $4 exited with $status" >&2
    tail -n 5 "$WORK/$4.out" >&2
  fi
  printf '{"mode": "%s", "sampler": "%s", "seed": %s, "campaign": "%s", "db": "%s", "wall": %s, "exit": %s}\n' \
    "$1" "$2" "$3" "$4" "$db" "$(awk "BEGIN { print $end - $start }")" "$status" >>"$MANIFEST"
  echo "$4: exit $status, $(awk "BEGIN { printf \"%.1f\", $end - $start }") s" >&2
}
# Config mode: the NAS-Bench-201 space, read from examples/nasbench201.toml.
ln -s "$PWD/examples/tables" "$WORK/tables"
SPACE=$(sed -n '/^\[space\]/,/^\[search\]/p' examples/nasbench201.toml | grep '^op')
config_spec() { # sampler seed
  cat <<EOF
[campaign]
name = "nb-$1-$2"
seed = $2

[objective]
metric = "val_accuracy"
direction = "maximize"

[space]
$SPACE

[search]
sampler = "$1"
n_trials = $EVALS
parallelism = 1
EOF
  if [[ "$1" == agent ]]; then
    cat <<EOF

[search.sampler_options]
base_url = "$URL"
model = "gemma-3-270m"
fallback = "tpe"
timeout = "120s"
EOF
  fi
  cat <<EOF

[task]
kind = "table"
path = "tables/nasbench201-cifar10.csv"
EOF
}
for seed in $(seq 1 "$SEEDS"); do
  for sampler in agent tpe random; do
    config_spec "$sampler" "$seed" >"$WORK/nb-$sampler-$seed.toml"
    run config "$sampler" "$seed" "nb-$sampler-$seed" "$WORK/nb-$sampler-$seed.toml"
  done
done

# Code mode: the example as shipped, this server, three trials per campaign.
cp -r examples/agent/program "$WORK/program"
code_spec() { # seed name n_trials base_url [extra sampler options]
  sed -e "s/^seed = .*/seed = $1/" -e "s/^name = .*/name = \"$2\"/" \
    -e "s/^n_trials = .*/n_trials = $3/" \
    -e "s#^base_url = .*#base_url = \"$4\"\ntimeout = \"120s\"${5:-}#" examples/agent/code.toml
}
# answers CAMPAIGN: how many agent_answered entries its ledger has.
answers() {
  "$BIN" --storage "sqlite://$WORK/db/$1.db" audit export |
    python3 -c 'import json, sys; print(sum(json.loads(json.loads(l)["payload"])["kind"] == "agent_answered" for l in sys.stdin if "payload" in json.loads(l)))'
}
total=0
seed=0
while ((total < CANDIDATES)); do
  seed=$((seed + 1))
  code_spec "$seed" "code-$seed" 3 "$URL" >"$WORK/code-$seed.toml"
  run code agent "$seed" "code-$seed" "$WORK/code-$seed.toml"
  total=$((total + $(answers "code-$seed")))
done
# The parent: nothing listens on port 9 of 127.0.0.1, so the one request fails,
# max_invalid = 1 hands over to the fallback, which runs the workspace unchanged.
code_spec 1 parent 1 "http://127.0.0.1:9/v1" '\nretries = 0\nmax_invalid = 1' >"$WORK/parent.toml"
run parent fallback 1 parent "$WORK/parent.toml"

python3 bench/agent_report.py "$BIN" "$MANIFEST" "$WORK/start.txt" \
  "SEEDS=$SEEDS EVALS=$EVALS CANDIDATES=$CANDIDATES bench/agent.sh" >"$OUT"
echo "wrote $OUT" >&2
