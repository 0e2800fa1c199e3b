#!/usr/bin/env bash
# Creates .venv (Python 3.10+) and installs the package with its CPU and test
# extras; the install compiles proto/ into deeplab2/protos/. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[cpu,test]"
