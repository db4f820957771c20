#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages the project needs, only those missing. Run as root.
#   tools/install-deps.sh            build + tests (+ sanitizers, fuzzing, docs)
#   tools/install-deps.sh --bench    also the benchmark baselines and chart tools
# On a system without dpkg/apt it installs nothing: it looks for the compilers, tools and
# headers itself and lists what is missing by Debian package name (install the equivalents
# with your package manager). It then exits 1 only if something needed to build is missing.
set -euo pipefail

packages=(
  g++ cmake make pkg-config python3
  libhwloc-dev libconcurrentqueue-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libasio-dev
  clang libclang-rt-14-dev clang-tidy doxygen
  libopenmpi-dev openmpi-bin libcereal-dev
  file dpkg-dev  # the .deb packages: CPack reads shared-library dependencies with them
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(libcaf-dev python3-matplotlib)
fi

# ---- Without dpkg/apt: probe, report, do not install ----------------------------------------
if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  include_dirs=(/usr/include /usr/local/include /opt/homebrew/include /opt/local/include)
  if [[ -n ${CPATH:-} ]]; then IFS=: read -r -a extra <<<"$CPATH"; include_dirs+=("${extra[@]}"); fi
  has_header() {
    local d
    for d in "${include_dirs[@]}"; do [[ -e $d/$1 ]] && return 0; done
    return 1
  }
  missing_required=() missing_optional=()
  need() {  # required|optional, debian-package, test...
    local kind=$1 package=$2; shift 2
    if ! "$@" >/dev/null 2>&1; then
      if [[ $kind == required ]]; then missing_required+=("$package"); else missing_optional+=("$package"); fi
    fi
  }
  # The library itself: a C++20 compiler, CMake, and the headers the library builds against.
  need required "g++ (or clang)" bash -c 'command -v g++ || command -v clang++'
  need required cmake command -v cmake
  need required "libhwloc-dev (or configure with -DMTP_WITH_HWLOC=OFF)" has_header hwloc.h
  need required nlohmann-json3-dev has_header nlohmann/json.hpp
  need required "pkg-config (finds hwloc)" command -v pkg-config
  # Tests, tools, benchmarks, checks: each can be switched off (MTP_BUILD_TESTS=OFF, ...).
  need optional libgtest-dev has_header gtest/gtest.h
  need optional libgmock-dev has_header gmock/gmock.h
  need optional libbenchmark-dev has_header benchmark/benchmark.h
  need optional "libconcurrentqueue-dev (the benchmarks' queue floor)" has_header concurrentqueue/concurrentqueue.h
  need optional libcli11-dev has_header CLI/CLI.hpp
  need optional "clang (sanitizer and fuzzing builds)" command -v clang++
  need optional clang-tidy command -v clang-tidy
  need optional doxygen command -v doxygen
  need optional python3 command -v python3
  echo "install-deps: no dpkg/apt here; nothing installed. Looked for what the build needs:"
  if ((${#missing_optional[@]})); then
    echo "  missing, for tests, tools or checks (Debian names):"
    printf '    %s\n' "${missing_optional[@]}"
  fi
  if ((${#missing_required[@]})); then
    echo "  missing, needed to build the library (Debian names):"
    printf '    %s\n' "${missing_required[@]}"
    exit 1
  fi
  echo "  everything needed to build the library is there"
  exit 0
fi

# ---- Debian: install what is missing ---------------------------------------------------------
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
