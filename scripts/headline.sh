#!/usr/bin/env bash
# Install what is missing, build brisk and its benchmarks, and run the
# headline job: the side-by-side comparison of brisk with glibc, jemalloc,
# tcmalloc and mimalloc (bench/compare.py --quick: every workload, 3
# interleaved repetitions, callgrind fast-path counts; a few minutes on 2
# cores).  It prints a markdown table and writes the report, JSON and chart
# to build/release/bench-report.{md,json,png}.
# Pass --full for the long run, or any other bench/compare.py option.
set -euo pipefail
cd "$(dirname "$0")/.."
"$(pwd)/scripts/deps.sh"

cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"

out=build/release/bench-report
mode=--quick
[[ "${1:-}" == "--full" ]] && { mode=--full; shift; }
exec /usr/bin/python3 bench/compare.py "$mode" --build-dir build/release \
  --report "$out.md" --json "$out.json" --chart "$out.png" "$@"
