#!/usr/bin/env bash
# Runs the suite on the pure-Python build: the same sources as the checkout, copied
# without their compiled modules and put first on PYTHONPATH (child processes
# inherit it), so the compiled install beside it stays untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src"
tar -C src --exclude='*.so' --exclude='*.c' --exclude='__pycache__' -cf - . | tar -C "$tmp/src" -xf -
PYTHONPATH="$tmp/src${PYTHONPATH:+:$PYTHONPATH}" PROPYLON_PURE_PYTHON=1 PROPYLON_EXPECT_BUILD=pure PROPYLON_H2_CODEC=h2 "$PY" -m pytest "$@"
