// SPDX-License-Identifier: MIT
// Topology discovery with hwloc (the MTP_WITH_HWLOC=ON backend).
#include "hwloc_util.hpp"
#include "internal.hpp"

#include <mtp/affinity/spec.hpp>
#include <mtp/affinity/topology.hpp>

#include <hwloc.h>

#include <array>
#include <cerrno>
#include <map>
#include <new>
#include <string>
#include <system_error>
#include <utility>

namespace mtp {

void topology_deleter::operator()(hwloc_topology* topo) const noexcept { hwloc_topology_destroy(topo); }
void bitmap_deleter::operator()(hwloc_bitmap_s* set) const noexcept { hwloc_bitmap_free(set); }

namespace impl {

unique_bitmap make_bitmap() {
  unique_bitmap set(hwloc_bitmap_alloc());
  if (!set) throw std::bad_alloc();
  return set;
}

std::vector<unsigned> to_cpus(hwloc_const_bitmap_t set) {
  std::vector<unsigned> cpus;
  if (set == nullptr || hwloc_bitmap_weight(set) < 0) return cpus;  // weight < 0: infinite
  for (int i = hwloc_bitmap_first(set); i != -1; i = hwloc_bitmap_next(set, i)) {
    cpus.push_back(static_cast<unsigned>(i));
  }
  return cpus;
}

std::string errno_text(int error) { return std::error_code(error, std::generic_category()).message(); }

std::vector<unsigned> expand_cpu_list(std::string_view validated_list) {
  const unique_bitmap set = make_bitmap();
  const std::string text(validated_list);
  if (hwloc_bitmap_list_sscanf(set.get(), text.c_str()) != 0) {
    throw_spec_error(validated_list, "malformed CPU list (rejected by hwloc)");
  }
  return to_cpus(set.get());
}

}  // namespace impl

namespace {

using impl::unique_bitmap;

std::unique_ptr<hwloc_topology, topology_deleter> init_topology() {
  hwloc_topology_t topo = nullptr;
  if (hwloc_topology_init(&topo) != 0) {
    const int error = errno;
    throw topology_error("hwloc could not initialise a topology: " + impl::errno_text(error));
  }
  return std::unique_ptr<hwloc_topology, topology_deleter>(topo);
}

void load_or_throw(hwloc_topology_t topo, const std::string& what) {
  if (hwloc_topology_load(topo) != 0) {
    const int error = errno;
    throw topology_error("hwloc could not load " + what + ": " + impl::errno_text(error));
  }
}

unique_bitmap dup_bitmap(hwloc_const_bitmap_t set) {
  unique_bitmap copy(hwloc_bitmap_dup(set));
  if (!copy) throw std::bad_alloc();
  return copy;
}

// The allowed part of an object's cpuset.
std::vector<unsigned> allowed_part(hwloc_const_bitmap_t set, hwloc_const_bitmap_t allowed) {
  const unique_bitmap both = impl::make_bitmap();
  hwloc_bitmap_and(both.get(), set, allowed);
  return impl::to_cpus(both.get());
}

int logical_index_of(hwloc_obj_t obj) {
  return obj == nullptr ? -1 : static_cast<int>(obj->logical_index);
}

}  // namespace

topology::topology(std::unique_ptr<hwloc_topology, topology_deleter> topo,
                   std::unique_ptr<hwloc_bitmap_s, bitmap_deleter> allowed, std::string source,
                   bool this_system)
    : topo_(std::move(topo)), allowed_(std::move(allowed)), source_(std::move(source)),
      this_system_(this_system) {
  if (hwloc_bitmap_iszero(allowed_.get())) {
    throw topology_error(source_ + ": no CPU is allowed for this process");
  }
  refresh();
}

topology::topology(topology&&) noexcept = default;
topology& topology::operator=(topology&&) noexcept = default;
topology::~topology() = default;

bool topology::available() noexcept { return true; }

topology topology::load() {
  auto topo = init_topology();
  load_or_throw(topo.get(), "this machine's topology");
  unique_bitmap allowed = dup_bitmap(hwloc_topology_get_allowed_cpuset(topo.get()));
  hwloc_bitmap_and(allowed.get(), allowed.get(), hwloc_topology_get_topology_cpuset(topo.get()));
  // The process binding (taskset, sched_setaffinity): the union over its threads, or failing
  // that the calling thread's. Both are inside what the kernel lets the process use.
  const unique_bitmap bound = impl::make_bitmap();
  if (hwloc_get_cpubind(topo.get(), bound.get(), HWLOC_CPUBIND_PROCESS) == 0 ||
      hwloc_get_cpubind(topo.get(), bound.get(), HWLOC_CPUBIND_THREAD) == 0) {
    hwloc_bitmap_and(allowed.get(), allowed.get(), bound.get());
  }
  return topology(std::move(topo), std::move(allowed), "this machine", true);
}

topology topology::from_synthetic(std::string_view description) {
  impl::check_synthetic_size(description);
  auto topo = init_topology();
  const std::string text(description);
  if (hwloc_topology_set_synthetic(topo.get(), text.c_str()) != 0) {
    throw topology_error("invalid hwloc synthetic description " + impl::quote(description) +
                         " (levels from the top down ending with pu:N, e.g. \"pack:2 numa:2 core:8 pu:2\")");
  }
  load_or_throw(topo.get(), "synthetic topology " + impl::quote(description));
  unique_bitmap allowed = dup_bitmap(hwloc_topology_get_allowed_cpuset(topo.get()));
  return topology(std::move(topo), std::move(allowed), "synthetic " + impl::quote(description),
                  false);
}

topology topology::from_xml(const std::filesystem::path& file) {
  auto topo = init_topology();
  const std::string name = file.string();
  if (hwloc_topology_set_xml(topo.get(), name.c_str()) != 0) {
    const int error = errno;
    throw topology_error("cannot read hwloc XML topology '" + name + "': " + impl::errno_text(error));
  }
  load_or_throw(topo.get(), "XML topology '" + name + "'");
  unique_bitmap allowed = dup_bitmap(hwloc_topology_get_allowed_cpuset(topo.get()));
  return topology(std::move(topo), std::move(allowed), "xml '" + name + "'", false);
}

void topology::restrict_to(std::string_view cpu_list) {
  constexpr std::string_view k_label = "allowed CPU list";
  const std::string_view list = impl::trim(cpu_list);
  const std::vector<unsigned> cpus =
      impl::expand_cpu_list(impl::validate_cpu_list(list, cpu_list, k_label));
  hwloc_const_bitmap_t complete = hwloc_topology_get_complete_cpuset(topo_.get());
  const unique_bitmap wanted = impl::make_bitmap();
  for (const unsigned cpu : cpus) {
    if (hwloc_bitmap_isset(complete, cpu) == 0) {
      impl::throw_spec_error(cpu_list, "CPU " + std::to_string(cpu) + " is not in " + source_ +
                                           " (CPUs " + format_cpu_list(impl::to_cpus(complete)) + ")",
                             k_label);
    }
    hwloc_bitmap_set(wanted.get(), cpu);
  }
  if (hwloc_bitmap_intersects(wanted.get(), allowed_.get()) == 0) {
    impl::throw_spec_error(cpu_list, "empty selection: none of these CPUs is allowed (allowed: " +
                                         format_cpu_list(cpus_) + ")",
                           k_label);
  }
  hwloc_bitmap_and(allowed_.get(), allowed_.get(), wanted.get());
  refresh();
}

void topology::refresh() {
  hwloc_topology_t topo = topo_.get();
  hwloc_const_bitmap_t allowed = allowed_.get();
  cpus_ = impl::to_cpus(allowed);

  // NUMA nodes (memory objects, outside the CPU tree in hwloc 2).
  numa_nodes_.clear();
  std::vector<hwloc_obj_t> nodes;
  for (hwloc_obj_t node = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, nullptr);
       node != nullptr; node = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, node)) {
    nodes.push_back(node);
    std::vector<unsigned> cpus = allowed_part(node->cpuset, allowed);
    if (cpus.empty()) continue;
    numa_info info;
    info.index = logical_index_of(node);
    info.os_index = node->os_index;
    info.memory_bytes = node->attr != nullptr ? node->attr->numanode.local_memory : 0;
    info.cpus = std::move(cpus);
    numa_nodes_.push_back(std::move(info));
  }
  const auto local_node = [&nodes](hwloc_const_bitmap_t set) {
    for (hwloc_obj_t node : nodes) {  // first node covering it, else first one touching it
      if (!hwloc_bitmap_iszero(node->cpuset) && hwloc_bitmap_isincluded(set, node->cpuset)) {
        return logical_index_of(node);
      }
    }
    for (hwloc_obj_t node : nodes) {
      if (hwloc_bitmap_intersects(set, node->cpuset)) return logical_index_of(node);
    }
    return -1;
  };

  packages_.clear();
  for (hwloc_obj_t pkg = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PACKAGE, nullptr);
       pkg != nullptr; pkg = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PACKAGE, pkg)) {
    std::vector<unsigned> cpus = allowed_part(pkg->cpuset, allowed);
    if (!cpus.empty()) packages_.push_back({logical_index_of(pkg), std::move(cpus)});
  }

  // Cores, walked through the allowed PUs in logical order. A PU without a Core ancestor (a
  // machine that reports no cores) counts as a core of its own.
  cores_.clear();
  std::map<hwloc_obj_t, std::size_t> core_slot;
  for (hwloc_obj_t pu = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PU, nullptr); pu != nullptr;
       pu = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PU, pu)) {
    if (hwloc_bitmap_isset(allowed, pu->os_index) == 0) continue;
    hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_CORE, pu);
    hwloc_obj_t owner = core != nullptr ? core : pu;
    auto [it, inserted] = core_slot.try_emplace(owner, cores_.size());
    if (inserted) {
      core_info info;
      info.index = logical_index_of(owner);
      info.package = logical_index_of(hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, pu));
      info.numa_node = local_node(owner->cpuset);
      info.l3 = logical_index_of(hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_L3CACHE, pu));
      info.l2 = logical_index_of(hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_L2CACHE, pu));
      cores_.push_back(std::move(info));
    }
    core_info& info = cores_[it->second];
    info.cpus.push_back(pu->os_index);
    info.pus.push_back(logical_index_of(pu));
  }

  caches_.clear();
  constexpr std::array k_cache_types = {HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L3CACHE,
                                        HWLOC_OBJ_L4CACHE, HWLOC_OBJ_L5CACHE};
  for (const hwloc_obj_type_t type : k_cache_types) {
    for (hwloc_obj_t cache = hwloc_get_next_obj_by_type(topo, type, nullptr); cache != nullptr;
         cache = hwloc_get_next_obj_by_type(topo, type, cache)) {
      std::vector<unsigned> cpus = allowed_part(cache->cpuset, allowed);
      if (cpus.empty()) continue;
      cache_info info;
      info.level = cache->attr != nullptr ? cache->attr->cache.depth : 0;
      info.index = logical_index_of(cache);
      info.size_bytes = cache->attr != nullptr ? cache->attr->cache.size : 0;
      info.cpus = std::move(cpus);
      caches_.push_back(std::move(info));
    }
  }
}

}  // namespace mtp
