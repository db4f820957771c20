// SPDX-License-Identifier: MIT
// The pool and its placement together: workers really run where the placement says (checked
// from inside each worker), and a machine that refuses pinning leaves a running, unpinned
// pool that said so once.
#include "test_util.hpp"

#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct where_am_i {
  mtp::id_t id;
  using response_type = std::vector<unsigned>;  // the worker thread's CPU mask
};

struct probe {
  explicit probe(mtp::id_t) {}
  std::vector<unsigned> handle(const where_am_i&) const { return mtp::allowed_cpus(); }
};

TEST(PoolAffinity, EachWorkerRunsOnTheCpusOfItsPlacement) {
  mtp::thread_pool<probe> pool({.placement = mtp::plan_placement("cores")});
  for (std::size_t k = 0; k < pool.worker_count(); ++k) {
    pool.create(k);  // id k routes to worker k (id % workers)
    ASSERT_EQ(pool.worker_of(k), k);
    const std::vector<unsigned> seen = pool.send(where_am_i{k});
    const mtp::pool_stats stats = pool.stats();  // after a message: the worker has pinned itself
    const auto& planned = stats.workers[k].placement.cpus;
    if (planned.empty()) GTEST_SKIP() << "no topology here: the default plan is unpinned";
    if (!stats.workers[k].pinned) GTEST_SKIP() << "pinning not permitted here";
    EXPECT_EQ(seen, planned) << "worker " << k;
  }
}

TEST(PoolAffinity, ReservedCoresAreLeftToTheCaller) {
  const mtp::placement plan = mtp::plan_placement("cores:reserve=1");
  if (plan.caller_cpus.empty()) GTEST_SKIP() << "fewer than 2 cores here, or no topology: nothing reserved";
  const std::vector<unsigned>& reserved = plan.caller_cpus;
  const auto is_reserved = [&](unsigned cpu) { return std::binary_search(reserved.begin(), reserved.end(), cpu); };
  mtp::thread_pool<probe> pool({.placement = plan});
  for (std::size_t k = 0; k < pool.worker_count(); ++k) {
    pool.create(k);
    const std::vector<unsigned> seen = pool.send(where_am_i{k});
    if (!pool.stats().workers[k].pinned) GTEST_SKIP() << "pinning not permitted here";
    for (const unsigned cpu : seen) EXPECT_FALSE(is_reserved(cpu)) << "worker " << k << " may run on CPU " << cpu;
  }
  // The caller pins itself as documented, in a thread of its own so the test's mask stays.
  std::vector<unsigned> caller_mask;
  mtp::bind_result pinned;
  std::thread caller([&] {
    pinned = mtp::bind_current_thread({.cpus = plan.caller_cpus});
    caller_mask = mtp::allowed_cpus();
  });
  caller.join();
  ASSERT_TRUE(pinned.pinned) << pinned.error;
  EXPECT_EQ(caller_mask, reserved);
}

TEST(PoolAffinity, RefusedPinningIsReportedOnceAndThePoolServes) {
  // CPU 4000 exists nowhere: binding fails on every worker, as in a container that forbids it.
  mtp::placement impossible;
  impossible.spec = "test: a CPU that does not exist";
  impossible.workers = {mtp::worker_placement{{4000}, -1, -1}, mtp::worker_placement{{4000}, -1, -1}};
  std::mutex mu;
  std::vector<mtp::diagnostic> seen;
  {
    mtp::thread_pool<probe> pool({.placement = impossible, .on_diagnostic = [&](const mtp::diagnostic& d) {
                                    std::lock_guard lock(mu);
                                    seen.push_back(d);
                                  }});
    pool.create(0);
    pool.create(1);
    EXPECT_FALSE(pool.send(where_am_i{0}).empty());  // it runs, unpinned
    EXPECT_FALSE(pool.send(where_am_i{1}).empty());
    for (const auto& w : pool.stats().workers) EXPECT_FALSE(w.pinned);
  }
  std::lock_guard lock(mu);
  std::size_t pinning_reports = 0;
  for (const auto& d : seen) {
    if (d.what == mtp::diagnostic::kind::pinning_failed) {
      ++pinning_reports;
      EXPECT_NE(d.text.find("pinning failed"), std::string::npos) << d.text;
    }
  }
  EXPECT_EQ(pinning_reports, 1u);
}

}  // namespace
