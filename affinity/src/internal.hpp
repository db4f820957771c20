// Internals of the affinity library shared by its sources (namespace mtp::impl). The hwloc
// and no-hwloc builds provide different definitions of the functions marked "backend".
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtp::impl {

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
