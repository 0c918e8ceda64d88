#!/usr/bin/env bash
# The main job's targets, measured: runs an example campaign (default
# examples/digits.toml) for several campaign seeds on fresh databases and prints
# wall time, trial CPU time, pruned count and the champion's validation and test
# accuracy per seed, with medians; with NO_SCHEDULER="SEEDS" also the same campaign
# with `scheduler = "none"` (same seed), for ASHA's compute saving at equal
# champion quality (NO_SCHEDULER lists the seeds, e.g. NO_SCHEDULER="1").
# PARALLELISM=N overrides the spec's `parallelism` (trials per minute at 1 and 2
# cores). Writes bench/results/main-job-<name>.md (<name>-p<N>.md with PARALLELISM).
#
# SPLIT_SEEDS="S…" measures a claim on data never used for choices
# (docs/evaluation.md): one campaign per split seed and campaign seed, each with
# `split_seed = S` added to the spec's [task] (its train / validation / test
# partition drawn from S). It writes bench/results/main-job-<name>-honest.md,
# keeping everything above the marker line below (the seeds and the rule, written
# and committed before the run) and replacing what follows it with the table, the
# median and the verdict against TARGET (default 0.985).
#
#   bench/main_job.sh [SPEC] [SEEDS…]        # default: examples/digits.toml 1 2 3
#   SPLIT_SEEDS="101 102 103 104 105" bench/main_job.sh examples/digits.toml 7
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC=${1:-examples/digits.toml}
shift || true
SEEDS=${*:-1 2 3}
cargo build --quiet --release -p firebreak-cli
BIN=target/release/firebreak
WORK=$(mktemp -d)
name=$(basename "$SPEC" .toml)${PARALLELISM:+-p$PARALLELISM}${SPLIT_SEEDS:+-honest}
MARKER='<!-- Everything below this line is written by bench/main_job.sh. -->'
spec() { # seed [sed expressions…]: the spec for one campaign
  local seed=$1
  shift
  sed -e "s/^seed = .*/seed = $seed/" ${PARALLELISM:+-e "s/^parallelism = [0-9]*/parallelism = $PARALLELISM/"} "$@" "$SPEC"
}
run() { # variant seed spec-file [split seed]
  local db="$WORK/$1-$2.db" start end
  start=$(date +%s.%N)
  "$BIN" --quiet --storage "sqlite://$db" run "$3" > "$WORK/$1-$2.out" 2>&1 || cat "$WORK/$1-$2.out" >&2
  end=$(date +%s.%N)
  "$BIN" --storage "sqlite://$db" trials "$(sed -n 's/^name = "\(.*\)"/\1/p' "$3" | head -1)" --format json > "$WORK/$1-$2.json"
  python3 - "$WORK/$1-$2.json" "$1" "$2" "$start" "$end" "${4:-}" <<'PY'
import json, sys
trials = json.load(open(sys.argv[1]))
done = [t for t in trials if t["state"] == "complete"]
# The champion is the trial the run tested (the objective's best).
tested = [t for t in done if "test_accuracy" in t["metrics"]]
champ = tested[0] if tested else None
cpu = sum(t["cpu_seconds"] or 0 for t in trials)
print(json.dumps({"variant": sys.argv[2], "seed": int(sys.argv[3].split("-")[-1]),
  "split": int(sys.argv[6]) if sys.argv[6] else None, "wall": float(sys.argv[5]) - float(sys.argv[4]), "cpu": cpu,
  "pruned": sum(t["state"] == "pruned" for t in trials), "trials": len(trials),
  "val": champ and champ["metrics"].get("val_accuracy"), "test": champ and champ["metrics"].get("test_accuracy")}))
PY
}
rows=""
if [[ -n "${SPLIT_SEEDS:-}" ]]; then
  for seed in $SEEDS; do
    for split in $SPLIT_SEEDS; do
      spec "$seed" -e "s/^\[task\]\$/[task]\nsplit_seed = $split/" > "$WORK/split$split-$seed.toml"
      grep -q "^split_seed = $split\$" "$WORK/split$split-$seed.toml" || { echo "no [task] line in $SPEC" >&2; exit 2; }
      rows+=$(run asha "split$split-$seed" "$WORK/split$split-$seed.toml" "$split")$'\n'
    done
  done
  out="bench/results/main-job-$name.md"
  mkdir -p bench/results
  grep -qF "$MARKER" "$out" || { echo "$out lacks the marker line; write the seeds and the rule above it first" >&2; exit 2; }
  head=$(awk -v m="$MARKER" '{ print } $0 == m { exit }' "$out")
  rev=${REV:-}
  if [[ -z "$rev" ]]; then
    rev=$(git rev-parse --short HEAD 2>/dev/null || echo "an unknown commit")
    if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null || true)" ]]; then rev+=" with uncommitted changes"; fi
  fi
  python3 - "$rows" "$SPEC" "${TARGET:-0.985}" "$SEEDS" "$SPLIT_SEEDS" "$rev" > "$WORK/table.md" <<'PY'
import json, os, statistics, sys, time
rows = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
target = float(sys.argv[3])
print(f"\nWritten {time.strftime('%Y-%m-%d %H:%M')} by `SPLIT_SEEDS=\"{sys.argv[5]}\" bench/main_job.sh {sys.argv[2]} {sys.argv[4]}`;")
print(f"Binary built from {sys.argv[6]}; {os.cpu_count()} cores; wall time includes the refit, the test evaluation and the ledger; trial CPU seconds summed over trials.\n")
print("| split seed | campaign seed | wall s | trial CPU s | pruned / trials | champion val | champion test |")
print("|---:|---:|---:|---:|---:|---:|---:|")
fmt = lambda v: "-" if v is None else f"{v:.4f}"
for r in rows:
    print(f"| {r['split']} | {r['seed']} | {r['wall']:.0f} | {r['cpu']:.0f} | {r['pruned']} / {r['trials']} | {fmt(r['val'])} | {fmt(r['test'])} |")
tests = [r["test"] for r in rows if r["test"] is not None]
med = statistics.median(tests) if tests else None
print(f"| **median** | | {statistics.median(r['wall'] for r in rows):.0f} | {statistics.median(r['cpu'] for r in rows):.0f} | | | **{fmt(med)}** |\n")
print(f"Champion test accuracy on the {len(rows)} pre-registered splits: " + ", ".join(fmt(t) for t in tests)
      + f" (min {fmt(min(tests) if tests else None)}, median {fmt(med)}, max {fmt(max(tests) if tests else None)}).")
held = med is not None and len(tests) == len(rows) and med >= target
print(f"Target: median champion test accuracy >= {target} on these splits: **{'held' if held else 'not held'}**"
      + ("" if len(tests) == len(rows) else f" ({len(rows) - len(tests)} runs ended without a tested champion)") + ".")
PY
  { printf '%s\n' "$head"; cat "$WORK/table.md"; } > "$out"
  cat "$out"
  rm -rf "$WORK"
  exit 0
fi
for seed in $SEEDS; do
  spec "$seed" > "$WORK/asha-$seed.toml"
  rows+=$(run asha "$seed" "$WORK/asha-$seed.toml")$'\n'
  if [[ " ${NO_SCHEDULER:-} " == *" $seed "* ]]; then
    spec "$seed" -e 's/^scheduler = .*/scheduler = "none"/' -e '/^\[search.scheduler_options\]/,/^$/d' > "$WORK/none-$seed.toml"
    rows+=$(run none "$seed" "$WORK/none-$seed.toml")$'\n'
  fi
done
mkdir -p bench/results
python3 - "$rows" "$SPEC" <<'PY' | tee "bench/results/main-job-$name.md"
import json, os, statistics, sys
rows = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
print(f"# Main job: `{sys.argv[2]}`\n")
print(f"{os.cpu_count()} cores; wall time includes the test evaluation and the ledger; trial CPU seconds summed over trials.")
print("Rerun: `bench/main_job.sh " + sys.argv[2] + "` (NO_SCHEDULER=SEEDS adds those seeds' campaigns without a scheduler).\n")
print("| variant | seed | wall s | trials / min | trial CPU s | pruned / trials | champion val | champion test |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    fmt = lambda v: "-" if v is None else f"{v:.4f}"
    r["rate"] = 60 * r["trials"] / r["wall"]
    print(f"| {r['variant']} | {r['seed']} | {r['wall']:.0f} | {r['rate']:.1f} | {r['cpu']:.0f} | {r['pruned']} / {r['trials']} | {fmt(r['val'])} | {fmt(r['test'])} |")
for v in sorted({r["variant"] for r in rows}):
    rs = [r for r in rows if r["variant"] == v]
    med = lambda k: statistics.median(r[k] or 0 for r in rs)
    print(f"| **{v} median** | | {med('wall'):.0f} | {med('rate'):.1f} | {med('cpu'):.0f} | | {med('val'):.4f} | {med('test'):.4f} |")
PY
rm -rf "$WORK"
