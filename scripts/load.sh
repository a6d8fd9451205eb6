#!/usr/bin/env bash
# The load tests of tests/reliability.rs (RELIABILITY.md, "Load"): release build, one test
# at a time (they measure memory per task, and the process-pool one holds the pool lock).
# Each asserts counts and checksums and prints its figures. Usage: scripts/load.sh [FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --release --test reliability -- --ignored --nocapture --test-threads=1 "${1:-load_}"
