#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the MPI consumer with nothing but `pkg-config --cflags --libs
# messaging_thread_pool_mpi` (strict warnings), as a Makefile-based project would, and runs it
# on RANKS ranks (default 2) with mpirun.
# Usage: build-with-pkg-config.sh OUTPUT_DIR    (CXX: the compiler, default g++;
#        PKG_CONFIG_PATH: where the installed .pc files are, if not a system path;
#        MPIEXEC: the launcher, default mpirun)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:?usage: build-with-pkg-config.sh OUTPUT_DIR}
mkdir -p "$out"
flags=$(pkg-config --cflags --libs messaging_thread_pool_mpi)
echo "pkg-config: $flags"
# shellcheck disable=SC2086  # the flags are a word list
"${CXX:-g++}" -std=c++20 -Wall -Wextra -Werror -O2 "$here/main.cpp" $flags -o "$out/consumer-mpi-pkg-config"
bash "$here/run.sh" "$out/consumer-mpi-pkg-config"
