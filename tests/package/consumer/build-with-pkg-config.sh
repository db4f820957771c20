#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds and runs the consumer with nothing but `pkg-config --cflags --libs
# messaging_thread_pool` (strict warnings), as a Makefile-based project would.
# Usage: build-with-pkg-config.sh OUTPUT_DIR    (CXX: the compiler, default g++;
#        PKG_CONFIG_PATH: where the installed messaging_thread_pool.pc is, if not a system path)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:?usage: build-with-pkg-config.sh OUTPUT_DIR}
mkdir -p "$out"
flags=$(pkg-config --cflags --libs messaging_thread_pool)
echo "pkg-config: $flags"
# shellcheck disable=SC2086  # the flags are a word list
"${CXX:-g++}" -std=c++20 -Wall -Wextra -Werror -O2 "$here/main.cpp" $flags -o "$out/consumer-pkg-config"
"$out/consumer-pkg-config"
