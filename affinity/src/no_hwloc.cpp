// SPDX-License-Identifier: MIT
// The backend of a build without hwloc (MTP_WITH_HWLOC=OFF): no topology, no pinning. Specs
// still parse, "none" and CPU lists still plan; every topology factory throws topology_error
// and bind_current_thread reports that pinning is unavailable.
#include "internal.hpp"

#include <mtp/affinity/placement.hpp>
#include <mtp/affinity/spec.hpp>
#include <mtp/affinity/topology.hpp>

#include <algorithm>
#include <charconv>
#include <string>
#include <utility>

namespace mtp {

namespace {
constexpr std::string_view k_no_hwloc =
    "this build of mtp has no hwloc (configured with MTP_WITH_HWLOC=OFF)";

[[noreturn]] void throw_unavailable() {
  throw topology_error("topology discovery unavailable: " + std::string(k_no_hwloc));
}
}  // namespace

// No hwloc object is ever created in this build, so there is nothing to free.
void topology_deleter::operator()(hwloc_topology*) const noexcept {}
void bitmap_deleter::operator()(hwloc_bitmap_s*) const noexcept {}

namespace impl {

std::vector<unsigned> expand_cpu_list(std::string_view validated_list) {
  std::vector<unsigned> cpus;
  const auto number = [](std::string_view digits) {
    unsigned value = 0;
    std::from_chars(digits.data(), digits.data() + digits.size(), value);
    return value;
  };
  while (!validated_list.empty()) {
    const std::size_t comma = validated_list.find(',');
    const std::string_view item = validated_list.substr(0, comma);
    const std::size_t dash = item.find('-');
    const unsigned lo = number(item.substr(0, dash));
    const unsigned hi = dash == std::string_view::npos ? lo : number(item.substr(dash + 1));
    for (unsigned cpu = lo; cpu <= hi; ++cpu) cpus.push_back(cpu);
    validated_list.remove_prefix(comma == std::string_view::npos ? validated_list.size() : comma + 1);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::string_view pinning_unavailable_reason() noexcept { return k_no_hwloc; }

}  // namespace impl

topology::topology(std::unique_ptr<hwloc_topology, topology_deleter> topo,
                   std::unique_ptr<hwloc_bitmap_s, bitmap_deleter> allowed, std::string source,
                   bool this_system)
    : topo_(std::move(topo)), allowed_(std::move(allowed)), source_(std::move(source)),
      this_system_(this_system) {}

topology::topology(topology&&) noexcept = default;
topology& topology::operator=(topology&&) noexcept = default;
topology::~topology() = default;

bool topology::available() noexcept { return false; }
topology topology::load() { throw_unavailable(); }
topology topology::from_synthetic(std::string_view description) {
  impl::check_synthetic_size(description);  // the same errors as with hwloc, first
  throw_unavailable();
}
topology topology::from_xml(const std::filesystem::path&) { throw_unavailable(); }
void topology::restrict_to(std::string_view) { throw_unavailable(); }
void topology::refresh() {}

bind_result bind_current_thread(const worker_placement& where, bool) noexcept {
  bind_result result;
  if (where.cpus.empty()) return result;
  try {
    result.error = "pinning unavailable: " + std::string(k_no_hwloc);
  } catch (...) {  // std::bad_alloc: leave the error text empty rather than throw
  }
  return result;
}

}  // namespace mtp
