#!/usr/bin/env bash
# Overhead of the trial sandbox (issue 16): N trivial trials (a shell script that
# prints the protocol's result line) run by `firebreak run` with and without
# `[task.sandbox]`, interleaved in ROUNDS rounds so machine load hits both alike.
# Per trial: the trial's wall seconds as the runner records them (from before the
# sandbox is prepared to after its cgroup is removed). Prints and writes
# bench/results/sandbox.md: the median per-trial wall time of each and the median
# added milliseconds per trial. Target: at most 10 ms added.
#   N=200 ROUNDS=3 bench/sandbox.sh        (about a minute after the build)
#   PROFILE=dev bench/sandbox.sh           (the debug build: no release build to wait for)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200}
ROUNDS=${ROUNDS:-3}
PROFILE=${PROFILE:-release}
cargo build --quiet --profile "$PROFILE" -p firebreak-cli
OUT=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/$OUT/firebreak
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
cat > "$DIR/trial.sh" <<'TRIAL'
#!/bin/sh
echo '{"final": true, "y": 1}'
TRIAL
chmod +x "$DIR/trial.sh"
spec() { # name, extra
  cat > "$DIR/$1.toml" <<SPEC
[campaign]
name = "$1"
[objective]
metric = "y"
direction = "minimize"
[space]
x = { type = "float", low = 0.0, high = 1.0 }
[search]
sampler = "random"
n_trials = $N
[task]
kind = "command"
command = ["./trial.sh"]
$2
SPEC
}
for round in $(seq 1 "$ROUNDS"); do
  for mode in plain sandboxed; do
    extra=""
    [ "$mode" = sandboxed ] && extra="[task.sandbox]"
    spec "$mode-$round" "$extra"
    "$BIN" --storage "sqlite://$DIR/db.sqlite" run --quiet "$DIR/$mode-$round.toml" >/dev/null
    "$BIN" --storage "sqlite://$DIR/db.sqlite" trials "$mode-$round" --format json > "$DIR/$mode-$round.json"
  done
done
python3 - "$DIR" "$N" "$ROUNDS" "$PROFILE" <<'PY' | tee bench/results/sandbox.md
import json, os, platform, statistics, sys
folder, n, rounds, profile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def walls(mode):
    out = []
    for r in range(1, rounds + 1):
        trials = json.load(open(os.path.join(folder, f"{mode}-{r}.json")))
        bad = [t for t in trials if t["state"] != "complete"]
        assert not bad, bad[0]
        out += [t["wall_seconds"] * 1000 for t in trials]
    return out
plain, boxed = walls("plain"), walls("sandboxed")
mp, mb = statistics.median(plain), statistics.median(boxed)
q = lambda xs, p: sorted(xs)[int(p * (len(xs) - 1))]
kernel = platform.release()
print("# Trial sandbox overhead (bench/sandbox.sh)\n")
print(f"{n} trivial trials (`/bin/sh` printing the result line) x {rounds} rounds per mode, "
      f"interleaved, `firebreak run` ({profile} build), parallelism 1, on {os.cpu_count()} cores, "
      f"Linux {kernel}, as uid {os.getuid()}. Per-trial wall time as the runner records it.\n")
print("| mode | trials | median ms | p10 ms | p90 ms |")
print("|---|---|---|---|---|")
for name, xs in (("plain", plain), ("sandboxed", boxed)):
    print(f"| {name} | {len(xs)} | {statistics.median(xs):.2f} | {q(xs, .1):.2f} | {q(xs, .9):.2f} |")
print(f"\n**Median added per trial: {mb - mp:.2f} ms** (target: at most 10 ms).\n")
print("Sandboxed means: Landlock ruleset (ABI as probed), two seccomp programs, rlimits, a "
      "`pids` cgroup made and removed per trial, capabilities dropped, a scrubbed environment.")
PY
