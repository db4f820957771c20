#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs clang-tidy (.clang-tidy at the top) over the library sources and the examples, using
# the compile database of a build directory. Fails on any finding.
#   bash tools/run-clang-tidy.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: run-clang-tidy.sh BUILD_DIR}
tidy=$(command -v clang-tidy || command -v clang-tidy-14) || { echo "clang-tidy not installed"; exit 1; }
if [[ ! -f "$build/compile_commands.json" ]]; then
  cmake -S . -B "$build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
fi
sources=(core/src/*.cpp affinity/src/*.cpp examples/*.cpp)
echo "clang-tidy over ${#sources[@]} files"
report=$(printf '%s\n' "${sources[@]}" | xargs -P "$(nproc)" -n 2 "$tidy" -p "$build" --quiet 2>&1 || true)
findings=$(grep -E "(warning|error): " <<<"$report" || true)
if [[ -n "$findings" ]]; then
  echo "$findings"
  exit 1
fi
echo "clang-tidy: no findings"
