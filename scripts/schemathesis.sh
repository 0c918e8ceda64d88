#!/usr/bin/env bash
# Schemathesis, from PyPI, in a virtual environment outside the clone: the
# server's robustness test (crates/firebreak-cli/tests/server.rs) runs it
# against the OpenAPI document `firebreak serve` publishes.
#
#   scripts/schemathesis.sh install   make the venv (pinned version; seconds when present)
#   scripts/schemathesis.sh path      print the program's path
#
# Environment: FIREBREAK_SCHEMATHESIS_VENV (default ~/.cache/firebreak/schemathesis).
set -euo pipefail
VENV="${FIREBREAK_SCHEMATHESIS_VENV:-${HOME:-/root}/.cache/firebreak/schemathesis}"
VERSION="4.32.5"
case "${1:-}" in
  install)
    if [ -x "$VENV/bin/schemathesis" ] && "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$VERSION"; then
      exit 0
    fi
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$VERSION"
    echo "schemathesis $VERSION in $VENV"
    ;;
  path)
    echo "$VENV/bin/schemathesis"
    ;;
  *)
    echo "usage: $0 install|path" >&2
    exit 2
    ;;
esac
