#!/usr/bin/env bash
# The README's MNIST-1D figures for single configurations (the paper's gap
# between logistic regression, MLPs and a CNN), each trained with the `fit`
# example for every seed in SEEDS; writes bench/results/mnist1d-fit.md with each
# seed's test accuracy and the median.
#
#   bench/mnist1d_fit.sh              # SEEDS="0 1 2"
# `cargo test -p firebreak-train --test train mnist1d` keeps bounds on the same
# configurations (seed 0, test build).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-0 1 2}
cargo build --quiet --release -p firebreak-train --example fit
FIT=${CARGO_TARGET_DIR:-target}/release/examples/fit
configs=(
  "logistic regression, 30 epochs|mlp depth=0 --epochs 30"
  "MLP 2×100, 40 epochs|mlp depth=2 width=100 --epochs 40"
  "MLP 2×256, 60 epochs|mlp depth=2 width=256 --epochs 60"
  "1-D CNN, 3 blocks of 32, kernel 5, no pooling, 30 epochs|cnn blocks=3 channels=32 kernel=5 pool=none --epochs 30"
)
rows=""
for config in "${configs[@]}"; do
  name=${config%%|*}
  args=${config#*|}
  for seed in $SEEDS; do
    # shellcheck disable=SC2086 # args is a list of words
    out=$("$FIT" mnist1d $args --seed "$seed")
    accuracy=$(sed -n 's/.*test_accuracy \([0-9.]*\).*/\1/p' <<<"$out")
    seconds=$(grep '^epoch' <<<"$out" | tail -1 | sed -n 's/.*(\([0-9.]*\) s)$/\1/p')
    rows+="$name|$args|$seed|$accuracy|$seconds"$'\n'
  done
done
mkdir -p bench/results
python3 - "$rows" "$SEEDS" "$(nproc)" <<'PY' | tee bench/results/mnist1d-fit.md
import statistics, sys, time
rows = [l.split("|") for l in sys.argv[1].splitlines() if l]
print("# MNIST-1D, single configurations with `fit`\n")
print(f"Written {time.strftime('%Y-%m-%d %H:%M')} by `SEEDS=\"{sys.argv[2]}\" bench/mnist1d_fit.sh`;")
print(f"release build, one thread per training, {sys.argv[3]} cores (shared: times vary with load).")
print("Test accuracy on the bundled test split; training time to the last epoch.")
print("The paper (Greydanus 2020): logistic about 32 %, MLP 60-68 %, CNN about 94 %.\n")
print("| configuration | `fit mnist1d …` | test accuracy per seed | median | seconds, median |")
print("|---|---|---|---:|---:|")
names = list(dict.fromkeys(r[0] for r in rows))
for name in names:
    mine = [r for r in rows if r[0] == name]
    acc = [float(r[3]) for r in mine]
    secs = [float(r[4]) for r in mine]
    per_seed = " · ".join(f"{a:.4f} (seed {r[2]})" for a, r in zip(acc, mine))
    print(f"| {name} | `{mine[0][1]}` | {per_seed} | {statistics.median(acc):.4f} | {statistics.median(secs):.1f} |")
PY
