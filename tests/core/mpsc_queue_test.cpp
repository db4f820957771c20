// SPDX-License-Identifier: MIT
// The queue into a worker, on its own: order per producer and across producers, the
// exchange-to-link window, recycling, and pushes from threads that are exiting.
#include <mtp/core/impl/mpsc_queue.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "pool_test_util.hpp"

namespace {

using mtp::impl::envelope;
using mtp::impl::mpsc_queue;

struct tag {
  std::uint32_t producer;
  std::uint32_t seq;
};

void never_run(mtp::impl::worker_base&, envelope&) noexcept {}

envelope make(std::uint32_t producer, std::uint32_t seq) { return envelope::make(&never_run, tag{producer, seq}); }

// Pops until `n` envelopes came or `limit` passed; returns them in order.
std::vector<tag> pop_n(mpsc_queue& q, std::size_t n) {
  std::vector<tag> out;
  const auto until = std::chrono::steady_clock::now() + mtp_test::k_bound;
  while (out.size() < n && std::chrono::steady_clock::now() < until) {
    if (envelope* e = q.pop()) out.push_back(e->read<tag>());
    else std::this_thread::yield();
  }
  return out;
}

TEST(MpscQueue, FifoPerProducerWithManyProducers) {
  mpsc_queue q;
  constexpr std::uint32_t producers = 4;
  constexpr std::uint32_t each = MTP_TEST_TSAN ? 5000 : 50000;
  std::vector<std::thread> ts;
  for (std::uint32_t p = 0; p < producers; ++p) {
    ts.emplace_back([&q, p] {
      for (std::uint32_t s = 0; s < each; ++s) q.push(make(p, s));
    });
  }
  const std::vector<tag> got = pop_n(q, std::size_t{producers} * each);
  for (auto& t : ts) t.join();
  ASSERT_EQ(got.size(), std::size_t{producers} * each);
  std::vector<std::uint32_t> next(producers, 0);
  for (const tag& t : got) {
    ASSERT_LT(t.producer, producers);
    ASSERT_EQ(t.seq, next[t.producer]) << "producer " << t.producer << " out of order";
    ++next[t.producer];
  }
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.depth(), 0u);
}

TEST(MpscQueue, CausalOrderAcrossProducers) {
  // Producer A pushes, then tells B; B pushes: A's envelope must come first, every time.
  mpsc_queue q;
  constexpr int rounds = MTP_TEST_TSAN ? 500 : 5000;
  for (int r = 0; r < rounds; ++r) {
    std::atomic<bool> a_done{false};
    std::thread a([&] {
      q.push(make(0, static_cast<std::uint32_t>(r)));
      a_done.store(true, std::memory_order_release);
    });
    std::thread b([&] {
      while (!a_done.load(std::memory_order_acquire)) std::this_thread::yield();
      q.push(make(1, static_cast<std::uint32_t>(r)));
    });
    a.join();
    b.join();
    const std::vector<tag> got = pop_n(q, 2);
    ASSERT_EQ(got.size(), 2u);
    ASSERT_EQ(got[0].producer, 0u) << "round " << r;
    ASSERT_EQ(got[1].producer, 1u) << "round " << r;
  }
}

TEST(MpscQueue, TheExchangeToLinkWindowCutsTheQueue) {
  mpsc_queue q;
  q.push(make(9, 0));
  struct pause {
    mpsc_queue* q;
    mtp_test::gate cut, resume;
  } p{&q, {}, {}};
  std::thread producer([&p] {
    p.q->push_cut_for_test(
        make(1, 0),
        [](void* arg) {
          auto& self = *static_cast<pause*>(arg);
          self.cut.open();
          EXPECT_TRUE(self.resume.wait_for(mtp_test::k_bound));
        },
        &p);
  });
  mtp_test::join_on_exit joiner(producer);
  mtp_test::open_on_exit resume_on_failure(p.resume);
  ASSERT_TRUE(p.cut.wait_for(mtp_test::k_bound));
  std::thread later([&q] { q.push(make(2, 0)); });  // links behind the cut
  later.join();
  // What was linked before the cut comes out; nothing past it does, though depth() counts it.
  const std::vector<tag> before = pop_n(q, 1);
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0].producer, 9u);
  EXPECT_EQ(q.pop(), nullptr);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.depth(), 2u) << "the cut producer's envelope and the one behind it";
  p.resume.open();
  producer.join();
  const std::vector<tag> after = pop_n(q, 2);
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].producer, 1u);
  EXPECT_EQ(after[1].producer, 2u);
}

TEST(MpscQueue, NodesAreRecycledAndABurstIsGivenBack) {
  mpsc_queue q;
  // Warm up: this thread gets a batch of recycled nodes.
  for (int i = 0; i < 1000; ++i) {
    q.push(make(0, 0));
    ASSERT_NE(q.pop(), nullptr);
  }
  const std::int64_t steady = mtp::impl::queue_nodes_alive();
  for (int i = 0; i < 10000; ++i) {
    q.push(make(0, 0));
    ASSERT_NE(q.pop(), nullptr);
  }
  EXPECT_EQ(mtp::impl::queue_nodes_alive(), steady) << "one push and pop at a time allocated";
  for (int i = 0; i < 100000; ++i) q.push(make(0, static_cast<std::uint32_t>(i)));
  EXPECT_GE(mtp::impl::queue_nodes_alive(), 100000);
  for (int i = 0; i < 100000; ++i) ASSERT_EQ(q.pop()->read<tag>().seq, static_cast<std::uint32_t>(i));
  // Kept: the dummy, a batch being gathered, one handed back, 16 spare, this thread's cache.
  EXPECT_LE(mtp::impl::queue_nodes_alive(), steady + 20 * 64) << "a drained burst kept its nodes";
}

TEST(MpscQueue, ExitedProducersLeaveNothingBehind) {
  mpsc_queue q;
  const std::int64_t before = mtp::impl::queue_nodes_alive();
  for (int t = 0; t < 200; ++t) {
    std::thread producer([&q] {
      for (int i = 0; i < 300; ++i) {
        q.push(make(0, 0));
        while (q.depth() > 64) std::this_thread::yield();  // the consumer below keeps up
      }
    });
    const std::vector<tag> got = pop_n(q, 300);
    producer.join();
    ASSERT_EQ(got.size(), 300u);
  }
  EXPECT_LE(mtp::impl::queue_nodes_alive() - before, 20 * 64) << "memory grew with the number of threads";
}

}  // namespace
