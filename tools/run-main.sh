#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job: install what is missing, build everything (Release), run the examples as a
# demo, then the benchmark suite in its quick form with a summary table.
#   bash tools/run-main.sh [--full]     (--full: the whole benchmark suite, ~10 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install-deps.sh --bench
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"

echo
echo "== Demo: the examples =="
for example in quick_start user_session chat_room hierarchy mock_test; do
  echo "-- $example"
  "build/examples/example_$example"
done
echo
echo "== Machine topology and the default plan =="
build/tools/mtp-topology || true

echo
echo "== Benchmarks =="
if [[ "${1:-}" == "--full" ]]; then
  bash tools/run-benchmarks.sh --build-dir build
else
  bash tools/run-benchmarks.sh --quick --build-dir build
fi
