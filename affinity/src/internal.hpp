// SPDX-License-Identifier: MIT
// Internals of the affinity library shared by its sources (namespace mtp::impl). The hwloc
// and no-hwloc builds provide different definitions of the functions marked "backend".
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtp::impl {

constexpr bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

inline constexpr std::string_view k_expected =
    "expected cores, pus, numa:compact, numa:scatter, none, or a CPU list such as 0-3,8; "
    "a policy may end in :reserve=N";
inline constexpr std::string_view k_reserve_needs_policy =
    "reserve=N applies to cores, pus, numa:compact and numa:scatter (with a CPU list, the CPUs "
    "not listed are free for callers; with none, nothing is pinned)";

/// The N of a spec's "reserve=N" option (`option` is the text after the policy's ':').
/// Throws affinity_error naming `spec` for another option or a malformed or too large N.
[[nodiscard]] std::size_t parse_reserve(std::string_view option, std::string_view spec);

/// `text` with control and non-ASCII bytes escaped as \xNN and cut after 80 characters, in
/// single quotes: safe to embed in an error message whatever the input was.
[[nodiscard]] std::string quote(std::string_view text);

/// Throws affinity_error("<label> '<spec>': <why>"); label defaults to "affinity spec".
[[noreturn]] void throw_spec_error(std::string_view spec, std::string_view why,
                                   std::string_view label = "affinity spec");

/// Checks that `list` is a well-formed CPU list (item ("," item)*, item = N | N-M, N <= M,
/// numbers <= k_max_cpu_number) and returns it with every number in plain decimal (leading
/// zeros dropped: hwloc would read "010" as octal). Throws affinity_error naming `spec` and
/// the bad item.
[[nodiscard]] std::string validate_cpu_list(std::string_view list, std::string_view spec,
                       std::string_view label = "affinity spec");

/// Throws affinity_error when `workers` is over k_max_workers; the message states the limit.
void check_worker_count(std::size_t workers);

/// The worker count a plan gets: `workers`, or when it is 0 `available` cut to k_max_workers.
/// When it cuts, adds a note naming `counted` (e.g. "8192 cores") to `notes`.
[[nodiscard]] std::size_t worker_count(std::size_t workers, std::size_t available,
                                       std::string_view counted, std::vector<std::string>& notes);

/// Throws topology_error unless `description` is a non-empty hwloc synthetic description
/// whose arities can be read and stay within the k_max_synthetic_* limits. Only the arities
/// are checked; hwloc checks the rest.
void check_synthetic_size(std::string_view description);

/// ASCII blanks removed from both ends.
[[nodiscard]] std::string_view trim(std::string_view text) noexcept;

/// The trimmed MTP_AFFINITY value, or nullopt when it is unset or blank.
[[nodiscard]] std::optional<std::string> env_affinity_spec();

/// Backend: the CPUs of a list that validate_cpu_list returned, ascending and unique. The
/// hwloc build parses it with hwloc_bitmap_list_sscanf.
[[nodiscard]] std::vector<unsigned> expand_cpu_list(std::string_view validated_list);

/// Backend: why pinning cannot work in this build, or empty when it can be attempted.
[[nodiscard]] std::string_view pinning_unavailable_reason() noexcept;

}  // namespace mtp::impl
