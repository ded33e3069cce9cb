#!/usr/bin/env bash
# The test suite RUNS times in a row with two CPU-burning processes beside it, as on a busy
# 2-core CI machine; stops at the first failing run. Bounded: the burners are stopped when the
# script ends (however it ends) and stop by themselves after BURN_SECONDS at the latest.
#
#   bench/under_load.sh                         # the whole suite, 5 times (or: make test-under-load)
#   RUNS=3 bench/under_load.sh tests/providers  # a part of it; arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
PYTHON=${PYTHON:-.venv/bin/python}
BURNERS=${BURNERS:-2}
BURN_SECONDS=${BURN_SECONDS:-7200}
WORKERS=${WORKERS:-2}  # as `make test` runs it

burners=()
stop_burners() {
  for pid in "${burners[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${burners[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  burners=()
}
trap stop_burners EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 "$BURNERS"); do
  # `timeout` forwards our kill to the loop, and ends it by itself if we never get to.
  timeout "$BURN_SECONDS" sh -c 'while :; do :; done' &
  burners+=("$!")
done
echo "under load: ${#burners[@]} CPU burners (pids ${burners[*]}), $RUNS runs of: pytest -q -n $WORKERS $*"

passed=0
for run in $(seq 1 "$RUNS"); do
  started=$(date +%s)
  if "$PYTHON" -m pytest -q -p no:cacheprovider -n "$WORKERS" "$@"; then
    passed=$((passed + 1))
    echo "run $run of $RUNS passed ($(($(date +%s) - started)) s)"
  else
    echo "run $run of $RUNS FAILED under load ($passed passed before it)" >&2
    exit 1
  fi
done
echo "$passed of $RUNS runs passed with $BURNERS CPU burners beside them"
