// SPDX-License-Identifier: MIT
// Spec parsing: every accepted form, and every rejected one with its message.
#include "test_util.hpp"

#include <mtp/affinity/spec.hpp>

#include <gtest/gtest.h>

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using mtp::affinity_spec;
using mtp::parse_affinity_spec;
using mtp::placement_policy;
using mtp_test::affinity_error_of;
using mtp_test::expect_contains;

void expect_spec_error(const std::string& spec, std::initializer_list<std::string_view> parts) {
  SCOPED_TRACE("spec: " + spec);
  const auto message = affinity_error_of([&] { (void)parse_affinity_spec(spec); });
  if (message) expect_contains(*message, parts);
}

TEST(AffinitySpec, PolicyKeywords) {
  EXPECT_EQ(parse_affinity_spec("cores").policy, placement_policy::cores);
  EXPECT_EQ(parse_affinity_spec("pus").policy, placement_policy::pus);
  EXPECT_EQ(parse_affinity_spec("numa:compact").policy, placement_policy::numa_compact);
  EXPECT_EQ(parse_affinity_spec("numa:scatter").policy, placement_policy::numa_scatter);
  EXPECT_EQ(parse_affinity_spec("none").policy, placement_policy::none);
  EXPECT_TRUE(parse_affinity_spec("cores").cpus.empty());
}

TEST(AffinitySpec, SurroundingBlanksAreIgnored) {
  const affinity_spec spec = parse_affinity_spec(" \tnuma:scatter\n");
  EXPECT_EQ(spec.policy, placement_policy::numa_scatter);
  EXPECT_EQ(spec.text, "numa:scatter");
  EXPECT_EQ(parse_affinity_spec("  0-1 ").cpus, (std::vector<unsigned>{0, 1}));
}

TEST(AffinitySpec, CpuLists) {
  const affinity_spec spec = parse_affinity_spec("0-3,8,10");
  EXPECT_EQ(spec.policy, placement_policy::cpu_list);
  EXPECT_EQ(spec.cpus, (std::vector<unsigned>{0, 1, 2, 3, 8, 10}));
  EXPECT_EQ(spec.text, "0-3,8,10");
  EXPECT_EQ(parse_affinity_spec("5").cpus, (std::vector<unsigned>{5}));
  EXPECT_EQ(parse_affinity_spec("7-7").cpus, (std::vector<unsigned>{7}));
  EXPECT_EQ(parse_affinity_spec("3,1,2").cpus, (std::vector<unsigned>{1, 2, 3}));      // sorted
  EXPECT_EQ(parse_affinity_spec("0-3,2-5").cpus, (std::vector<unsigned>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(parse_affinity_spec("007").cpus, (std::vector<unsigned>{7}));
  EXPECT_EQ(parse_affinity_spec("010,0012-013").cpus, (std::vector<unsigned>{10, 12, 13}));  // decimal
  EXPECT_EQ(parse_affinity_spec("65535").cpus, (std::vector<unsigned>{mtp::k_max_cpu_number}));
}

TEST(AffinitySpec, ReserveOption) {
  const affinity_spec spec = parse_affinity_spec(" cores:reserve=1 ");
  EXPECT_EQ(spec.policy, placement_policy::cores);
  EXPECT_EQ(spec.reserve, 1u);
  EXPECT_EQ(spec.text, "cores:reserve=1");
  EXPECT_EQ(parse_affinity_spec("cores").reserve, 0u);
  EXPECT_EQ(parse_affinity_spec("pus:reserve=2").policy, placement_policy::pus);
  EXPECT_EQ(parse_affinity_spec("pus:reserve=2").reserve, 2u);
  EXPECT_EQ(parse_affinity_spec("numa:compact:reserve=3").policy, placement_policy::numa_compact);
  EXPECT_EQ(parse_affinity_spec("numa:scatter:reserve=04").reserve, 4u);  // decimal
  EXPECT_EQ(parse_affinity_spec("cores:reserve=0").reserve, 0u);
  EXPECT_EQ(parse_affinity_spec("cores:reserve=65535").reserve, 65535u);
}

TEST(AffinitySpec, ReserveErrors) {
  expect_spec_error("cores:reserve", {"affinity spec 'cores:reserve': unknown option 'reserve'",
                                      "the only option is reserve=N"});
  expect_spec_error("cores:", {"unknown option ''"});
  expect_spec_error("pus:spare=1", {"unknown option 'spare=1'"});
  expect_spec_error("cores:reserve=", {"malformed reserve count ''", "expected reserve=N"});
  expect_spec_error("cores:reserve=x", {"malformed reserve count 'x'"});
  expect_spec_error("cores:reserve=-1", {"malformed reserve count '-1'"});
  expect_spec_error("cores:reserve=1:reserve=2", {"malformed reserve count '1:reserve=2'"});
  expect_spec_error("cores:reserve= 1", {"malformed reserve count ' 1'"});
  expect_spec_error("cores:reserve=65536", {"reserve count '65536' is too large (the largest is 65535)"});
  expect_spec_error("cores:reserve=99999999999999999999", {"is too large"});
  expect_spec_error("none:reserve=1", {"'none:reserve=1': reserve=N applies to cores, pus, numa:compact"});
  expect_spec_error("0-3:reserve=1", {"'0-3:reserve=1': reserve=N applies to cores"});
  expect_spec_error("numa:reserve=1", {"unknown NUMA policy"});
  expect_spec_error("coresreserve=1", {"unknown policy"});
}

TEST(AffinitySpec, EmptySpec) {
  expect_spec_error("", {"affinity spec '': empty spec", "expected cores, pus, numa:compact"});
  expect_spec_error(" \t ", {"empty spec"});
}

TEST(AffinitySpec, UnknownPolicy) {
  expect_spec_error("corez", {"affinity spec 'corez': unknown policy",
                              "expected cores, pus, numa:compact, numa:scatter, none, or a CPU list"});
  expect_spec_error("Cores", {"'Cores': unknown policy"});  // keywords are case-sensitive
  expect_spec_error("all", {"'all': unknown policy"});
  expect_spec_error("cores pus", {"'cores pus': unknown policy"});
}

TEST(AffinitySpec, UnknownNumaPolicy) {
  expect_spec_error("numa:spread", {"affinity spec 'numa:spread': unknown NUMA policy",
                                    "expected numa:compact or numa:scatter"});
  expect_spec_error("numa", {"'numa': unknown NUMA policy"});
  expect_spec_error("numa:", {"'numa:': unknown NUMA policy"});
}

TEST(AffinitySpec, MalformedLists) {
  expect_spec_error("0-3,,8", {"affinity spec '0-3,,8': malformed CPU list: empty item"});
  expect_spec_error("0-3,", {"'0-3,': malformed CPU list: empty item"});
  expect_spec_error(",0", {"',0': malformed CPU list: it must start with a CPU number"});
  expect_spec_error("-1", {"'-1': malformed CPU list: it must start with a CPU number"});
  expect_spec_error("0-", {"'0-': malformed CPU list item '0-'", "expected a CPU number N or a range N-M"});
  expect_spec_error("1-2-3", {"malformed CPU list item '1-2-3'"});
  expect_spec_error("0 - 3", {"malformed CPU list item '0 - 3'"});
  expect_spec_error("0, 1", {"malformed CPU list item ' 1'"});
  expect_spec_error("0x3", {"malformed CPU list item '0x3'"});
  expect_spec_error("2,a", {"malformed CPU list item 'a'"});
  expect_spec_error("1;2", {"malformed CPU list item '1;2'"});
}

TEST(AffinitySpec, ReversedRange) {
  expect_spec_error("3-1", {"affinity spec '3-1': malformed range '3-1': start is greater than end"});
  expect_spec_error("0,9-8", {"malformed range '9-8'"});
}

TEST(AffinitySpec, NumberTooLarge) {
  expect_spec_error("65536", {"affinity spec '65536': CPU number in '65536' is too large",
                              "the largest is 65535"});
  expect_spec_error("0-99999999999999999999", {"CPU number in '0-99999999999999999999' is too large"});
  expect_spec_error("0-4294967295", {"CPU number in '0-4294967295' is too large", "the largest is 65535"});
  expect_spec_error("4294967296", {"CPU number in '4294967296' is too large"});
  expect_spec_error("18446744073709551616-1", {"is too large"});
}

TEST(AffinityLimits, WorkerCountsOverTheLimitAreErrors) {
  EXPECT_EQ(mtp::k_max_workers, 4096u);
  const mtp_test::env_guard env(mtp::k_affinity_env, std::nullopt);
  for (const std::size_t n : {SIZE_MAX, std::size_t{100000000000}, mtp::k_max_workers + 1}) {
    SCOPED_TRACE("workers: " + std::to_string(n));
    const std::string count = "too many workers: " + std::to_string(n);
    for (const char* spec : {"cores", "pus", "numa:scatter", "none", "0"}) {
      const auto message = affinity_error_of([&] { (void)mtp::plan_placement(spec, n); });
      if (message) expect_contains(*message, {count, "at most 4096 workers", "k_max_workers"});
    }
    const auto message = affinity_error_of([&] { (void)mtp::default_placement(n); });
    if (message) expect_contains(*message, {count, "at most 4096 workers"});
  }
  // The limit itself is allowed.
  EXPECT_EQ(mtp::plan_placement("none", mtp::k_max_workers).workers.size(), mtp::k_max_workers);
}

TEST(AffinityLimits, WorkerLimitAlsoAppliesUnderMtpAffinity) {
  const mtp_test::env_guard env(mtp::k_affinity_env, "none");
  const auto message = affinity_error_of([] { (void)mtp::default_placement(SIZE_MAX); });
  if (message) expect_contains(*message, {"too many workers: 18446744073709551615"});
}

TEST(AffinitySpec, MessagesEscapeAndShortenTheText) {
  expect_spec_error(std::string("co\x01res"), {"'co\\x01res': unknown policy"});
  expect_spec_error(std::string(200, 'x'), {"'" + std::string(80, 'x') + "...'"});
}

TEST(AffinitySpec, FormatCpuList) {
  EXPECT_EQ(mtp::format_cpu_list({}), "");
  EXPECT_EQ(mtp::format_cpu_list({4}), "4");
  EXPECT_EQ(mtp::format_cpu_list({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(mtp::format_cpu_list({3, 1, 2, 2}), "1-3");
  // Round trip through the parser.
  EXPECT_EQ(parse_affinity_spec(mtp::format_cpu_list({9, 0, 5, 6, 7})).cpus,
            (std::vector<unsigned>{0, 5, 6, 7, 9}));
}

TEST(AffinitySpec, PolicyNames) {
  EXPECT_EQ(mtp::to_string(placement_policy::numa_compact), "numa:compact");
  EXPECT_EQ(mtp::to_string(placement_policy::cores), "cores");
}

TEST(AffinityAllowedCpus, IsTheThreadsSchedulerMask) {
  const std::vector<unsigned> cpus = mtp::allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  EXPECT_TRUE(std::is_sorted(cpus.begin(), cpus.end()));
  EXPECT_EQ(std::adjacent_find(cpus.begin(), cpus.end()), cpus.end());  // no duplicates
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  EXPECT_EQ(cpus.size(), static_cast<std::size_t>(CPU_COUNT(&set)));
  for (const unsigned cpu : cpus) EXPECT_TRUE(CPU_ISSET(cpu, &set)) << "CPU " << cpu;
}

TEST(AffinitySpec, DefaultSpecComesFromTheEnvironment) {
  {
    const mtp_test::env_guard env(mtp::k_affinity_env, std::nullopt);
    EXPECT_EQ(mtp::default_affinity_spec(), "cores");
  }
  {
    const mtp_test::env_guard env(mtp::k_affinity_env, "  numa:scatter ");
    EXPECT_EQ(mtp::default_affinity_spec(), "numa:scatter");
  }
  {
    const mtp_test::env_guard env(mtp::k_affinity_env, "   ");
    EXPECT_EQ(mtp::default_affinity_spec(), "cores");
  }
}

}  // namespace
