#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the benchmark suite (build it first: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release &&
# cmake --build build) and prints a summary table with the targets beside the figures, then the
# callers-at-scale tables (callers, churn, idle callers, pool lifetime, batch forms).
#
#   tools/run-benchmarks.sh [--quick] [--build-dir DIR] [--json FILE] [--raw FILE]
#                           [-- extra mtp_bench flags]
#
# full         about 6 minutes on 2 cores (the churn runs 100,000 caller threads per kind).
# --quick      fewer sizes, iterations and repetitions, churn of 2,000 threads: about 20 s on
#              2 cores.
# --build-dir  the CMake build directory (default: build); the binary is DIR/bench/mtp_bench.
# --json       where to keep the Google Benchmark JSON (default: DIR/bench-full.json, or
#              DIR/bench-quick.json with --quick).
# --raw        write Google Benchmark's console output to FILE instead of the terminal.
# Exits non-zero when a benchmark produced a wrong result.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="build"
quick=""
json=""
raw=""
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick="--quick"; shift ;;
    --build-dir) build="$2"; shift 2 ;;
    --build-dir=*) build="${1#*=}"; shift ;;
    --json) json="$2"; shift 2 ;;
    --json=*) json="${1#*=}"; shift ;;
    --raw) raw="$2"; shift 2 ;;
    --raw=*) raw="${1#*=}"; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '3,16p' "$0"; exit 0 ;;
    *) echo "run-benchmarks.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

bin="$build/bench/mtp_bench"
if [[ ! -x "$bin" ]]; then
  echo "run-benchmarks.sh: $bin not found; build first:" >&2
  echo "  cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release && cmake --build $build" >&2
  exit 2
fi
if [[ -z "$json" ]]; then
  if [[ -n "$quick" ]]; then json="$build/bench-quick.json"; else json="$build/bench-full.json"; fi
fi

echo "running $bin ${quick} (JSON: $json)" >&2
start=$(date +%s)
status=0
if [[ -n "$raw" ]]; then
  "$bin" $quick --benchmark_out="$json" --benchmark_out_format=json "${extra[@]}" >"$raw" 2>&1 || status=$?
else
  "$bin" $quick --benchmark_out="$json" --benchmark_out_format=json "${extra[@]}" || status=$?
fi
echo "suite took $(( $(date +%s) - start )) s" >&2
echo
python3 "$root/tools/bench-report.py" --summary --json "$json" || status=$?
for tag in callers churn idle-callers pool-lifetime batch-forms; do
  table="$(python3 "$root/tools/bench-report.py" --print "$tag" --json "$json" 2>/dev/null | sed '/^ERROR/d')" || true
  # Only tables with at least one row (a filtered run may have none).
  if [[ "$(printf '%s\n' "$table" | wc -l)" -gt 2 ]]; then
    printf '\n%s\n\n%s\n' "$tag:" "$table"
  fi
done
exit $status
