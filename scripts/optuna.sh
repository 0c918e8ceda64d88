#!/usr/bin/env bash
# Optuna, from PyPI, in a virtual environment outside the clone, with Optuna's
# own storage tests taken from the source distribution of the same version:
# crates/firebreak-cli/tests/optuna.rs runs them against `firebreak serve-optuna`,
# and bench/optuna_storage.sh compares speeds.
#
#   scripts/optuna.sh install   make the venv and unpack the tests (seconds when present)
#   scripts/optuna.sh python    print the venv's python
#   scripts/optuna.sh tests     print the folder of Optuna's tests
#
# Environment: FIREBREAK_OPTUNA_VENV (default ~/.cache/firebreak/optuna).
set -euo pipefail
VENV="${FIREBREAK_OPTUNA_VENV:-${HOME:-/root}/.cache/firebreak/optuna}"
VERSION="5.1.0"
case "${1:-}" in
  install)
    if [ -f "$VENV/.ready-$VERSION" ]; then
      exit 0
    fi
    python3 -m venv "$VENV"
    # grpcio and protobuf: the gRPC client (and Optuna's own proxy server);
    # pytest and fakeredis: what Optuna's test modules import; cmaes and scipy:
    # the CMA-ES and GP samplers of the sampler tests.
    "$VENV/bin/pip" install --quiet "optuna==$VERSION" "grpcio==1.85.*" "protobuf>=5,<8" \
      "pytest==8.*" "fakeredis==2.*" "cmaes==0.12.*" "scipy==1.*"
    rm -rf "$VENV/src" && mkdir -p "$VENV/src"
    "$VENV/bin/pip" download --quiet --no-deps --no-binary :all: --dest "$VENV/src" "optuna==$VERSION"
    tar -xzf "$VENV/src/optuna-$VERSION.tar.gz" -C "$VENV/src" "optuna-$VERSION/tests"
    touch "$VENV/.ready-$VERSION"
    echo "optuna $VERSION in $VENV"
    ;;
  python)
    echo "$VENV/bin/python"
    ;;
  tests)
    echo "$VENV/src/optuna-$VERSION/tests"
    ;;
  *)
    echo "usage: $0 install|python|tests" >&2
    exit 2
    ;;
esac
