#!/usr/bin/env bash
# Installs the Debian 12 packages the project needs, only those missing. Run as root.
#   tools/install-deps.sh            build + tests (+ sanitizers, fuzzing)
#   tools/install-deps.sh --bench    also the benchmark baselines and chart tools
set -euo pipefail

packages=(
  g++ cmake make pkg-config python3
  libhwloc-dev libconcurrentqueue-dev libreaderwriterqueue-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev
  clang libclang-rt-14-dev clang-tidy
  libopenmpi-dev openmpi-bin libcereal-dev
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(libcaf-dev python3-matplotlib)
fi

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
