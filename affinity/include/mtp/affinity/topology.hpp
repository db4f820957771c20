// SPDX-License-Identifier: MIT
// Topology: a snapshot of a machine's packages, NUMA nodes, cores, hardware threads and caches.
//
// Contract: a topology comes from the running machine (topology::load), from an hwloc
// synthetic description ("pack:2 numa:2 core:8 pu:2") or from an hwloc XML file, and owns its
// hwloc handle (move-only, freed on destruction). Only the CPUs in its allowed set count: for
// the running machine that is hwloc's allowed cpuset (cgroup cpuset, container limits)
// intersected with the process's CPU binding (taskset, sched_setaffinity), so nothing planned
// from it can land outside what the process may use. restrict_to() narrows the allowed set
// further, which lets tests plan for big or restricted machines anywhere. Every query returns
// allowed objects only; indexes are hwloc logical indexes, CPU numbers are OS numbers.
// Construction failures throw topology_error. This header does not include <hwloc.h>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct hwloc_topology;  // hwloc's opaque topology (hwloc_topology_t is a pointer to it).
struct hwloc_bitmap_s;  // hwloc's opaque bitmap (hwloc_bitmap_t / hwloc_cpuset_t).

namespace mtp {

/// The machine description could not be obtained (hwloc failed, bad synthetic text or XML
/// file, or the library was built without hwloc).
class topology_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Limits on topology::from_synthetic descriptions, checked on the text before hwloc builds
/// anything (hwloc's time and memory grow faster than linearly with these: "pack:64 core:64
/// pu:16" takes tens of seconds and about 1 GB). Hardware threads are the product of the
/// levels' arities, objects the sum over levels of the objects at that level.
inline constexpr std::size_t k_max_synthetic_pus = 4096;
inline constexpr std::size_t k_max_synthetic_arity = 256;
inline constexpr std::size_t k_max_synthetic_objects = 32768;

/// One physical core with at least one allowed hardware thread.
struct core_info {
  int index = -1;              ///< hwloc logical index of the core.
  int package = -1;            ///< Package containing it, or -1.
  int numa_node = -1;          ///< Local NUMA node (first one covering it), or -1.
  int l3 = -1;                 ///< L3 cache containing it, or -1.
  int l2 = -1;                 ///< L2 cache containing it, or -1.
  std::vector<unsigned> cpus;  ///< Its allowed hardware threads (OS numbers), ascending.
  std::vector<int> pus;        ///< hwloc logical indexes of those hardware threads.
};

/// A NUMA node (memory domain) that has at least one allowed CPU.
struct numa_info {
  int index = -1;                 ///< hwloc logical index.
  unsigned os_index = 0;          ///< OS node number (what numactl shows).
  std::uint64_t memory_bytes = 0; ///< Local memory, 0 if unknown.
  std::vector<unsigned> cpus;     ///< Its allowed CPUs.
};

/// A package (socket) that has at least one allowed CPU.
struct package_info {
  int index = -1;
  std::vector<unsigned> cpus;     ///< Its allowed CPUs.
};

/// A data or unified CPU cache that covers at least one allowed CPU.
struct cache_info {
  unsigned level = 0;             ///< 1, 2, 3, ...
  int index = -1;                 ///< hwloc logical index among caches of that level and type.
  std::uint64_t size_bytes = 0;   ///< 0 if unknown.
  std::vector<unsigned> cpus;     ///< Allowed CPUs sharing it.
};

/// Owns hwloc handles; never called on null.
struct topology_deleter {
  void operator()(hwloc_topology* topo) const noexcept;
};
struct bitmap_deleter {
  void operator()(hwloc_bitmap_s* set) const noexcept;
};

/// A loaded machine description and its allowed CPUs. Move-only.
class topology {
 public:
  /// The running machine, limited to the CPUs this process may use. Throws topology_error.
  [[nodiscard]] static topology load();
  /// An hwloc synthetic machine, e.g. "pack:2 numa:2 core:8 pu:2" (all CPUs allowed). Throws
  /// topology_error for an empty or invalid description, a level whose arity cannot be read,
  /// or one over the k_max_synthetic_* limits.
  [[nodiscard]] static topology from_synthetic(std::string_view description);
  /// An hwloc XML export (lstopo --of xml), all of its CPUs allowed.
  [[nodiscard]] static topology from_xml(const std::filesystem::path& file);
  /// False when the library was built without hwloc: every factory then throws.
  [[nodiscard]] static bool available() noexcept;

  topology(topology&&) noexcept;
  topology& operator=(topology&&) noexcept;
  topology(const topology&) = delete;
  topology& operator=(const topology&) = delete;
  ~topology();

  /// Keeps only the allowed CPUs that are in `cpu_list` (same syntax as an affinity spec CPU
  /// list, e.g. "0-3,8"). Throws affinity_error if the text is malformed, names a CPU this
  /// topology does not have, or leaves no CPU allowed.
  void restrict_to(std::string_view cpu_list);

  /// Where it came from: "this machine", "synthetic 'pack:2 core:4'", "xml '/path'".
  [[nodiscard]] const std::string& source() const noexcept { return source_; }
  /// True for topology::load(): pinning to its CPUs is meaningful.
  [[nodiscard]] bool is_this_system() const noexcept { return this_system_; }

  [[nodiscard]] const std::vector<unsigned>& allowed_cpus() const noexcept { return cpus_; }
  [[nodiscard]] const std::vector<core_info>& cores() const noexcept { return cores_; }
  [[nodiscard]] const std::vector<numa_info>& numa_nodes() const noexcept { return numa_nodes_; }
  [[nodiscard]] const std::vector<package_info>& packages() const noexcept { return packages_; }
  [[nodiscard]] const std::vector<cache_info>& caches() const noexcept { return caches_; }

  /// The underlying hwloc topology, for callers that use hwloc directly. Never null.
  [[nodiscard]] hwloc_topology* native_handle() const noexcept { return topo_.get(); }

 private:
  topology(std::unique_ptr<hwloc_topology, topology_deleter> topo,
           std::unique_ptr<hwloc_bitmap_s, bitmap_deleter> allowed, std::string source,
           bool this_system);
  void refresh();  // rebuilds the snapshot below from topo_ and allowed_

  std::unique_ptr<hwloc_topology, topology_deleter> topo_;
  std::unique_ptr<hwloc_bitmap_s, bitmap_deleter> allowed_;
  std::string source_;
  bool this_system_ = false;
  std::vector<unsigned> cpus_;
  std::vector<core_info> cores_;
  std::vector<numa_info> numa_nodes_;
  std::vector<package_info> packages_;
  std::vector<cache_info> caches_;
};

/// This machine's topology (topology::load()), loaded once per process on first use and then
/// shared; the planner and bind_current_thread use the same one. Thread-safe. Throws
/// topology_error when it cannot be loaded (and keeps throwing the same error, without
/// retrying, until refresh_topology() in <mtp/affinity/placement.hpp> is called).
[[nodiscard]] std::shared_ptr<const topology> machine_topology();

}  // namespace mtp
