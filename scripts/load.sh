#!/usr/bin/env bash
# The load tests of tests/reliability.rs (RELIABILITY.md, "Load"): release build, one test
# at a time (they measure memory per task, and the process-pool one holds the pool lock).
# Each asserts counts and checksums and prints its memory figures; the tests never read the
# clock, so this script times each one from outside (the test binary's whole run, start-up
# included). Usage: scripts/load.sh [FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
filter="${1:-load_}"
cargo test --release --test reliability --no-run
tests=$(cargo test -q --release --test reliability -- --ignored --list 2>/dev/null | sed -n 's/: test$//p' | grep -- "$filter" || true)
if [ -z "$tests" ]; then
  echo "no load test matches '$filter'" >&2
  exit 2
fi
for t in $tests; do
  start=$(date +%s%N)
  cargo test -q --release --test reliability -- --ignored --nocapture --test-threads=1 --exact "$t"
  end=$(date +%s%N)
  printf '%s: %.2f s wall (measured by scripts/load.sh)\n' "$t" "$(echo "($end - $start) / 1000000000" | bc -l)"
done
