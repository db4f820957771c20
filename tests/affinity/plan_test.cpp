// SPDX-License-Identifier: MIT
// Plans on big machines, described with hwloc synthetic topologies and a checked-in XML file.
#include "test_util.hpp"

#include <mtp/affinity/spec.hpp>
#include <mtp/affinity/topology.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <sched.h>

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using mtp::placement;
using mtp::plan_placement;
using mtp::topology;
using mtp_test::affinity_error_of;
using mtp_test::expect_contains;

// 2 packages x 2 NUMA nodes x 8 cores x 2 hardware threads: 32 cores, 64 CPUs.
constexpr const char* k_big = "pack:2 numa:2 core:8 pu:2";

std::filesystem::path xml_file() {
  return std::filesystem::path(__FILE__).parent_path() / "two_socket_smt.xml";
}

class AffinityPlan : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!topology::available()) GTEST_SKIP() << "built without hwloc";
  }
};

// Every worker's CPUs are inside the topology's allowed set.
void expect_inside(const placement& plan, const topology& topo) {
  const auto& allowed = topo.allowed_cpus();
  for (const auto& w : plan.workers) {
    for (const unsigned cpu : w.cpus) {
      EXPECT_TRUE(std::binary_search(allowed.begin(), allowed.end(), cpu)) << "CPU " << cpu;
    }
  }
}

std::vector<int> packages_of(const placement& plan) {
  std::vector<int> out;
  for (const auto& w : plan.workers) out.push_back(w.package);
  return out;
}
std::vector<int> nodes_of(const placement& plan) {
  std::vector<int> out;
  for (const auto& w : plan.workers) out.push_back(w.numa_node);
  return out;
}

TEST_F(AffinityPlan, SyntheticTopologyShape) {
  const topology topo = topology::from_synthetic(k_big);
  EXPECT_FALSE(topo.is_this_system());
  EXPECT_EQ(topo.allowed_cpus().size(), 64u);
  EXPECT_EQ(topo.cores().size(), 32u);
  EXPECT_EQ(topo.packages().size(), 2u);
  EXPECT_EQ(topo.numa_nodes().size(), 4u);
  for (const auto& core : topo.cores()) EXPECT_EQ(core.cpus.size(), 2u);
  EXPECT_EQ(topo.cores()[17].package, 1);
  EXPECT_EQ(topo.cores()[17].numa_node, 2);
}

TEST_F(AffinityPlan, CoresPinsOneWorkerPerCoreWithAllItsThreads) {
  const topology topo = topology::from_synthetic(k_big);
  const placement plan = plan_placement(topo, "cores");
  EXPECT_EQ(plan.spec, "cores");
  ASSERT_EQ(plan.workers.size(), 32u);
  std::set<int> cores;
  std::set<unsigned> cpus;
  for (const auto& w : plan.workers) {
    ASSERT_EQ(w.cpus.size(), 2u);  // both hardware threads of the core
    EXPECT_EQ(w.cpus[1], w.cpus[0] + 1);
    EXPECT_EQ(w.core, static_cast<int>(w.cpus[0] / 2));
    EXPECT_EQ(w.numa_node, static_cast<int>(w.cpus[0] / 16));
    EXPECT_EQ(w.package, static_cast<int>(w.cpus[0] / 32));
    cores.insert(w.core);
    cpus.insert(w.cpus.begin(), w.cpus.end());
  }
  EXPECT_EQ(cores.size(), 32u);
  EXPECT_EQ(cpus.size(), 64u);
  expect_inside(plan, topo);
}

TEST_F(AffinityPlan, FewerWorkersThanCoresAreSpreadPackagesThenNodes) {
  const topology topo = topology::from_synthetic(k_big);
  EXPECT_EQ(packages_of(plan_placement(topo, "cores", 2)), (std::vector<int>{0, 1}));
  const placement four = plan_placement(topo, "cores", 4);
  EXPECT_EQ(packages_of(four), (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(nodes_of(four), (std::vector<int>{0, 2, 1, 3}));
  ASSERT_FALSE(four.notes.empty());
  expect_contains(four.notes.front(), {"4 of 32 cores used"});
  // Consecutive workers never share a package while both packages have free cores.
  const placement plan = plan_placement(topo, "cores", 32);
  for (std::size_t i = 0; i + 1 < plan.workers.size(); ++i) {
    EXPECT_NE(plan.workers[i].package, plan.workers[i + 1].package) << "worker " << i;
  }
}

TEST_F(AffinityPlan, SpreadOverL3BeforeReusingOne) {
  // One package, one NUMA node, 4 L3 caches of 2 cores each.
  const topology topo = topology::from_synthetic("pack:1 l3:4 core:2 pu:2");
  const placement plan = plan_placement(topo, "cores", 4);
  std::set<int> l3s;
  for (const auto& w : plan.workers) l3s.insert(topo.cores()[static_cast<std::size_t>(w.core)].l3);
  EXPECT_EQ(l3s.size(), 4u);
}

TEST_F(AffinityPlan, PusUsesEveryCoreBeforeItsSecondThread) {
  const topology topo = topology::from_synthetic(k_big);
  const placement plan = plan_placement(topo, "pus");
  ASSERT_EQ(plan.workers.size(), 64u);
  std::set<int> first_half_cores;
  std::set<unsigned> cpus;
  for (std::size_t i = 0; i < plan.workers.size(); ++i) {
    const auto& w = plan.workers[i];
    ASSERT_EQ(w.cpus.size(), 1u);
    cpus.insert(w.cpus[0]);
    if (i < 32) first_half_cores.insert(w.core);
  }
  EXPECT_EQ(cpus.size(), 64u);
  EXPECT_EQ(first_half_cores.size(), 32u);  // SMT siblings only after every core has a worker
  EXPECT_EQ(packages_of(plan_placement(topo, "pus", 2)), (std::vector<int>{0, 1}));
}

TEST_F(AffinityPlan, NumaCompactFillsOneNodeFirst) {
  const topology topo = topology::from_synthetic(k_big);
  EXPECT_EQ(nodes_of(plan_placement(topo, "numa:compact", 8)), std::vector<int>(8, 0));
  const placement ten = plan_placement(topo, "numa:compact", 10);
  EXPECT_EQ(nodes_of(ten), (std::vector<int>{0, 0, 0, 0, 0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(ten.workers[0].core, 0);
  EXPECT_EQ(ten.workers[1].core, 1);  // adjacent cores, sharing caches
  EXPECT_EQ(plan_placement(topo, "numa:compact").workers.size(), 32u);
}

TEST_F(AffinityPlan, NumaScatterGoesRoundRobinOverNodes) {
  const topology topo = topology::from_synthetic(k_big);
  const placement plan = plan_placement(topo, "numa:scatter", 8);
  EXPECT_EQ(nodes_of(plan), (std::vector<int>{0, 1, 2, 3, 0, 1, 2, 3}));
  EXPECT_EQ(plan.workers[0].core, 0);
  EXPECT_EQ(plan.workers[4].core, 1);
  for (const auto& w : plan.workers) EXPECT_EQ(w.cpus.size(), 2u);  // pinned per core
}

TEST_F(AffinityPlan, ExplicitCpuList) {
  const topology topo = topology::from_synthetic(k_big);
  const placement plan = plan_placement(topo, "0-3,40");
  ASSERT_EQ(plan.workers.size(), 5u);
  const std::vector<std::vector<unsigned>> expected = {{0}, {1}, {2}, {3}, {40}};
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(plan.workers[i].cpus, expected[i]);
  EXPECT_EQ(plan.workers[0].core, 0);
  EXPECT_EQ(plan.workers[1].core, 0);  // SMT sibling of CPU 0
  EXPECT_EQ(plan.workers[4].core, 20);
  EXPECT_EQ(plan.workers[4].numa_node, 2);
  EXPECT_EQ(plan.workers[4].package, 1);
}

TEST_F(AffinityPlan, CpuOutsideTheAllowedSetIsAnError) {
  const topology topo = topology::from_synthetic(k_big);
  const auto message = affinity_error_of([&] { (void)plan_placement(topo, "0,64"); });
  if (message) {
    expect_contains(*message, {"affinity spec '0,64': CPU 64 is not in this process's allowed set (0-63)"});
  }
  const auto many = affinity_error_of([&] { (void)plan_placement(topo, "60-66,70"); });
  if (many) expect_contains(*many, {"CPUs 64-66,70 are not in this process's allowed set (0-63)"});
}

TEST_F(AffinityPlan, MoreWorkersThanCpusShareRoundRobin) {
  const topology topo = topology::from_synthetic(k_big);
  const placement plan = plan_placement(topo, "0-1", 5);
  ASSERT_EQ(plan.workers.size(), 5u);
  const std::vector<unsigned> order = {0, 1, 0, 1, 0};
  for (std::size_t i = 0; i < order.size(); ++i) EXPECT_EQ(plan.workers[i].cpus.front(), order[i]);
  ASSERT_FALSE(plan.notes.empty());
  expect_contains(plan.notes.front(), {"5 workers share 2 CPUs round-robin"});

  const placement cores = plan_placement(topo, "cores", 40);
  ASSERT_EQ(cores.workers.size(), 40u);
  EXPECT_EQ(cores.workers[32].cpus, cores.workers[0].cpus);
  expect_contains(cores.notes.front(), {"40 workers share 32 cores round-robin"});
}

TEST_F(AffinityPlan, NoneIsUnpinned) {
  const topology topo = topology::from_synthetic(k_big);
  const placement plan = plan_placement(topo, "none");
  EXPECT_EQ(plan.workers.size(), 64u);
  for (const auto& w : plan.workers) {
    EXPECT_TRUE(w.cpus.empty());
    EXPECT_EQ(w.core, -1);
    EXPECT_EQ(w.numa_node, -1);
  }
  EXPECT_EQ(plan_placement(topo, "none", 3).workers.size(), 3u);
}

TEST_F(AffinityPlan, RestrictedAllowedSet) {
  topology topo = topology::from_synthetic(k_big);
  topo.restrict_to("0-5,32-33");
  EXPECT_EQ(topo.allowed_cpus(), (std::vector<unsigned>{0, 1, 2, 3, 4, 5, 32, 33}));
  ASSERT_EQ(topo.cores().size(), 4u);
  EXPECT_EQ(topo.packages().size(), 2u);
  EXPECT_EQ(topo.numa_nodes().size(), 2u);

  const placement plan = plan_placement(topo, "cores");
  ASSERT_EQ(plan.workers.size(), 4u);
  EXPECT_EQ(plan.workers[0].core, 0);
  EXPECT_EQ(plan.workers[1].core, 16);  // the only allowed core of package 1
  expect_inside(plan, topo);
  expect_inside(plan_placement(topo, "pus"), topo);
  expect_inside(plan_placement(topo, "numa:scatter", 9), topo);
  EXPECT_EQ(plan_placement(topo, "pus").workers.size(), 8u);

  const auto message = affinity_error_of([&] { (void)plan_placement(topo, "6"); });
  if (message) expect_contains(*message, {"CPU 6 is not in this process's allowed set (0-5,32-33)"});
}

TEST_F(AffinityPlan, PartlyAllowedCoreKeepsOnlyItsAllowedThreads) {
  topology topo = topology::from_synthetic(k_big);
  topo.restrict_to("1,2-3");
  const placement plan = plan_placement(topo, "cores");
  ASSERT_EQ(plan.workers.size(), 2u);
  EXPECT_EQ(plan.workers[0].cpus, (std::vector<unsigned>{1}));
  EXPECT_EQ(plan.workers[1].cpus, (std::vector<unsigned>{2, 3}));
}

TEST_F(AffinityPlan, RestrictErrors) {
  topology topo = topology::from_synthetic(k_big);
  auto message = affinity_error_of([&] { topo.restrict_to("0-3x"); });
  if (message) expect_contains(*message, {"allowed CPU list '0-3x': malformed CPU list item '0-3x'"});
  message = affinity_error_of([&] { topo.restrict_to("100"); });
  if (message) expect_contains(*message, {"CPU 100 is not in synthetic"});
  topo.restrict_to("0-7");
  message = affinity_error_of([&] { topo.restrict_to("8-9"); });
  if (message) expect_contains(*message, {"empty selection: none of these CPUs is allowed (allowed: 0-7)"});
  EXPECT_EQ(topo.allowed_cpus().size(), 8u);  // unchanged by the failed call
}

TEST_F(AffinityPlan, MachineWithoutCoresCountsEachThreadAsACore) {
  const topology topo = topology::from_synthetic("pack:2 pu:4");
  const placement plan = plan_placement(topo, "cores");
  ASSERT_EQ(plan.workers.size(), 8u);
  for (const auto& w : plan.workers) EXPECT_EQ(w.cpus.size(), 1u);
  EXPECT_EQ(packages_of(plan_placement(topo, "cores", 2)), (std::vector<int>{0, 1}));
}

TEST_F(AffinityPlan, PlansNoteTheyAreNotForThisMachine) {
  const placement plan = plan_placement(topology::from_synthetic(k_big), "cores");
  ASSERT_FALSE(plan.notes.empty());
  expect_contains(plan.notes.back(), {"planned on synthetic 'pack:2 numa:2 core:8 pu:2', not on this machine"});
}

TEST_F(AffinityPlan, XmlTopology) {
  // two_socket_smt.xml: lstopo -i "pack:2 numa:1 l3:2 core:3 pu:2" --of xml
  const topology topo = topology::from_xml(xml_file());
  EXPECT_EQ(topo.cores().size(), 12u);
  EXPECT_EQ(topo.allowed_cpus().size(), 24u);
  EXPECT_EQ(topo.numa_nodes().size(), 2u);

  const placement four = plan_placement(topo, "cores", 4);
  EXPECT_EQ(packages_of(four), (std::vector<int>{0, 1, 0, 1}));
  std::set<int> l3s;
  for (const auto& w : four.workers) l3s.insert(topo.cores()[static_cast<std::size_t>(w.core)].l3);
  EXPECT_EQ(l3s.size(), 4u);  // each worker has an L3 of its own

  EXPECT_EQ(nodes_of(plan_placement(topo, "numa:compact", 7)), (std::vector<int>{0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(nodes_of(plan_placement(topo, "numa:scatter", 3)), (std::vector<int>{0, 1, 0}));

  std::set<int> cores;
  for (const auto& w : plan_placement(topo, "pus", 12).workers) cores.insert(w.core);
  EXPECT_EQ(cores.size(), 12u);
}

TEST_F(AffinityPlan, XmlTopologyRestrictedToOnePackage) {
  topology topo = topology::from_xml(xml_file());
  topo.restrict_to("0-11");
  const placement plan = plan_placement(topo, "numa:scatter");
  EXPECT_EQ(plan.workers.size(), 6u);
  for (const auto& w : plan.workers) EXPECT_EQ(w.numa_node, 0);
  expect_inside(plan, topo);
}

// Every worker's CPUs are outside `reserved`.
void expect_no_worker_on(const placement& plan, const std::vector<unsigned>& reserved) {
  for (std::size_t i = 0; i < plan.workers.size(); ++i) {
    for (const unsigned cpu : plan.workers[i].cpus) {
      EXPECT_FALSE(std::binary_search(reserved.begin(), reserved.end(), cpu)) << "worker " << i << " on CPU " << cpu;
    }
  }
}

TEST_F(AffinityPlan, ReserveKeepsTheLastCoresForCallers) {
  // 12 cores (CPUs 2k and 2k+1 on core k), 2 packages.
  const topology topo = topology::from_xml(xml_file());
  const placement plan = plan_placement(topo, "cores:reserve=1");
  EXPECT_EQ(plan.spec, "cores:reserve=1");
  ASSERT_EQ(plan.workers.size(), 11u);
  EXPECT_EQ(plan.caller_cpus, (std::vector<unsigned>{22, 23}));
  expect_no_worker_on(plan, plan.caller_cpus);
  std::set<int> cores;
  for (const auto& w : plan.workers) cores.insert(w.core);
  EXPECT_EQ(cores.size(), 11u);
  EXPECT_EQ(cores.count(11), 0u);
  EXPECT_EQ(packages_of(plan_placement(topo, "cores:reserve=1", 2)), (std::vector<int>{0, 1}));
  bool noted = false;
  for (const auto& note : plan.notes) noted = noted || note.find("1 core (CPUs 22-23) kept free of workers for callers") != std::string::npos;
  EXPECT_TRUE(noted) << "no note about the reserved core";

  // Without the option nothing is reserved.
  EXPECT_TRUE(plan_placement(topo, "cores").caller_cpus.empty());
  EXPECT_TRUE(plan_placement(topo, "cores:reserve=0").caller_cpus.empty());
}

TEST_F(AffinityPlan, ReserveCountsCoresForEveryPolicy) {
  const topology topo = topology::from_xml(xml_file());
  const std::vector<unsigned> last_two = {20, 21, 22, 23};
  const placement pus = plan_placement(topo, "pus:reserve=2");
  EXPECT_EQ(pus.workers.size(), 20u);  // whole cores are kept, both hardware threads
  EXPECT_EQ(pus.caller_cpus, last_two);
  expect_no_worker_on(pus, last_two);

  const placement compact = plan_placement(topo, "numa:compact:reserve=2");
  EXPECT_EQ(compact.workers.size(), 10u);
  EXPECT_EQ(compact.caller_cpus, last_two);
  EXPECT_EQ(nodes_of(compact), (std::vector<int>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1}));
  expect_no_worker_on(compact, last_two);

  const placement scatter = plan_placement(topo, "numa:scatter:reserve=2");
  EXPECT_EQ(scatter.workers.size(), 10u);
  expect_no_worker_on(scatter, last_two);

  // More workers than the cores left: they share those, never the reserved ones.
  const placement many = plan_placement(topo, "cores:reserve=2", 25);
  EXPECT_EQ(many.workers.size(), 25u);
  EXPECT_EQ(many.caller_cpus, last_two);
  expect_no_worker_on(many, last_two);
}

TEST_F(AffinityPlan, ReserveFollowsTheAllowedSet) {
  topology topo = topology::from_xml(xml_file());
  topo.restrict_to("0-7,13");  // cores 0-3 whole, and one thread of core 6
  const placement plan = plan_placement(topo, "cores:reserve=1");
  EXPECT_EQ(plan.caller_cpus, (std::vector<unsigned>{13}));
  ASSERT_EQ(plan.workers.size(), 4u);
  expect_no_worker_on(plan, plan.caller_cpus);
  expect_inside(plan, topo);
}

TEST_F(AffinityPlan, ReserveNeverLeavesNoWorker) {
  topology one_core = topology::from_xml(xml_file());
  one_core.restrict_to("0-1");
  const placement plan = plan_placement(one_core, "cores:reserve=1");
  ASSERT_EQ(plan.workers.size(), 1u);
  EXPECT_EQ(plan.workers[0].cpus, (std::vector<unsigned>{0, 1}));
  EXPECT_TRUE(plan.caller_cpus.empty());
  ASSERT_FALSE(plan.notes.empty());
  expect_contains(plan.notes.front(), {"reserve=1 not applied: only 1 core is allowed"});

  // Asking for all cores, or more: one is left to the workers.
  const topology topo = topology::from_xml(xml_file());
  const placement most = plan_placement(topo, "cores:reserve=40");
  ASSERT_EQ(most.workers.size(), 1u);
  EXPECT_EQ(most.workers[0].cpus, (std::vector<unsigned>{0, 1}));
  EXPECT_EQ(most.caller_cpus.size(), 22u);
  expect_contains(most.notes.front(), {"11 cores (CPUs 2-23) kept free", "reserve=40 cut to 11"});
  EXPECT_EQ(plan_placement(topo, "pus:reserve=12", 3).workers.size(), 3u);
}

TEST_F(AffinityPlan, BadTopologySources) {
  EXPECT_THROW((void)topology::from_synthetic("pack:two"), mtp::topology_error);
  EXPECT_THROW((void)topology::from_xml("/nonexistent/topology.xml"), mtp::topology_error);
}

TEST_F(AffinityPlan, TopologyIsMovable) {
  topology a = topology::from_synthetic("core:4 pu:1");
  topology b = std::move(a);
  EXPECT_EQ(b.cores().size(), 4u);
  a = topology::from_synthetic("core:2 pu:1");
  EXPECT_EQ(a.cores().size(), 2u);
  EXPECT_NE(a.native_handle(), nullptr);
}

// The text is checked before hwloc builds anything, in both builds (without hwloc these
// messages come before "unavailable").
std::string synthetic_error_of(std::string_view description) {
  try {
    (void)topology::from_synthetic(description);
  } catch (const mtp::topology_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected topology_error for '" << description << "'";
  return {};
}

TEST(AffinitySyntheticLimits, OversizedDescriptionsAreRejectedUnbuilt) {
  EXPECT_EQ(mtp::k_max_synthetic_pus, 4096u);
  expect_contains(synthetic_error_of("pack:64 core:64 pu:16"),
                  {"synthetic topology 'pack:64 core:64 pu:16': more than 4096 hardware threads",
                   "k_max_synthetic_pus", "already make 65536"});
  expect_contains(synthetic_error_of("pack:16 core:16 pu:17"), {"more than 4096 hardware threads"});
  expect_contains(synthetic_error_of("core:4096 pu:1"),
                  {"level 'core:4096' has more than 256 children per parent", "k_max_synthetic_arity"});
  expect_contains(synthetic_error_of("pu:18446744073709551617"), {"more than 256 children per parent"});
  expect_contains(synthetic_error_of("pack:16 core:256 group:1 group:1 group:1 group:1 group:1 "
                                     "group:1 group:1 pu:1"),
                  {"more than 32768 objects in all", "k_max_synthetic_objects"});
}

TEST(AffinitySyntheticLimits, EmptyOrUnreadableDescriptions) {
  expect_contains(synthetic_error_of(""), {"synthetic topology '': empty description"});
  expect_contains(synthetic_error_of(" \t"), {"empty description"});
  expect_contains(synthetic_error_of("pack:two"),
                  {"cannot read the arity of level 'pack:two'", "expected TYPE:N"});
  expect_contains(synthetic_error_of("pack:2 core: pu:2"), {"cannot read the arity of level 'core:'"});
}

TEST_F(AffinityPlan, SyntheticDescriptionsAtTheLimitsAndWithAttributesLoad) {
  EXPECT_EQ(topology::from_synthetic("pack:16 core:16 pu:16").allowed_cpus().size(), 4096u);
  EXPECT_EQ(topology::from_synthetic("core:256 pu:1").cores().size(), 256u);
  // Attributes and memory children carry no arity of their own.
  const topology numa = topology::from_synthetic("pack:2 [numa(memory=1073741824)] core:2 pu:2");
  EXPECT_EQ(numa.numa_nodes().size(), 2u);
  EXPECT_EQ(topology::from_synthetic("numa:2(memory=1073741824) core:2 pu:2").allowed_cpus().size(), 8u);
  EXPECT_EQ(topology::from_synthetic("2 2 2").allowed_cpus().size(), 8u);  // levels without types
}

// The machine's topology is loaded once and shared until refresh_topology().
std::shared_ptr<const topology> machine_or_null() {
  try {
    return mtp::machine_topology();
  } catch (const mtp::topology_error&) {
    return nullptr;
  }
}

TEST(AffinityTopologyCache, PlansShareOneLoadUntilRefreshed) {
  const std::shared_ptr<const topology> first = machine_or_null();
  if (!first) GTEST_SKIP() << "this machine's topology cannot be loaded here";
  EXPECT_TRUE(first->is_this_system());
  EXPECT_EQ(machine_or_null(), first);  // the same object: not loaded again
  const placement a = plan_placement("cores", 3);
  const placement b = plan_placement("cores", 3);
  EXPECT_EQ(a, b);
  EXPECT_EQ(plan_placement("pus"), plan_placement("pus"));
  EXPECT_EQ(machine_or_null(), first);

  mtp::refresh_topology();
  const std::shared_ptr<const topology> second = machine_or_null();
  ASSERT_NE(second, nullptr);
  EXPECT_NE(second, first);  // loaded anew
  EXPECT_EQ(second->allowed_cpus(), first->allowed_cpus());
  EXPECT_EQ(plan_placement("cores", 3), a);
  EXPECT_EQ(machine_or_null(), second);
}

TEST(AffinityTopologyCache, ConcurrentFirstUseLoadsOnce) {
  mtp::refresh_topology();
  constexpr std::size_t k_threads = 8;
  std::vector<std::shared_ptr<const topology>> seen(k_threads);
  std::vector<placement> plans(k_threads);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      seen[t] = machine_or_null();
      plans[t] = plan_placement("cores", 2);
    });
  }
  for (auto& thread : threads) thread.join();
  if (!seen[0]) GTEST_SKIP() << "this machine's topology cannot be loaded here";
  for (std::size_t t = 1; t < k_threads; ++t) {
    EXPECT_EQ(seen[t], seen[0]) << "thread " << t << " got a topology of its own";
    EXPECT_EQ(plans[t], plans[0]);
  }
}

// Restores the calling thread's CPU mask and the topology cache at the end of the scope.
class mask_guard {
 public:
  mask_guard() { CPU_ZERO(&saved_); ok_ = sched_getaffinity(0, sizeof saved_, &saved_) == 0; }
  mask_guard(const mask_guard&) = delete;
  mask_guard& operator=(const mask_guard&) = delete;
  ~mask_guard() {
    if (ok_) sched_setaffinity(0, sizeof saved_, &saved_);
    mtp::refresh_topology();
  }
  [[nodiscard]] bool ok() const { return ok_; }

 private:
  cpu_set_t saved_;
  bool ok_ = false;
};

TEST(AffinityTopologyCache, RefreshSeesANarrowedProcess) {
  // This test's process has one thread, so its mask is the process's binding.
  const std::vector<unsigned> cpus = mtp::allowed_cpus();
  if (cpus.size() < 2 || cpus.back() >= CPU_SETSIZE) GTEST_SKIP() << "needs 2 CPUs";
  mtp::refresh_topology();
  const std::shared_ptr<const topology> wide = machine_or_null();
  if (!wide) GTEST_SKIP() << "this machine's topology cannot be loaded here";
  const std::size_t wide_cpus = wide->allowed_cpus().size();
  ASSERT_GE(wide_cpus, 2u);

  const mask_guard guard;
  ASSERT_TRUE(guard.ok());
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(wide->allowed_cpus().front(), &one);
  if (sched_setaffinity(0, sizeof one, &one) != 0) GTEST_SKIP() << "cannot change the CPU mask here";

  // Cached: still the wide machine.
  EXPECT_EQ(machine_or_null()->allowed_cpus().size(), wide_cpus);
  EXPECT_EQ(plan_placement("pus").workers.size(), wide_cpus);
  mtp::refresh_topology();
  EXPECT_EQ(machine_or_null()->allowed_cpus(), (std::vector<unsigned>{wide->allowed_cpus().front()}));
  const placement narrow = plan_placement("pus");
  ASSERT_EQ(narrow.workers.size(), 1u);
  EXPECT_EQ(narrow.workers[0].cpus, (std::vector<unsigned>{wide->allowed_cpus().front()}));
}

TEST(AffinityPlanWithoutHwloc, FactoriesThrowWhenUnavailable) {
  if (topology::available()) GTEST_SKIP() << "built with hwloc";
  EXPECT_THROW((void)topology::load(), mtp::topology_error);
  EXPECT_THROW((void)topology::from_synthetic(k_big), mtp::topology_error);
}

}  // namespace
