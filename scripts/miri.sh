#!/usr/bin/env bash
# Miri (RELIABILITY.md, "Memory safety"): the suites that need no real I/O or processes run
# under the interpreter, which checks every unsafe block (the waker vtable, lent wakers, the
# pin projection), data races between threads (cross-thread wakes) and leaks. Miri emulates
# epoll and eventfd, so whole loops run; tests needing sockets or processes are marked
# `#[cfg_attr(miri, ignore = "...")]` and listed as ignored.
# About 3 minutes with the build cached, 7 from cold (RELIABILITY.md). Extra arguments go
# to cargo, e.g. scripts/miri.sh --no-fail-fast. Usage: scripts/miri.sh [CARGO ARGS]
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v rustup >/dev/null 2>&1; then
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  rustup +nightly component add miri rust-src
fi
cargo +nightly miri setup
# Isolation stays on (no clock, no file system, no environment writes): every test here is
# deterministic on the virtual clock. Leak checking stays on as well.
exec cargo +nightly miri test \
  --lib \
  --test task_lifecycle \
  --test events_ordering \
  --test coord_combinators \
  --test coord_sync_queue \
  --test reliability \
  "$@"
