// SPDX-License-Identifier: MIT
// Pinning the calling thread with hwloc (the MTP_WITH_HWLOC=ON backend).
#include "hwloc_util.hpp"
#include "internal.hpp"

#include <mtp/affinity/placement.hpp>
#include <mtp/affinity/spec.hpp>
#include <mtp/affinity/topology.hpp>

#include <hwloc.h>

#include <cerrno>
#include <memory>
#include <string>

namespace mtp {

namespace {

std::string describe_failure(int error) {
  switch (error) {
    case EPERM:
      return "not permitted (EPERM): this process may not change CPU affinity here (container, "
             "seccomp or security policy)";
    case ENOSYS:
      return "not supported on this system (ENOSYS)";
    case EINVAL:
      return "rejected by the kernel (EINVAL): the CPUs are outside this process's allowed set";
    case EXDEV:
      return "cannot be enforced on this system (EXDEV)";
    default:
      return impl::errno_text(error);
  }
}

}  // namespace

namespace impl {
std::string_view pinning_unavailable_reason() noexcept { return {}; }
}  // namespace impl

bind_result bind_current_thread(const worker_placement& where, bool bind_memory) noexcept {
  bind_result result;
  if (where.cpus.empty()) return result;
  try {
    const std::string what = "cannot pin to CPUs " + format_cpu_list(where.cpus);
    // The process's shared topology (hwloc's binding calls only read it); held for the call
    // so that a concurrent refresh_topology() cannot free it.
    std::shared_ptr<const topology> machine;
    try {
      machine = machine_topology();
    } catch (const topology_error& e) {
      result.error = what + ": pinning unavailable: " + e.what();
      return result;
    }
    hwloc_topology_t topo = machine->native_handle();
    hwloc_const_cpuset_t complete = hwloc_topology_get_complete_cpuset(topo);
    const impl::unique_bitmap set = impl::make_bitmap();
    for (const unsigned cpu : where.cpus) {
      // Checked before hwloc_bitmap_set, which would grow the bitmap to any number given.
      if (cpu > k_max_cpu_number || hwloc_bitmap_isset(complete, cpu) == 0) {
        result.error = what + ": CPU " + std::to_string(cpu) + " does not exist on this machine";
        return result;
      }
      hwloc_bitmap_set(set.get(), cpu);
    }
    if (hwloc_set_cpubind(topo, set.get(), HWLOC_CPUBIND_THREAD) != 0) {
      const int error = errno;
      result.error = what + ": " + describe_failure(error);
      return result;
    }
    result.pinned = true;
    // On a single-node machine all memory is local already: nothing to bind.
    if (bind_memory && hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE) > 1) {
      const impl::unique_bitmap nodes = impl::make_bitmap();
      hwloc_cpuset_to_nodeset(topo, set.get(), nodes.get());
      if (hwloc_set_membind(topo, nodes.get(), HWLOC_MEMBIND_BIND,
                            HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) != 0) {
        const int error = errno;
        result.error = "pinned to CPUs " + format_cpu_list(where.cpus) +
                       ", but cannot bind memory to NUMA node(s) " +
                       format_cpu_list(impl::to_cpus(nodes.get())) + ": " +
                       describe_failure(error);
      }
    }
  } catch (...) {  // only std::bad_alloc can get here
    result.error = "cannot pin: out of memory";
  }
  return result;
}

}  // namespace mtp
