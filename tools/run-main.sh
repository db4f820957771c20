#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job: install what is missing, build what it runs (Release: the examples,
# mtp-topology, mtp_bench), run the examples as a demo, show the machine and its default
# worker plan, then run the benchmark suite in its quick form and print its summary table.
# The build log and Google Benchmark's raw output go to files it names.
#   bash tools/run-main.sh [--full]     (--full: the whole benchmark suite, ~10 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install-deps.sh --bench
jobs=$(nproc)
build=build
mkdir -p "$build"
log="$build/run-main-build.log"
if [[ "${1:-}" == "--full" ]]; then mode=full; else mode=quick; fi
raw="$build/bench-$mode.txt"

echo "== Building (Release; log: $log) =="
targets=(example_quick_start example_user_session example_chat_room example_hierarchy example_mock_test
         mtp-topology mtp_bench)
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release &&
       cmake --build "$build" -j"$jobs" --target "${targets[@]}"; } >"$log" 2>&1; then
  tail -n 40 "$log"
  echo "run-main: the build failed (whole log: $log)" >&2
  exit 1
fi
echo "built: ${targets[*]}"

echo
echo "== Demo: the examples =="
for example in quick_start user_session chat_room hierarchy mock_test; do
  echo "-- $example"
  "$build/examples/example_$example"
done

echo
echo "== Machine topology and the default plan =="
"$build/tools/mtp-topology" || true

echo
echo "== Benchmarks ($mode; raw Google Benchmark output: $raw) =="
read -r load1 load5 _ < /proc/loadavg 2>/dev/null || { load1='?'; load5='?'; }
cpus=$(nproc)
note="machine load before the run: $load1 (1 min), $load5 (5 min) on $cpus CPUs"
if [[ $load1 != '?' ]] && awk -v l="$load1" -v c="$cpus" 'BEGIN { exit !(l > c / 2) }'; then
  note+=" - busy: other work shares these CPUs, so figures may be noisy"
fi
echo "$note"
status=0
if [[ $mode == full ]]; then
  bash tools/run-benchmarks.sh --build-dir "$build" --raw "$raw" || status=$?
else
  bash tools/run-benchmarks.sh --quick --build-dir "$build" --raw "$raw" || status=$?
fi
exit $status
