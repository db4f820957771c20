// SPDX-License-Identifier: MIT
// libFuzzer target for the affinity spec parser and the planner behind it. Built and run by
// tools/fuzz-affinity-spec.sh. Any input must either parse or throw affinity_error; a parsed
// spec planned on a restricted synthetic machine must only select allowed CPUs, and never put
// a worker on a CPU reserved for callers.
#include <mtp/affinity/placement.hpp>
#include <mtp/affinity/spec.hpp>
#include <mtp/affinity/topology.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

const mtp::topology& machine() {
  static const mtp::topology topo = [] {
    mtp::topology t = mtp::topology::from_synthetic("pack:2 numa:2 core:2 pu:2");
    t.restrict_to("0-5,9,12-15");
    return t;
  }();
  return topo;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  mtp::affinity_spec spec;
  try {
    spec = mtp::parse_affinity_spec(text);
  } catch (const mtp::affinity_error& e) {
    check(std::string_view(e.what()).starts_with("affinity spec '"));
    return 0;
  }
  check(std::is_sorted(spec.cpus.begin(), spec.cpus.end()));
  check(spec.policy != mtp::placement_policy::cpu_list || !spec.cpus.empty());
  for (const unsigned cpu : spec.cpus) check(cpu <= mtp::k_max_cpu_number);
  // Re-parsing the canonical form of a CPU list gives the same CPUs.
  if (spec.policy == mtp::placement_policy::cpu_list) {
    check(mtp::parse_affinity_spec(mtp::format_cpu_list(spec.cpus)).cpus == spec.cpus);
  }

  const mtp::topology& topo = machine();
  const auto& allowed = topo.allowed_cpus();
  const std::size_t workers = size % 23;
  try {
    const mtp::placement plan = mtp::plan_placement(topo, spec, workers);
    check(workers == 0 || plan.workers.size() == workers);
    const auto& callers = plan.caller_cpus;
    check(std::is_sorted(callers.begin(), callers.end()));
    check(spec.reserve > 0 || callers.empty());
    for (const unsigned cpu : callers) check(std::binary_search(allowed.begin(), allowed.end(), cpu));
    for (const auto& w : plan.workers) {
      for (const unsigned cpu : w.cpus) {
        check(std::binary_search(allowed.begin(), allowed.end(), cpu));
        check(!std::binary_search(callers.begin(), callers.end(), cpu));  // reserved: no worker
      }
    }
  } catch (const mtp::affinity_error&) {
    check(spec.policy == mtp::placement_policy::cpu_list);  // only a list can name a bad CPU
  }
  return 0;
}
