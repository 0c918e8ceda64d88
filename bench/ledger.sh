#!/usr/bin/env bash
# The ledger at scale (issue 6, "Speed"): builds a SQLite database of ENTRIES real
# ledger entries through SqliteStore::append_batch (batches of 1,000), then measures
# append throughput, `audit verify`'s work (read, chain, Merkle tree, checkpoint
# signatures against roots), the full replay, and inclusion proofs at that size.
# Prints medians of 3 and the ratios to the targets; writes bench/results/ledger.md.
#
#   bench/ledger.sh                  # 1,000,000 entries
#   ENTRIES=100000 bench/ledger.sh   # a quicker look
set -euo pipefail
cd "$(dirname "$0")/.."

ENTRIES=${ENTRIES:-1000000}
DB=${DB:-${TMPDIR:-/tmp}/firebreak-ledger-scale.db}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

cargo build --quiet --release -p firebreak-store --example ledger_scale
out=$("$TARGET_DIR/release/examples/ledger_scale" "$ENTRIES" "$DB")
echo "$out"
{
  echo "# Ledger at scale"
  echo
  echo "\`bench/ledger.sh\` ($(date -u +%Y-%m-%d), ${ENTRIES} entries, $(nproc) cores:"
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average at the"
  echo "end $(cut -d' ' -f1-3 /proc/loadavg), shared with other work)."
  echo
  echo "$out" | grep '^|'
  echo
  echo "$out" | grep -v '^|'
} > bench/results/ledger.md
rm -f "$DB" "$DB-wal" "$DB-shm"
