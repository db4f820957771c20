#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# mtp-topology's exit status and messages for bad command lines, bad specs and limits.
#
# Usage: mtp_topology_cli_test.sh MTP_TOPOLOGY XML_FILE WITH_HWLOC(ON|OFF)
# Each case runs the tool and checks its exit status and that its output (stdout and stderr
# together) contains the expected text. Prints every failure and exits 1 if there was one.
set -u

tool=$1
xml=$2
with_hwloc=$3
failures=0
out=$(mktemp "${TMPDIR:-/tmp}/mtp-topology-cli.XXXXXX")
trap 'rm -f "$out"' EXIT

# expect STATUS TEXT -- ARGS...: the tool exits with STATUS and prints TEXT (may be empty).
expect() {
  local status=$1 text=$2
  shift 3
  MTP_AFFINITY= "$tool" "$@" >"$out" 2>&1
  local got=$?
  if [[ $got -ne $status ]]; then
    echo "FAIL: mtp-topology $*: exit status $got, expected $status"
    sed 's/^/    /' "$out" | head -5
    failures=$((failures + 1))
  elif [[ -n $text ]] && ! grep -qF -- "$text" "$out"; then
    echo "FAIL: mtp-topology $*: output lacks '$text'"
    sed 's/^/    /' "$out" | head -5
    failures=$((failures + 1))
  fi
  if grep -qE 'vector::reserve|bad_alloc|length_error' "$out"; then
    echo "FAIL: mtp-topology $*: allocation failure leaked into the output"
    failures=$((failures + 1))
  fi
}

# Usage errors: 2.
expect 2 "--workers: '-1' is not a whole number" -- -w -1
expect 2 "--workers: 'abc' is not a whole number" -- --workers abc
expect 2 "--workers: '' is not a whole number" -- -w ""
expect 2 "--workers: '+3' is not a whole number" -- -w +3
expect 2 "--bogus" -- --bogus
expect 2 "--workers" -- -w
expect 2 "excludes" -- --synthetic "core:2 pu:1" --xml "$xml"
expect 2 "--synthetic: empty value" -- --synthetic ""
expect 2 "--synthetic: empty value" -- --synthetic "  "
expect 2 "--restrict: empty value" -- --restrict ""
expect 2 "--xml: empty value" -- --xml ""
expect 2 "-c/--config: empty value" -- --config ""

# Worker counts over mtp::k_max_workers, specs, configs: 3.
expect 3 "too many workers: 18446744073709551616 (a pool has at most 4096 workers" -- -w 18446744073709551616
expect 3 "too many workers: 100000000000" -- -w 100000000000
expect 3 "too many workers: 4097" -- -w 4097 -s none
expect 3 "affinity spec 'corez': unknown policy" -- -s corez
expect 3 "reserve=N applies to cores" -- -s none:reserve=1
expect 3 "is a directory" -- --config "$(dirname "$xml")"
expect 3 "cannot open" -- --config /nonexistent/mtp-pool.json

# Fine without a topology too (this machine, unpinned where it cannot be loaded).
expect 0 "Plan for 'none': 3 workers" -- -s none -w 3
expect 0 "Plan for 'none': 4096 workers" -- -s none -w 0004096
expect 0 "Exit status:" -- --help
expect 0 "3  invalid spec" -- --help

# Synthetic descriptions over the limits are refused unbuilt: 1 (the topology cannot be had).
expect 1 "more than 4096 hardware threads" -- --synthetic "pack:64 core:64 pu:16"
expect 1 "more than 256 children per parent" -- --synthetic "core:100000 pu:1"
expect 1 "cannot read the arity of level 'pack:two'" -- --synthetic "pack:two"

if [[ $with_hwloc == ON ]]; then
  expect 0 "callers -> CPUs 22-23" -- --xml "$xml" -s cores:reserve=1
  expect 0 "Plan for 'cores': 4096 workers" -- --synthetic "core:2 pu:1" -w 4096
  expect 3 "allowed CPU list '99': CPU 99 is not in" -- --xml "$xml" --restrict 99
  expect 3 "CPU number in '0-4294967295' is too large" -- --xml "$xml" --restrict 0-4294967295
else
  expect 1 "unavailable" -- --xml "$xml"
fi

if [[ $failures -ne 0 ]]; then
  echo "$failures case(s) failed"
  exit 1
fi
echo "all cases passed"
