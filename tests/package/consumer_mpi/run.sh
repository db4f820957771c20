#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs an MPI consumer on RANKS ranks (default 2) with MPIEXEC (default mpirun), more ranks
# than cores allowed, as root too (Open MPI refuses root unless told), and checks that every
# rank printed ok.
# Usage: run.sh PROGRAM
set -euo pipefail
program=${1:?usage: run.sh PROGRAM}
ranks=${RANKS:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
output=$("${MPIEXEC:-mpirun}" -np "$ranks" --oversubscribe "$program")
echo "$output"
oks=$(grep -c ": ok$" <<<"$output" || true)
if [[ $oks != "$ranks" ]]; then
  echo "run.sh: $oks of $ranks ranks printed ok" >&2
  exit 1
fi
