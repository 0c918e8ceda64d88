#!/usr/bin/env bash
# The project's one check: formatting, lints, docs and every test.
# Needs: the Rust toolchain (with rustfmt and clippy) and python3 with the
# `cryptography` package (trial programs of the end-to-end tests, and the
# independent ledger verifier), PostgreSQL's server programs (initdb, pg_ctl)
# and Slurm (slurmctld, slurmd, munge; `scripts/slurm.sh install`), which the
# tests start and stop themselves, and Chromium with ChromeDriver (the
# dashboard's browser tests), and Optuna 5.1.0 with its own storage tests in a
# venv (`scripts/optuna.sh install`); `.ci/run` installs all of it. No network.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked
