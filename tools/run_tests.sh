#!/usr/bin/env bash
# Installs into .venv if needed and runs the test suite in parallel
# (pytest-xdist; DEEPLAB2_TEST_WORKERS processes, default: the CPU count,
# at most 4). pytest's exit status is kept: "no tests collected" (5) fails
# like any other failure.
#   bash tools/run_tests.sh           # everything (CI)
#   bash tools/run_tests.sh --quick   # leaves out the tests marked slow
# Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
cpus=$(nproc 2>/dev/null || echo 2)
workers=${DEEPLAB2_TEST_WORKERS:-$(( cpus < 4 ? cpus : 4 ))}
args=()
for arg in "$@"; do
  if [ "$arg" = --quick ]; then
    args+=(-m "not slow")
  else
    args+=("$arg")
  fi
done
# loadfile: a test file's module fixtures (a training, a subprocess) run once;
# files in collection order, which tests/conftest.py sorts longest first.
exec .venv/bin/python -m pytest tests -n "$workers" --dist loadfile \
  --no-loadscope-reorder \
  ${args[@]+"${args[@]}"}
