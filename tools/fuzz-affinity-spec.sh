#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds and runs the libFuzzer target of the affinity spec parser and planner
# (tests/affinity/fuzz_spec.cpp), without CMake: clang++ with -fsanitize=fuzzer,address,undefined
# compiles the affinity sources it needs and links hwloc (pkg-config "hwloc").
#
# Usage: tools/fuzz-affinity-spec.sh [SECONDS] [extra libFuzzer flags...]
#   SECONDS        run time, default 20 (-max_total_time)
#   CXX_FUZZ       compiler to use (default: clang++-14 if present, else clang++)
#   MTP_FUZZ_DIR   where the binary, new corpus entries and crash artifacts go (default: a
#                  fresh temporary directory, kept and printed)
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
if ! command -v pkg-config >/dev/null || ! pkg-config --exists hwloc; then
  echo "fuzz-affinity-spec: hwloc not found by pkg-config (Debian: apt install libhwloc-dev pkg-config)" >&2
  exit 2
fi

out=${MTP_FUZZ_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/mtp-fuzz-affinity.XXXXXX")}
mkdir -p "$out/corpus"
binary="$out/fuzz_affinity_spec"

src="$root/affinity/src"
read -r -a hwloc_cflags <<<"$(pkg-config --cflags hwloc)"
read -r -a hwloc_libs <<<"$(pkg-config --libs hwloc)"
echo "fuzz-affinity-spec: building $binary with $cxx"
"$cxx" -std=c++20 -g -O1 -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/affinity/include" "${hwloc_cflags[@]}" \
  "$root/tests/affinity/fuzz_spec.cpp" \
  "$src/spec.cpp" "$src/plan.cpp" "$src/hwloc_topology.cpp" "$src/hwloc_bind.cpp" \
  "${hwloc_libs[@]}" -o "$binary"

echo "fuzz-affinity-spec: fuzzing for ${seconds}s (output in $out)"
# New inputs go to the first corpus directory; the checked-in seeds are only read.
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$out/" "$@" "$out/corpus" "$root/tests/affinity/fuzz_corpus"
echo "fuzz-affinity-spec: no crash in ${seconds}s"
