#!/usr/bin/env bash
# Recursive generations (tracker issue 17): does a promoted champion teach
# smaller students better than labels alone? examples/generations.toml as shipped
# (generation 1 searches CNN teachers on MNIST-1D; generations 2 and 3 search
# students with at most a quarter of the teacher's parameters, taught by the last
# promoted champion) against the same spec with the teacher taken out
# (seed_next = ["parent", "narrow"]: students from labels alone), on campaign seeds
# 1..SEEDS, same budgets, one database each. Writes bench/results/generations.md
# through bench/generations_report.py; every number there comes from the
# campaigns' `trials --format json`, `lineage --format json` and `audit verify`.
#
#   bench/generations.sh            # SEEDS=5
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-5}
OUT=${OUT:-bench/results/generations.md}

cargo build --quiet --release -p firebreak-cli
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# A copy of the binary: a rebuild while the benchmark runs does not change it midway.
cp "$(realpath "${CARGO_TARGET_DIR:-target}/release/firebreak")" "$WORK/firebreak"
BIN="$WORK/firebreak"
export FIREBREAK_ENGINE_KEY="$WORK/engine.key"
unset FIREBREAK_STORAGE
MANIFEST="$WORK/manifest.jsonl"
: >"$MANIFEST"

for seed in $(seq 1 "$SEEDS"); do
  for arm in taught labels; do
    name="gen-$arm-$seed"
    spec="$WORK/$name.toml"
    sed -e "s/^name = .*/name = \"$name\"/" -e "s/^seed = .*/seed = $seed/" \
      examples/generations.toml >"$spec"
    if [[ $arm == labels ]]; then
      sed -i 's/^seed_next = .*/seed_next = ["parent", "narrow"]/' "$spec"
    fi
    db="$WORK/$name.db"
    start=$(date +%s.%N)
    status=0
    "$BIN" --quiet --storage "sqlite://$db" run "$spec" >"$WORK/$name.out" 2>&1 || status=$?
    end=$(date +%s.%N)
    verify=0
    "$BIN" --storage "sqlite://$db" audit verify >/dev/null 2>&1 || verify=$?
    "$BIN" --storage "sqlite://$db" trials "$name" --format json >"$WORK/$name.trials.json"
    "$BIN" --storage "sqlite://$db" lineage "$name" --format json >"$WORK/$name.lineage.json"
    printf '{"arm": "%s", "seed": %s, "campaign": "%s", "wall": %s, "exit": %s, "verify": %s}\n' \
      "$arm" "$seed" "$name" "$(awk "BEGIN { print $end - $start }")" "$status" "$verify" >>"$MANIFEST"
    echo "$name: exit $status, verify $verify, $(awk "BEGIN { printf \"%.0f\", $end - $start }") s" >&2
    if ((status != 0)); then tail -n 5 "$WORK/$name.out" >&2; fi
  done
done
mkdir -p "$(dirname "$OUT")"
python3 bench/generations_report.py "$WORK" "$MANIFEST" "$SEEDS" "$(nproc)" >"$OUT"
cat "$OUT"
