// SPDX-License-Identifier: MIT
// Real pinning on the machine running the tests, checked from inside the pinned thread with
// sched_getaffinity. Passes under `taskset -c 0`, and where pinning is not permitted (the
// failure must then be reported, never thrown or crashed on).
#include "test_util.hpp"

#include <mtp/affinity/placement.hpp>
#include <mtp/affinity/spec.hpp>
#include <mtp/affinity/topology.hpp>

#include <gtest/gtest.h>

#include <sched.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace {

using mtp::bind_result;
using mtp::worker_placement;
using mtp_test::expect_contains;

struct observed {
  bind_result result;
  std::vector<unsigned> affinity;  // as seen by the thread after binding
};

// Binds a fresh thread (the test thread keeps its own mask) and reports what it saw.
observed bind_in_thread(const worker_placement& where, bool bind_memory = false) {
  observed seen;
  std::thread([&] {
    seen.result = mtp::bind_current_thread(where, bind_memory);
    seen.affinity = mtp::allowed_cpus();
  }).join();
  return seen;
}

bool subset(const std::vector<unsigned>& part, const std::vector<unsigned>& whole) {
  return std::all_of(part.begin(), part.end(), [&](unsigned cpu) {
    return std::find(whole.begin(), whole.end(), cpu) != whole.end();
  });
}

TEST(AffinityBind, LoadedTopologyStaysInsideTheProcessMask) {
  if (!mtp::topology::available()) GTEST_SKIP() << "built without hwloc";
  const mtp::topology topo = mtp::topology::load();
  EXPECT_TRUE(topo.is_this_system());
  ASSERT_FALSE(topo.allowed_cpus().empty());
  EXPECT_TRUE(subset(topo.allowed_cpus(), mtp::allowed_cpus()))
      << "allowed " << mtp::format_cpu_list(topo.allowed_cpus());
}

TEST(AffinityBind, DefaultPlanNeverLeavesTheProcessMask) {
  const mtp_test::env_guard env(mtp::k_affinity_env, std::nullopt);
  const std::vector<unsigned> mask = mtp::allowed_cpus();
  for (const char* spec : {"cores", "pus", "numa:compact", "numa:scatter"}) {
    const mtp::placement plan = mtp::plan_placement(spec, 0);
    EXPECT_FALSE(plan.workers.empty()) << spec;
    for (const auto& w : plan.workers) EXPECT_TRUE(subset(w.cpus, mask)) << spec;
  }
  const mtp::placement plan = mtp::default_placement();
  EXPECT_EQ(plan.spec, "cores");
  EXPECT_FALSE(plan.workers.empty());
  if (!mtp::topology::available()) {
    ASSERT_FALSE(plan.notes.empty());
    expect_contains(plan.notes.front(), {"pinning unavailable", "MTP_WITH_HWLOC=OFF"});
  }
}

TEST(AffinityBind, PinsToEachAllowedCpuInTurn) {
  const std::vector<unsigned> mask = mtp::allowed_cpus();
  ASSERT_FALSE(mask.empty());
  std::string refused;
  for (const unsigned cpu : mask) {
    const observed seen = bind_in_thread(worker_placement{{cpu}, -1, -1, -1});
    if (!seen.result.pinned) {
      EXPECT_FALSE(seen.result.error.empty()) << "a failed bind must say why";
      refused = seen.result.error;
      continue;
    }
    EXPECT_TRUE(seen.result.error.empty()) << seen.result.error;
    EXPECT_EQ(seen.affinity, std::vector<unsigned>{cpu});
  }
  if (!refused.empty()) GTEST_SKIP() << "pinning not permitted here: " << refused;
}

TEST(AffinityBind, PinsEachWorkerOfTheDefaultPlanToItsCore) {
  const mtp_test::env_guard env(mtp::k_affinity_env, std::nullopt);
  const mtp::placement plan = mtp::default_placement();
  for (const auto& where : plan.workers) {
    const observed seen = bind_in_thread(where, /*bind_memory=*/true);
    if (where.cpus.empty()) {
      EXPECT_FALSE(seen.result.pinned);
      continue;
    }
    if (!seen.result.pinned) {
      EXPECT_FALSE(seen.result.error.empty());
      GTEST_SKIP() << "pinning not permitted here: " << seen.result.error;
    }
    EXPECT_EQ(seen.affinity, where.cpus);
    // Memory binding may be refused (e.g. seccomp); then it is reported, the pin stays.
    if (!seen.result.error.empty()) expect_contains(seen.result.error, {"memory"});
  }
}

TEST(AffinityBind, EmptyCpuListDoesNothing) {
  const std::vector<unsigned> before = mtp::allowed_cpus();
  const observed seen = bind_in_thread(worker_placement{});
  EXPECT_FALSE(seen.result.pinned);
  EXPECT_TRUE(seen.result.error.empty());
  EXPECT_EQ(seen.affinity, before);
}

TEST(AffinityBind, CpuThatDoesNotExistIsReportedNotThrown) {
  const observed seen = bind_in_thread(worker_placement{{60000}, -1, -1, -1});
  EXPECT_FALSE(seen.result.pinned);
  ASSERT_FALSE(seen.result.error.empty());
  if (mtp::topology::available()) {
    expect_contains(seen.result.error, {"cannot pin to CPU", "60000", "does not exist on this machine"});
  } else {
    expect_contains(seen.result.error, {"pinning unavailable"});
  }
  const observed huge = bind_in_thread(worker_placement{{4000000000u}, -1, -1, -1});
  EXPECT_FALSE(huge.result.pinned);
  EXPECT_FALSE(huge.result.error.empty());
}

TEST(AffinityBind, ExplicitListOutsideTheProcessMaskIsRejected) {
  const std::vector<unsigned> mask = mtp::allowed_cpus();
  unsigned outside = 0;
  while (std::find(mask.begin(), mask.end(), outside) != mask.end()) ++outside;
  const std::string spec = std::to_string(outside);
  try {
    (void)mtp::plan_placement(spec);
    ADD_FAILURE() << "CPU " << outside << " is outside the process mask";
  } catch (const mtp::affinity_error& e) {
    expect_contains(e.what(), {"affinity spec '" + spec + "': CPU " + spec +
                               " is not in this process's allowed set (" +
                               mtp::format_cpu_list(mask) + ")"});
  }
}

TEST(AffinityBind, ExplicitListInsideTheMaskPlansAndPins) {
  const std::vector<unsigned> mask = mtp::allowed_cpus();
  ASSERT_FALSE(mask.empty());
  const mtp::placement plan = mtp::plan_placement(std::to_string(mask.front()), 2);
  ASSERT_EQ(plan.workers.size(), 2u);
  EXPECT_EQ(plan.workers[0].cpus, std::vector<unsigned>{mask.front()});
  const observed seen = bind_in_thread(plan.workers[1]);
  if (mtp::topology::available() && seen.result.pinned) {
    EXPECT_EQ(seen.affinity, std::vector<unsigned>{mask.front()});
  } else {
    EXPECT_FALSE(seen.result.error.empty());
  }
}

}  // namespace
