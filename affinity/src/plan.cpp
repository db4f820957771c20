// SPDX-License-Identifier: MIT
// The planner: from a spec and a topology snapshot to one worker_placement per worker. Pure
// C++ over topology's queries, shared by the hwloc and no-hwloc builds.
#include "internal.hpp"

#include <mtp/affinity/placement.hpp>
#include <mtp/affinity/spec.hpp>
#include <mtp/affinity/topology.hpp>

#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

namespace mtp {

namespace {

// Where one worker (or several, round-robin) can be pinned.
using slot = worker_placement;

using key = std::vector<int>;

// Scatter order: items are grouped by key[level] (groups in order of first appearance), each
// group is ordered recursively by the next level, and the groups are then interleaved
// round-robin. Consecutive items therefore differ at the highest level they can, e.g. package
// first, then NUMA node, then L3, then L2, then core.
std::vector<std::size_t> scatter(const std::vector<key>& keys, std::vector<std::size_t> items,
                                 std::size_t level) {
  if (items.size() <= 1 || level >= keys[items.front()].size()) return items;
  std::map<int, std::size_t> group_of;
  std::vector<std::vector<std::size_t>> groups;
  for (const std::size_t item : items) {
    const auto [it, inserted] = group_of.try_emplace(keys[item][level], groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(item);
  }
  for (auto& group : groups) group = scatter(keys, std::move(group), level + 1);
  if (groups.size() == 1) return std::move(groups.front());
  std::vector<std::size_t> out;
  out.reserve(items.size());
  for (std::size_t round = 0; out.size() < items.size(); ++round) {
    for (const auto& group : groups) {
      if (round < group.size()) out.push_back(group[round]);
    }
  }
  return out;
}

std::vector<std::size_t> all_indexes(std::size_t n) {
  std::vector<std::size_t> items(n);
  for (std::size_t i = 0; i < n; ++i) items[i] = i;
  return items;
}

slot core_slot(const core_info& core) {
  return slot{core.cpus, core.index, core.numa_node, core.package};
}

using core_list = std::vector<core_info>;

std::vector<slot> core_slots_scattered(const core_list& cores) {
  std::vector<key> keys;
  keys.reserve(cores.size());
  for (const auto& c : cores) keys.push_back({c.package, c.numa_node, c.l3, c.l2, c.index});
  std::vector<slot> slots;
  for (const std::size_t i : scatter(keys, all_indexes(cores.size()), 0)) {
    slots.push_back(core_slot(cores[i]));
  }
  return slots;
}

std::vector<slot> pu_slots_scattered(const core_list& cores) {
  std::vector<key> keys;
  std::vector<slot> pus;
  for (const auto& c : cores) {
    for (std::size_t t = 0; t < c.cpus.size(); ++t) {
      keys.push_back({c.package, c.numa_node, c.l3, c.l2, c.index, c.pus[t]});
      pus.push_back(slot{{c.cpus[t]}, c.index, c.numa_node, c.package});
    }
  }
  std::vector<slot> slots;
  for (const std::size_t i : scatter(keys, all_indexes(pus.size()), 0)) slots.push_back(pus[i]);
  return slots;
}

// Cores grouped by NUMA node (nodes in index order, cores in logical order inside a node; a
// core with no known node is last).
std::vector<std::vector<slot>> cores_by_node(const core_list& cores) {
  std::map<int, std::vector<slot>> nodes;
  for (const auto& c : cores) {
    nodes[c.numa_node < 0 ? std::numeric_limits<int>::max() : c.numa_node].push_back(core_slot(c));
  }
  std::vector<std::vector<slot>> out;
  for (auto& [node, cores] : nodes) out.push_back(std::move(cores));
  return out;
}

std::vector<slot> numa_compact_slots(const core_list& cores) {
  std::vector<slot> slots;
  for (auto& node : cores_by_node(cores)) {
    for (auto& s : node) slots.push_back(std::move(s));
  }
  return slots;
}

std::vector<slot> numa_scatter_slots(const core_list& cores) {
  const auto nodes = cores_by_node(cores);
  std::vector<slot> slots;
  std::size_t total = 0;
  for (const auto& node : nodes) total += node.size();
  for (std::size_t round = 0; slots.size() < total; ++round) {
    for (const auto& node : nodes) {
      if (round < node.size()) slots.push_back(node[round]);
    }
  }
  return slots;
}

// "1 core", "4 CPUs", ... for the notes.
std::string count_of(std::size_t n, placement_policy policy) {
  const bool cpus = policy == placement_policy::pus || policy == placement_policy::cpu_list;
  return std::to_string(n) + (cpus ? " CPU" : " core") + (n == 1 ? "" : "s");
}

// The cores kept free of workers for callers (":reserve=N"), and what the plan says about them.
struct reservation {
  std::vector<unsigned> cpus;  // ascending
  std::string note;
};

// Removes the last `wanted` cores of `cores` (fewer if that would leave none) and returns
// their CPUs.
reservation reserve_cores(core_list& cores, std::size_t wanted) {
  reservation out;
  if (wanted == 0 || cores.empty()) return out;
  const std::size_t kept = cores.size() > wanted ? wanted : cores.size() - 1;
  if (kept == 0) {
    out.note = "reserve=" + std::to_string(wanted) +
               " not applied: only 1 core is allowed, and it runs the workers (callers share it)";
    return out;
  }
  const auto first = cores.end() - static_cast<std::ptrdiff_t>(kept);
  for (auto it = first; it != cores.end(); ++it) out.cpus.insert(out.cpus.end(), it->cpus.begin(), it->cpus.end());
  cores.erase(first, cores.end());
  std::sort(out.cpus.begin(), out.cpus.end());
  out.note = count_of(kept, placement_policy::cores) + " (" + (out.cpus.size() == 1 ? "CPU " : "CPUs ") +
             format_cpu_list(out.cpus) + ") kept free of workers for callers (placement::caller_cpus)";
  if (kept < wanted) {
    out.note += "; reserve=" + std::to_string(wanted) + " cut to " + std::to_string(kept) +
                " so that 1 of the " + std::to_string(kept + 1) + " allowed cores runs the workers";
  }
  return out;
}

[[noreturn]] void throw_not_allowed(const affinity_spec& spec, const std::vector<unsigned>& missing,
                                    const std::vector<unsigned>& allowed) {
  const std::string which = missing.size() == 1 ? "CPU " + format_cpu_list(missing) + " is"
                                                : "CPUs " + format_cpu_list(missing) + " are";
  impl::throw_spec_error(spec.text, which + " not in this process's allowed set (" +
                                        format_cpu_list(allowed) + ")");
}

std::vector<slot> cpu_list_slots(const topology& topo, const affinity_spec& spec) {
  std::map<unsigned, slot> where;  // allowed CPU -> its core, node and package
  for (const auto& c : topo.cores()) {
    for (const unsigned cpu : c.cpus) where[cpu] = slot{{cpu}, c.index, c.numa_node, c.package};
  }
  std::vector<unsigned> missing;
  std::vector<slot> slots;
  for (const unsigned cpu : spec.cpus) {
    const auto it = where.find(cpu);
    if (it == where.end()) {
      missing.push_back(cpu);
    } else {
      slots.push_back(it->second);
    }
  }
  if (!missing.empty()) throw_not_allowed(spec, missing, topo.allowed_cpus());
  return slots;
}

// Deals `slots` to the workers round-robin and writes the notes that go with it.
placement deal(const affinity_spec& spec, std::vector<slot> slots, std::size_t workers,
               std::size_t available_cpus) {
  if (slots.empty()) impl::throw_spec_error(spec.text, "empty selection: no allowed CPU to run on");
  placement plan;
  plan.spec = spec.text;
  const std::size_t n =
      impl::worker_count(workers, slots.size(), count_of(slots.size(), spec.policy), plan.notes);
  plan.workers.reserve(n);
  for (std::size_t i = 0; i < n; ++i) plan.workers.push_back(slots[i % slots.size()]);
  if (n > slots.size()) {
    plan.notes.push_back(std::to_string(n) + " workers share " + count_of(slots.size(), spec.policy) +
                         " round-robin (worker i runs where worker i mod " +
                         std::to_string(slots.size()) + " does)");
  } else if (n < slots.size()) {
    std::string how;
    switch (spec.policy) {
      case placement_policy::numa_compact: how = "; filled NUMA node by NUMA node"; break;
      case placement_policy::cpu_list: break;
      default: how = "; consecutive workers share as little as possible"; break;
    }
    plan.notes.push_back(std::to_string(n) + " of " + count_of(slots.size(), spec.policy) +
                         " used (" + std::to_string(available_cpus) + " allowed CPUs)" + how);
  }
  return plan;
}

std::size_t allowed_cpu_count() {
  const std::size_t n = allowed_cpus().size();
  if (n != 0) return n;
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : hc;
}

placement unpinned(const affinity_spec& spec, std::size_t workers, std::size_t available) {
  placement plan;
  plan.spec = spec.text;
  plan.workers.resize(impl::worker_count(workers, available, std::to_string(available) + " CPUs", plan.notes));
  return plan;
}

// The running machine could not be described: CPU lists are still checked against the
// thread's allowed CPUs and kept; policies that need the topology run unpinned.
placement plan_without_topology(const affinity_spec& spec, std::size_t workers,
                                std::string_view reason) {
  if (spec.policy != placement_policy::cpu_list) {
    placement plan = unpinned(spec, workers, allowed_cpu_count());
    plan.notes.push_back("pinning unavailable (" + std::string(reason) + "); " +
                         std::to_string(plan.workers.size()) + " workers run unpinned");
    if (spec.reserve > 0) {
      plan.notes.push_back("reserve=" + std::to_string(spec.reserve) +
                           " not applied: without the topology no core can be kept for callers");
    }
    return plan;
  }
  const std::vector<unsigned> allowed = allowed_cpus();
  std::vector<unsigned> missing;
  std::vector<slot> slots;
  for (const unsigned cpu : spec.cpus) {
    if (!allowed.empty() && !std::binary_search(allowed.begin(), allowed.end(), cpu)) {
      missing.push_back(cpu);
    }
    slots.push_back(slot{{cpu}, -1, -1, -1});
  }
  if (!missing.empty()) throw_not_allowed(spec, missing, allowed);
  placement plan = deal(spec, std::move(slots), workers, allowed.size());
  plan.notes.push_back("topology unavailable (" + std::string(reason) +
                       "): core and NUMA node are not reported");
  if (const std::string_view why = impl::pinning_unavailable_reason(); !why.empty()) {
    plan.notes.push_back("pinning unavailable: " + std::string(why));
  }
  return plan;
}

// This machine's topology, or why it could not be loaded; loaded on first use. Never
// destroyed: pools in static objects may still plan or pin during exit.
struct machine_cache {
  std::mutex mutex;
  bool loaded = false;
  std::shared_ptr<const topology> topo;
  std::string error;
};

machine_cache& cache() {
  static auto* const instance = new machine_cache;  // NOLINT(cppcoreguidelines-owning-memory)
  return *instance;
}

}  // namespace

std::shared_ptr<const topology> machine_topology() {
  machine_cache& c = cache();
  const std::lock_guard lock(c.mutex);
  if (!c.loaded) {
    try {
      c.topo = std::make_shared<const topology>(topology::load());
    } catch (const topology_error& e) {
      c.error = e.what();
    }
    c.loaded = true;
  }
  if (!c.topo) throw topology_error(c.error);
  return c.topo;
}

void refresh_topology() noexcept {
  machine_cache& c = cache();
  std::shared_ptr<const topology> old;  // released after the lock, maybe not the last owner
  const std::lock_guard lock(c.mutex);
  old.swap(c.topo);
  c.error.clear();
  c.loaded = false;
}

placement plan_placement(const topology& topo, const affinity_spec& spec, std::size_t workers) {
  impl::check_worker_count(workers);
  if (spec.policy == placement_policy::none) return unpinned(spec, workers, topo.allowed_cpus().size());
  std::vector<slot> slots;
  reservation reserved;
  if (spec.policy == placement_policy::cpu_list) {
    slots = cpu_list_slots(topo, spec);
  } else {
    core_list cores = topo.cores();
    reserved = reserve_cores(cores, spec.reserve);
    switch (spec.policy) {
      case placement_policy::cores: slots = core_slots_scattered(cores); break;
      case placement_policy::pus: slots = pu_slots_scattered(cores); break;
      case placement_policy::numa_compact: slots = numa_compact_slots(cores); break;
      case placement_policy::numa_scatter: slots = numa_scatter_slots(cores); break;
      case placement_policy::none:
      case placement_policy::cpu_list: break;  // handled above
    }
  }
  placement plan =
      deal(spec, std::move(slots), workers, topo.allowed_cpus().size() - reserved.cpus.size());
  plan.caller_cpus = std::move(reserved.cpus);
  if (!reserved.note.empty()) plan.notes.push_back(std::move(reserved.note));
  if (!topo.is_this_system()) {
    plan.notes.push_back("planned on " + topo.source() + ", not on this machine");
  }
  return plan;
}

placement plan_placement(const topology& topo, std::string_view spec, std::size_t workers) {
  return plan_placement(topo, parse_affinity_spec(spec), workers);
}

placement plan_placement(std::string_view spec, std::size_t workers) {
  const affinity_spec parsed = parse_affinity_spec(spec);
  impl::check_worker_count(workers);
  if (parsed.policy == placement_policy::none) return unpinned(parsed, workers, allowed_cpu_count());
  std::string reason;
  try {
    const std::shared_ptr<const topology> topo = machine_topology();
    return plan_placement(*topo, parsed, workers);
  } catch (const topology_error& e) {
    reason = e.what();
  }
  return plan_without_topology(parsed, workers, reason);
}

placement default_placement(std::size_t workers) {
  impl::check_worker_count(workers);
  const std::optional<std::string> env = impl::env_affinity_spec();
  if (!env) return plan_placement(k_default_spec, workers);
  try {
    placement plan = plan_placement(*env, workers);
    plan.notes.insert(plan.notes.begin(), std::string("spec from ") + k_affinity_env);
    return plan;
  } catch (const affinity_error& e) {
    throw affinity_error(std::string(k_affinity_env) + ": " + e.what());
  }
}

}  // namespace mtp
