// SPDX-License-Identifier: MIT
// Affinity specs: the text that says where a pool's workers run, and the planner behind it.
//
// Contract: the same spec text is accepted everywhere (plan_placement, a pool option, the
// MTP_AFFINITY environment variable, the "affinity" key of a config file):
//
//   spec     := policy [":reserve=" R] | "none" | cpu-list
//   policy   := "cores" | "pus" | "numa:compact" | "numa:scatter"
//   cpu-list := item ("," item)*        item := N | N "-" M   (OS CPU numbers, N <= M)
//
// ":reserve=R" keeps the last R allowed cores (in hwloc logical order) free of workers for the
// threads that call the pool: the policy places its workers on the other cores, and the
// reserved cores' CPUs are returned in placement::caller_cpus. R counts cores for every
// policy (pus too, so a caller never shares a core with a worker's hardware thread), is at
// most k_max_cpu_number, and is cut to leave at least one core for the workers (with a note).
//
// Leading and trailing blanks are ignored; nothing else is. A bad spec throws affinity_error
// whose message names the offending text and why; nothing ever silently falls back to another
// policy. Planning on a topology only ever selects CPUs in that topology's allowed set.
#pragma once

#include <mtp/affinity/placement.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mtp {

class topology;

/// What a spec selects.
enum class placement_policy {
  none,          ///< No pinning.
  cores,         ///< One worker per allowed physical core, pinned to all of its hardware threads.
  pus,           ///< One worker per allowed hardware thread (PU).
  numa_compact,  ///< Per core, filling one NUMA node before the next.
  numa_scatter,  ///< Per core, round-robin over NUMA nodes.
  cpu_list,      ///< One worker per listed CPU.
};

/// A parsed, syntactically valid spec (not yet checked against a machine).
struct affinity_spec {
  placement_policy policy = placement_policy::cores;
  std::vector<unsigned> cpus;  ///< For cpu_list: the listed CPUs, ascending, no duplicates.
  std::size_t reserve = 0;     ///< Cores kept free for callers (":reserve=N"); 0 = none.
  std::string text;            ///< The spec with surrounding blanks removed.
};

/// Largest CPU number a CPU list may name (also the largest ":reserve=" count).
inline constexpr unsigned k_max_cpu_number = 65535;

/// The spec used when none was given: MTP_AFFINITY if set and not blank, else "cores".
inline constexpr std::string_view k_default_spec = "cores";
inline constexpr const char* k_affinity_env = "MTP_AFFINITY";

/// Parses spec text. Throws affinity_error (unknown policy, malformed range, empty spec, ...).
[[nodiscard]] affinity_spec parse_affinity_spec(std::string_view text);

/// Plans `workers` workers (0 = one per selected core or CPU) on `topo`. Throws affinity_error
/// for a bad spec, a listed CPU outside the allowed set, or an empty selection.
[[nodiscard]] placement plan_placement(const topology& topo, std::string_view spec,
                                       std::size_t workers = 0);
[[nodiscard]] placement plan_placement(const topology& topo, const affinity_spec& spec,
                                       std::size_t workers = 0);

/// The effective default spec text: the MTP_AFFINITY value (trimmed) if set and not blank,
/// else k_default_spec. Does not validate it.
[[nodiscard]] std::string default_affinity_spec();

/// Formats CPU numbers as a compact list ("0-3,8,10"); input need not be sorted.
[[nodiscard]] std::string format_cpu_list(std::vector<unsigned> cpus);

/// The canonical name of a policy ("cores", "numa:scatter", "cpu list", ...).
[[nodiscard]] std::string_view to_string(placement_policy policy) noexcept;

}  // namespace mtp
