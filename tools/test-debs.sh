#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the Debian packages (cpack -G DEB in a Release build directory) and checks them in a
# fresh, minimal Debian 12 root: apt installs the .debs (with their Depends) and a compiler,
# then the consumer in tests/package/consumer is built and run against the installed packages
# only, with find_package and with pkg-config; mtp-topology must run. The core packages are
# installed first, without MPI: the consumer must build, and asking for the mpi component must
# fail naming its package. Then messaging-thread-pool-mpi-dev (when built: the build found MPI
# and cereal) is installed with what it depends on, and tests/package/consumer_mpi is built with
# find_package(... COMPONENTS mpi) and with pkg-config and run on 2 ranks.
#
# Usage: bash tools/test-debs.sh
#   MTP_DEB_BUILD_DIR   build directory (default: build-debs)
#   MTP_DEB_ROOT_CACHE  the bare Debian root, made once with debootstrap and reused
#                       (default: ${TMPDIR:-/tmp}/mtp-debian12-root; delete it to rebuild)
# Each run works in a copy of the cached root, so nothing from an earlier run leaks in;
# downloaded .debs are kept beside the cache to save the network.
# Exit status: 0 = the packages work, 1 = a failure, 77 = skipped (needs root, chroot,
# debootstrap and the Debian mirror; says which was missing).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
start=$(date +%s)

build=${MTP_DEB_BUILD_DIR:-build-debs}
cache=${MTP_DEB_ROOT_CACHE:-${TMPDIR:-/tmp}/mtp-debian12-root}
apt_cache=$cache-apt-archives

skip() { echo "test-debs: skipped: $*"; exit 77; }
say() { echo "test-debs: $*"; }

# ---- Can this machine do it? ---------------------------------------------------------------
[[ $(id -u) == 0 ]] || skip "needs root (debootstrap, chroot, mount)"
command -v chroot >/dev/null || skip "no chroot command"
if ! command -v debootstrap >/dev/null; then
  command -v apt-get >/dev/null || skip "no debootstrap, and no apt-get to install it"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
    skip "debootstrap is not installed and could not be installed"
fi
command -v dpkg-shlibdeps >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev >/dev/null 2>&1 ||
  skip "dpkg-shlibdeps (dpkg-dev) is not installed and could not be installed"
mirror=http://deb.debian.org/debian
if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
host=${mirror#*://}; host=${host%%/*}
if ! timeout 10 bash -c "exec 3<>/dev/tcp/$host/80" 2>/dev/null; then
  skip "the Debian mirror $host cannot be reached"
fi

# ---- The packages ----------------------------------------------------------------------------
say "building the packages in $build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DMTP_BUILD_TESTS=OFF -DMTP_BUILD_EXAMPLES=OFF -DMTP_BUILD_BENCHMARKS=OFF -DMTP_BUILD_TOOLS=ON \
  >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
rm -f "$build"/*.deb
(cd "$build" && cpack -G DEB >/dev/null)
debs=("$build"/*.deb)
for deb in "${debs[@]}"; do
  say "$(basename "$deb"): $(dpkg-deb -f "$deb" Depends)"
done

# ---- The bare root, made once ------------------------------------------------------------------
if [[ ! -f $cache/.ready ]]; then
  say "making a minimal Debian 12 root in $cache (once; a few minutes)"
  rm -rf "$cache"
  debootstrap --variant=minbase bookworm "$cache" "$mirror" >"$cache.log" 2>&1 ||
    { echo "test-debs: debootstrap failed, see $cache.log" >&2; exit 1; }
  touch "$cache/.ready"
fi
mkdir -p "$apt_cache/partial"

# ---- A fresh copy per run ---------------------------------------------------------------------
run=$(mktemp -d "${TMPDIR:-/tmp}/mtp-debs-run.XXXXXX")
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
  done
  # Never delete through a mount that is still there (/dev, /proc, /sys of this machine).
  if grep -q " $run/" /proc/mounts; then
    echo "test-debs: $run still has mounts; left in place" >&2
  else
    rm -rf --one-file-system "$run"
  fi
}
trap cleanup EXIT
cp -a "$cache/." "$run/"
for m in proc dev sys; do mount --bind "/$m" "$run/$m"; mounted+=("$run/$m"); done  # sys: hwloc
mount --bind "$apt_cache" "$run/var/cache/apt/archives"; mounted+=("$run/var/cache/apt/archives")
cp /etc/resolv.conf "$run/etc/resolv.conf" 2>/dev/null || true
mkdir -p "$run/work/debs"
cp "${debs[@]}" "$run/work/debs/"
cp -r "$src/tests/package/consumer" "$run/work/consumer"
cp -r "$src/tests/package/consumer_mpi" "$run/work/consumer_mpi"

say "installing the packages in a fresh Debian 12 root and building the consumer"
chroot "$run" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  DEBIAN_FRONTEND=noninteractive /bin/bash -euo pipefail -c '
  cd /work
  apt-get update -qq
  core_debs=()
  for deb in ./debs/*.deb; do
    [[ $deb == */messaging-thread-pool-mpi-dev_* ]] || core_debs+=("$deb")
  done
  apt-get install -y -qq --no-install-recommends "${core_debs[@]}" g++ cmake make pkg-config \
    >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
  echo "-- installed: $(dpkg-query -W -f="\${Package} \${Version}  " "messaging-thread-pool-*")"
  if [[ -e /usr/include/mpi.h ]] || command -v mpirun >/dev/null; then
    echo "MPI is installed with the core packages alone" >&2; exit 1
  fi
  mtp-topology --version
  mtp-topology --spec none -w 2 >/dev/null
  echo "-- consumer with find_package"
  cmake -S consumer -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build >/dev/null
  ./build/consumer
  echo "-- consumer with pkg-config"
  bash consumer/build-with-pkg-config.sh out

  mpi_deb=(./debs/messaging-thread-pool-mpi-dev_*.deb)
  if [[ ! -e ${mpi_deb[0]} ]]; then
    echo "-- no messaging-thread-pool-mpi-dev (the build found no MPI or no cereal)"
    exit 0
  fi
  echo "-- find_package(... COMPONENTS mpi) without messaging-thread-pool-mpi-dev fails, naming it"
  if cmake -S consumer_mpi -B build-mpi-missing >/tmp/missing.log 2>&1 ||
     ! grep -q "Debian: messaging-thread-pool-mpi-dev" /tmp/missing.log; then
    cat /tmp/missing.log; exit 1
  fi
  apt-get install -y -qq --no-install-recommends "${mpi_deb[@]}" >/tmp/apt.log 2>&1 ||
    { cat /tmp/apt.log; exit 1; }
  echo "-- installed: $(dpkg-query -W -f="\${Package} \${Version}  " messaging-thread-pool-mpi-dev)"
  echo "-- MPI consumer with find_package, 2 ranks"
  cmake -S consumer_mpi -B build-mpi -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build-mpi >/dev/null
  bash consumer_mpi/run.sh build-mpi/consumer_mpi
  echo "-- MPI consumer with pkg-config, 2 ranks"
  bash consumer_mpi/build-with-pkg-config.sh out-mpi
'
say "the packages work ($(( $(date +%s) - start )) s)"
