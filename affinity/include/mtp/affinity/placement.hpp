// SPDX-License-Identifier: MIT
// Placement: where each worker of a pool runs. The plain data the core pool consumes.
//
// This header is hwloc-free on purpose: the pool (mtp::core) depends only on these types and
// on the three functions below. How a placement is computed (hwloc topology, policies, the
// spec grammar) lives in the affinity library's other headers and sources.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mtp {

/// Where one worker runs.
struct worker_placement {
  std::vector<unsigned> cpus;  ///< OS CPU numbers the worker is pinned to; empty = not pinned.
  int core = -1;               ///< Physical core (hwloc logical index) it is pinned to, or -1.
  int numa_node = -1;          ///< NUMA node (hwloc logical index) it is pinned to, or -1.
  int package = -1;            ///< Package / socket (hwloc logical index) it is pinned to, or -1.

  friend bool operator==(const worker_placement&, const worker_placement&) = default;
};

/// The plan for a whole pool: one entry per worker, plus what the planner wants the user to
/// know (e.g. "8 workers share 4 CPUs round-robin", "pinning unavailable: ...").
struct placement {
  std::vector<worker_placement> workers;
  std::string spec;                 ///< The spec text the plan was made from ("cores", "0-3", ...).
  std::vector<std::string> notes;   ///< Human-readable remarks about the plan.
  bool bind_memory = false;         ///< Also bind each worker's allocations to its NUMA node.
  /// CPUs kept free of workers for the threads that call the pool (spec ":reserve=N", e.g.
  /// "cores:reserve=1"); empty = none reserved. A caller pins itself there with
  /// bind_current_thread(worker_placement{.cpus = plan.caller_cpus}).
  std::vector<unsigned> caller_cpus;

  friend bool operator==(const placement&, const placement&) = default;
};

/// A bad affinity spec: the message names the offending text and why.
class affinity_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// The most workers a plan may have. Asking for more (plan_placement, default_placement, a
/// config file's "workers") throws affinity_error; a plan sized by the machine (workers = 0)
/// on a machine with more cores or CPUs than this is cut to this many, with a note.
inline constexpr std::size_t k_max_workers = 4096;

/// Computes a plan for `workers` workers (0 = one per selected core or CPU) from a spec such as
/// "cores", "pus", "numa:compact", "numa:scatter", "0-3,8", "none", "cores:reserve=1" (see
/// <mtp/affinity/spec.hpp> for the grammar). Throws affinity_error for
/// a bad spec or more than k_max_workers workers.
[[nodiscard]] placement plan_placement(std::string_view spec, std::size_t workers = 0);

/// The plan a pool uses when the caller gave none: the spec from the MTP_AFFINITY environment
/// variable if set (a bad value throws affinity_error; it never silently falls back), else
/// "cores" (one pinned worker per allowed physical core). More than k_max_workers workers
/// throws affinity_error too.
[[nodiscard]] placement default_placement(std::size_t workers = 0);

/// Forgets this machine's cached topology, so that the next plan (and the next pinning) loads
/// it again. plan_placement(spec), default_placement (so every pool given no placement) and
/// bind_current_thread load the topology once per process, on first use, and share it: a pool
/// costs no topology load. Call this after the process's allowed CPUs change at run time
/// (sched_setaffinity or taskset on the running process, a cgroup cpuset update, CPU hotplug);
/// plans made before keep their CPUs. Thread-safe; a load that failed is retried too.
void refresh_topology() noexcept;

/// The outcome of pinning the calling thread. `error` is non-empty whenever something asked for
/// did not happen: pinning (then pinned == false) or, with pinned == true, memory binding.
struct bind_result {
  bool pinned = false;   ///< True when the thread now runs only on the requested CPUs.
  std::string error;     ///< Why not, when pinning was requested and failed; empty otherwise.
};

/// The CPUs the calling thread may run on right now (sched_getaffinity: taskset, cgroup
/// cpuset, an earlier pinning), as ascending OS CPU numbers (up to 65535, k_max_cpu_number); empty if
/// the kernel does not say. Works in every build, with or without hwloc.
[[nodiscard]] std::vector<unsigned> allowed_cpus();

/// Pins the calling thread to `where.cpus` (and, if `bind_memory`, its allocations to its NUMA
/// node). An empty CPU list does nothing and reports success with pinned == false. Never
/// throws: a machine that forbids pinning (EPERM, ENOSYS, a restricted container) yields an
/// error text and the thread keeps running unpinned.
[[nodiscard]] bind_result bind_current_thread(const worker_placement& where,
                                              bool bind_memory = false) noexcept;

}  // namespace mtp
