#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Compile cost of the pool's templates: what each request type adds to a translation unit.
#
#   tools/compile-cost.sh [--types "1 10"] [--repeat N] [--cxx g++] [--flags "-O2 -DNDEBUG"] [--out FILE]
#
# Generates, in a temporary folder, one TU per count K (default 1 and 10): K distinct request
# types, one item type handling them all, and a function that sends each type through
# send, send_batch (both forms) and post on a thread_pool of that item. Each TU is compiled
# (-c only) against the repository's public include paths (core/include, affinity/include) with
# -std=c++20 and the flags (default: -O2 -DNDEBUG; CMake's Release build uses -O3 -DNDEBUG, pass
# --flags "-O3 -DNDEBUG" for that), N times (default 3; the fastest counts). Reports the wall time
# and the code size of the object (.text, and every .text* section, which is where template
# instantiations land), and the difference per extra request type, as a Markdown table on stdout
# (and in FILE with --out).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
types="1 10"
repeat=3
cxx="${CXX:-g++}"
flags="-O2 -DNDEBUG"
out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --types) types="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --cxx) cxx="$2"; shift 2 ;;
    --flags) flags="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "compile-cost.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# gen K: a TU with K request types sent through send, send_batch (vector and span forms) and post.
gen() {
  local k="$1" i
  {
    echo '#include <cstdint>'
    echo '#include <span>'
    echo '#include <vector>'
    echo '#include <mtp/mtp.hpp>'
    for ((i = 0; i < k; ++i)); do
      echo "struct req$i { mtp::id_t id; std::uint64_t x; using response_type = std::uint64_t; };"
    done
    echo 'class item {'
    echo ' public:'
    echo '  explicit item(mtp::id_t id) : id_(id) {}'
    for ((i = 0; i < k; ++i)); do
      echo "  std::uint64_t handle(const req$i& r) { sum_ += r.x * $((i + 3))u; return sum_ ^ (id_ + $i); }"
    done
    echo ' private:'
    echo '  std::uint64_t id_;'
    echo '  std::uint64_t sum_ = 0;'
    echo '};'
    echo 'std::uint64_t use(mtp::thread_pool<item>& pool, std::uint64_t x) {'
    echo '  std::uint64_t s = 0;'
    echo '  std::vector<mtp::result<std::uint64_t>> out(8);'
    for ((i = 0; i < k; ++i)); do
      echo "  {"
      echo "    const req$i r{x % 16, x + $i};"
      echo "    s += pool.send(r);"
      echo "    const std::vector<req$i> v(8, r);"
      echo "    for (const auto& got : pool.send_batch(v)) s += got.value();"
      echo "    pool.send_batch(std::span<const req$i>(v), std::span<mtp::result<std::uint64_t>>(out));"
      echo "    for (const auto& got : out) s += got.value();"
      echo "    s += pool.post(r) ? 1u : 0u;"
      echo "  }"
    done
    echo '  return s;'
    echo '}'
    echo 'std::uint64_t run(std::uint64_t x) {'
    echo '  mtp::thread_pool<item> pool;'
    echo '  pool.create(x % 16);'
    echo '  return use(pool, x);'
    echo '}'
  } > "$tmp/tu$k.cpp"
}

# text_sizes OBJ: ".text" bytes and the sum of every .text* section.
text_sizes() {
  size -A "$1" | awk '$1 == ".text" { t += $2 } $1 ~ /^\.text/ { all += $2 } END { printf "%d %d\n", t, all }'
}

now() { date +%s.%N; }

declare -A secs text alltext
for k in $types; do
  gen "$k"
  best=""
  for ((r = 0; r < repeat; ++r)); do
    t0=$(now)
    # shellcheck disable=SC2086
    "$cxx" -std=c++20 $flags -I"$root/core/include" -I"$root/affinity/include" -c "$tmp/tu$k.cpp" -o "$tmp/tu$k.o"
    t1=$(now)
    s=$(echo "$t1 - $t0" | bc -l)
    if [[ -z "$best" ]] || (( $(echo "$s < $best" | bc -l) )); then best="$s"; fi
  done
  read -r t a < <(text_sizes "$tmp/tu$k.o")
  secs[$k]="$best"
  text[$k]="$t"
  alltext[$k]="$a"
done

{
  echo "Compile cost: $("$cxx" --version | head -1), -std=c++20 $flags, fastest of $repeat; $(date -u +%Y-%m-%d)"
  echo
  echo "| request types | compile s | .text bytes | all .text* bytes |"
  echo "|---|---|---|---|"
  for k in $types; do
    printf "| %s | %.2f | %s | %s |\n" "$k" "${secs[$k]}" "${text[$k]}" "${alltext[$k]}"
  done
  first="" last=""
  for k in $types; do
    [[ -z "$first" ]] && first="$k"
    last="$k"
  done
  if [[ "$first" != "$last" ]]; then
    n=$((last - first))
    printf "| per extra type (%s to %s) | %.3f | %d | %d |\n" "$first" "$last" \
      "$(echo "(${secs[$last]} - ${secs[$first]}) / $n" | bc -l)" \
      "$(( (text[$last] - text[$first]) / n ))" "$(( (alltext[$last] - alltext[$first]) / n ))"
  fi
} | if [[ -n "$out" ]]; then tee "$out"; else cat; fi
