#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite: installs what is missing, then checks and builds
#   0. the licence tag in every source file (tools/check-spdx.sh);
#   1. the normal build (warnings as errors): every test, the examples, the installed package,
#      every C++ block of the docs (compiled here and by clang in step 4 only: compile checks,
#      which the Debug, ASan+UBSan and no-hwloc builds would only make slower);
#   2. the same suite again restricted to one CPU (taskset -c 0);
#   3. a Debug build (assertions on, no optimisation) with AddressSanitizer and
#      UndefinedBehaviorSanitizer: one build for both (the optimised sanitizer step took 1,253 s
#      and the Debug step 282 s; this one took 584 s, tests included; the normal and
#      ThreadSanitizer builds run optimised code);
#   4. a ThreadSanitizer build (clang++, its warnings as errors too);
#   5. a build without hwloc;    6. a bounded fuzzing run of the affinity spec parser;
#   7. clang-tidy over the library sources;    8. the Doxygen docs, with no warning;
#   9. the Debian packages, installed and used in a fresh Debian 12 root (tools/test-debs.sh;
#      skipped, saying why, where that cannot run: not root, no chroot, no Debian mirror).
# Usage: bash tools/run-tests.sh [--quick]   (--quick: only steps 0 and 1)
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install-deps.sh
jobs=$(nproc)
root=${MTP_TEST_BUILD_ROOT:-build-tests}
failed=()

step() { echo; echo "== $* == (${SECONDS}s since the start)"; }

configure_build() {  # dir, cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DMTP_BUILD_BENCHMARKS=OFF "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
}

run_ctest() {  # name, dir, ctest args...
  local name=$1 dir=$2; shift 2
  if ! ctest --test-dir "$dir" -j"$jobs" --output-on-failure "$@"; then failed+=("$name"); fi
}

step "0. licence tags"
if ! bash tools/check-spdx.sh; then failed+=(spdx); fi

step "1. normal build"
configure_build "$root/normal" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMTP_WARNINGS_AS_ERRORS=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
run_ctest normal "$root/normal"
[[ "${1:-}" == "--quick" ]] && { ((${#failed[@]} == 0)) || { echo "FAILED: ${failed[*]}"; exit 1; }; exit 0; }

step "2. the same suite on one CPU (taskset -c 0)"
if taskset -c 0 true 2>/dev/null; then
  # (less the package tests and the message over 2 GiB, label large: what CPUs do not change)
  if ! taskset -c 0 ctest --test-dir "$root/normal" -j"$jobs" --output-on-failure -LE "package|large"; then
    failed+=(one-cpu)
  fi
else
  echo "taskset is not permitted here; skipped"
fi

step "3. Debug build with AddressSanitizer + UndefinedBehaviorSanitizer"
configure_build "$root/debug-asan" -DCMAKE_BUILD_TYPE=Debug "-DMTP_SANITIZE=address;undefined" \
  -DMTP_WARNINGS_AS_ERRORS=ON -DMTP_BUILD_TOOLS=OFF -DMTP_ENABLE_INSTALL=OFF -DMTP_TEST_TIMEOUT_SCALE=3 \
  -DMTP_BUILD_DOC_SNIPPETS=OFF
ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1" run_ctest debug-asan "$root/debug-asan" -LE package

step "4. ThreadSanitizer (clang, which also checks clang warnings)"
CXX=clang++ configure_build "$root/tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMTP_SANITIZE=thread -DMTP_BUILD_TOOLS=OFF \
  -DMTP_WARNINGS_AS_ERRORS=ON -DMTP_TEST_TIMEOUT_SCALE=5
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" run_ctest tsan "$root/tsan"

step "5. without hwloc"
# The core and affinity without hwloc: the adapters and the examples do not depend on it.
configure_build "$root/nohwloc" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMTP_WITH_HWLOC=OFF -DMTP_ENABLE_INSTALL=OFF \
  -DMTP_BUILD_DOC_SNIPPETS=OFF -DMTP_BUILD_EXAMPLES=OFF -DMTP_WITH_ASIO=OFF -DMTP_WITH_MPI=OFF
run_ctest no-hwloc "$root/nohwloc"

step "6. fuzzing the affinity spec parser (bounded)"
if ! MTP_FUZZ_BUILD_DIR="$root/fuzz" bash tools/fuzz-affinity-spec.sh 20; then failed+=(fuzz); fi

step "7. clang-tidy"
if ! bash tools/run-clang-tidy.sh "$root/normal"; then failed+=(clang-tidy); fi

step "8. docs (Doxygen, any warning fails)"
if ! cmake --build "$root/normal" --target docs; then failed+=(docs); fi

step "9. Debian packages in a fresh Debian 12 root"
debs_status=0
MTP_DEB_BUILD_DIR="$root/debs" bash tools/test-debs.sh || debs_status=$?
if ((debs_status == 77)); then
  echo "(the Debian package step was skipped; see the reason above)"
elif ((debs_status != 0)); then
  failed+=(debs)
fi

echo
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]} (${SECONDS}s)"
  exit 1
fi
echo "all test steps passed (${SECONDS}s)"
