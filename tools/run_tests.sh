#!/usr/bin/env bash
# Installs into .venv if needed and runs the whole test suite. pytest's exit
# status is kept: "no tests collected" (5) fails like any other failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
exec .venv/bin/python -m pytest tests "$@"
