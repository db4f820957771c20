#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds and runs the libFuzzer target of the affinity spec parser and planner
# (tests/affinity/fuzz_spec.cpp): a clang build with -DMTP_BUILD_FUZZERS=ON (libFuzzer, ASan,
# UBSan), target fuzz_affinity_spec, then a bounded run over the checked-in corpus.
#
# Usage: tools/fuzz-affinity-spec.sh [SECONDS] [extra libFuzzer flags...]
#   SECONDS             run time, default 20 (-max_total_time)
#   CXX_FUZZ            compiler to use (default: clang++-14 if present, else clang++)
#   MTP_FUZZ_BUILD_DIR  the CMake build directory (default: build-fuzz)
#   MTP_FUZZ_DIR        where new corpus entries and crash artifacts go (default: a fresh
#                       temporary directory, kept and printed)
# Exits 0 when the run ends without finding anything, non-zero on a build failure or a crash
# (the crashing input is left in MTP_FUZZ_DIR as crash-*; replay it with the binary).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-20}
if [[ $# -gt 0 ]]; then shift; fi
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
  echo "fuzz-affinity-spec: SECONDS must be a whole number, got '$seconds'" >&2
  exit 2
fi

cxx=${CXX_FUZZ:-}
if [[ -z $cxx ]]; then
  if command -v clang++-14 >/dev/null; then cxx=clang++-14; else cxx=clang++; fi
fi
build=${MTP_FUZZ_BUILD_DIR:-$root/build-fuzz}
out=${MTP_FUZZ_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/mtp-fuzz-affinity.XXXXXX")}
mkdir -p "$out/corpus"

echo "fuzz-affinity-spec: building fuzz_affinity_spec in $build with $cxx"
cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMTP_BUILD_FUZZERS=ON -DMTP_BUILD_TESTS=OFF -DMTP_BUILD_EXAMPLES=OFF \
  -DMTP_BUILD_BENCHMARKS=OFF -DMTP_BUILD_TOOLS=OFF -DMTP_ENABLE_INSTALL=OFF >/dev/null
cmake --build "$build" --target fuzz_affinity_spec -j"$(nproc)" >/dev/null
binary="$build/tests/fuzz/fuzz_affinity_spec"

echo "fuzz-affinity-spec: fuzzing for ${seconds}s (output in $out)"
# New inputs go to the first corpus directory; the checked-in seeds are only read.
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$out/" "$@" "$out/corpus" "$root/tests/affinity/fuzz_corpus"
echo "fuzz-affinity-spec: no crash in ${seconds}s"
