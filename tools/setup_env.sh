#!/usr/bin/env bash
# Creates .venv (Python 3.10+) and installs the package with the extras
# given (default cpu,test; the quickstart needs cpu only, which installs in
# two thirds of the time); the install compiles proto/ into
# deeplab2/protos/. Safe to re-run, with other extras too.
#   bash tools/setup_env.sh [EXTRAS]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${1:-cpu,test}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[$EXTRAS]"
