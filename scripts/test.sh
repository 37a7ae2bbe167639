#!/usr/bin/env bash
# Install what is missing, build, and run brisk's whole test suite with ctest:
# the release build (unit, stress, preload, package, apps and bench-smoke labels),
# then the AddressSanitizer and ThreadSanitizer builds (label "sanitize").
# Usage: scripts/test.sh [--no-sanitizers]
set -euo pipefail
cd "$(dirname "$0")/.."
"$(pwd)/scripts/deps.sh"

jobs=$(nproc)
run_preset() {
  local preset=$1; shift
  echo "== $preset: configure, build, test"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  ctest --preset "$preset" -j "$jobs" --output-on-failure "$@"
}

run_preset release
if [[ "${1:-}" != "--no-sanitizers" ]]; then
  run_preset asan
  run_preset tsan
fi
