// SPDX-License-Identifier: MIT
// Senders at scale: many and short-lived caller threads, per-sender and causal order whatever
// thread sends, and memory for exited threads and drained bursts given back.
#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "pool_test_util.hpp"
#include "requests.hpp"

namespace {

using mtp_test::hold;
using mtp_test::k_scale;

struct inc {
  mtp::id_t id;
  using response_type = void;
};
struct get {
  mtp::id_t id;
  using response_type = std::int64_t;
};
struct numbered {  // per sender: seq must grow by one each time
  mtp::id_t id;
  std::uint32_t sender;
  std::uint32_t seq;
  using response_type = void;
};
struct gaps {
  mtp::id_t id;
  using response_type = std::int64_t;
};
struct poke_sibling {  // the handler posts inc{to} and returns
  mtp::id_t id;
  mtp::id_t to;
  using response_type = void;
};

class counter;
using pool_t = mtp::thread_pool<counter>;
std::atomic<pool_t*> g_pool{nullptr};  // for handlers that post to siblings

class counter {
 public:
  explicit counter(mtp::id_t) {}
  void handle(const inc&) { ++value_; }
  std::int64_t handle(const get&) const { return value_; }
  void handle(const numbered& n) {
    if (n.sender >= next_.size()) next_.resize(n.sender + 1, 0);
    if (next_[n.sender] != n.seq) ++gaps_;
    next_[n.sender] = n.seq + 1;
  }
  std::int64_t handle(const gaps&) const { return gaps_; }
  void handle(const hold& h) { mtp_test::hold_until_released(h); }
  void handle(const poke_sibling& p) {
    EXPECT_TRUE(g_pool.load()->post(inc{p.to}).has_value());
  }

 private:
  std::int64_t value_ = 0;
  std::int64_t gaps_ = 0;
  std::vector<std::uint32_t> next_;
};

// Nodes a pool may keep whatever happened before: per worker its stash and one batch handed
// back, plus a batch cached by each thread still alive (this one and the workers).
std::int64_t retained_bound(std::size_t workers) {
  return static_cast<std::int64_t>(workers) * (1024 + 64) + static_cast<std::int64_t>(workers + 1) * 64;
}

TEST(Senders, ThousandsOfShortLivedThreadsLeaveNothingBehind) {
  pool_t pool(mtp_test::options(2));
  for (mtp::id_t id = 0; id < 64; ++id) pool.create(id);
  const std::int64_t before = mtp::impl::queue_nodes_alive();
  const int threads = 2000 / k_scale;
  const int alive_at_once = 200 / k_scale;
  std::atomic<int> answered{0};
  for (int wave = 0; wave < threads / alive_at_once; ++wave) {
    std::vector<std::thread> ts;
    for (int t = 0; t < alive_at_once; ++t) {
      ts.emplace_back([&pool, &answered, t] {
        const mtp::id_t id = static_cast<mtp::id_t>(t % 64);
        ASSERT_TRUE(pool.post(inc{id}).has_value());
        if (pool.send(get{id}) >= 1) answered.fetch_add(1, std::memory_order_relaxed);
      });
    }
    for (auto& t : ts) t.join();
  }
  EXPECT_EQ(answered.load(), threads);
  std::int64_t total = 0;
  for (mtp::id_t id = 0; id < 64; ++id) total += pool.send(get{id});
  EXPECT_EQ(total, threads) << "a post was lost";
  const std::int64_t after = mtp::impl::queue_nodes_alive();
  EXPECT_LE(after - before, retained_bound(pool.worker_count()))
      << "queue memory grew with the number of threads that ever sent";
}

TEST(Senders, DrainedBurstGivesItsNodesBack) {
  pool_t pool(mtp_test::options(2));
  pool.create(0);
  pool.create(1);
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  const int burst = 200000 / k_scale;
  for (int i = 0; i < burst; ++i) ASSERT_TRUE(pool.post(inc{0}).has_value());
  EXPECT_GE(mtp::impl::queue_nodes_alive(), burst) << "every queued post holds a node";
  release.open();
  EXPECT_EQ(MTP_BOUNDED([&] { return pool.send(get{0}); }), burst);
  EXPECT_LE(mtp::impl::queue_nodes_alive(), retained_bound(pool.worker_count()))
      << "a drained burst kept its queue memory";
}

// A thread_local whose destructor posts runs after the thread's node cache was freed when it
// was built before the thread's first send: that post must allocate its node plainly.
struct post_on_thread_exit {
  pool_t* pool = nullptr;
  ~post_on_thread_exit() {
    if (pool != nullptr) {
      EXPECT_TRUE(pool->post(inc{0}).has_value());
    }
  }
};
thread_local post_on_thread_exit tl_poster;

TEST(Senders, AThreadLocalDestructorMaySendAfterTheThreadsCacheIsGone) {
  pool_t pool(mtp_test::options(1));
  pool.create(0);
  const int threads = 8;
  int sent = 0;
  for (int t = 0; t < threads; ++t) {
    // Round trips, more than a batch of recycled nodes: the thread's cache holds nodes when it
    // exits (a number that differs per thread).
    const int sends = 100 + 7 * t;
    std::thread th([&pool, sends] {
      tl_poster.pool = &pool;  // built first, so destroyed after the node cache
      for (int i = 0; i < sends; ++i) pool.send(inc{0});
    });
    th.join();
    sent += sends + 1;
  }
  EXPECT_EQ(pool.send(get{0}), sent) << "a post from a thread_local destructor was lost";
}

TEST(Senders, PerSenderOrderHoldsForManyConcurrentThreads) {
  pool_t pool(mtp_test::options(2));
  for (mtp::id_t id = 0; id < 8; ++id) pool.create(id);
  const std::uint32_t senders = 16;
  const std::uint32_t per_sender = 1000 / k_scale;
  std::vector<std::thread> ts;
  for (std::uint32_t s = 0; s < senders; ++s) {
    ts.emplace_back([&pool, s] {
      for (std::uint32_t q = 0; q < per_sender; ++q) {
        // Every sender talks to every item, through posts and round trips alike.
        for (mtp::id_t id = 0; id < 8; ++id) {
          if (q % 7 == 0) pool.send(numbered{id, s, q});
          else ASSERT_TRUE(pool.post(numbered{id, s, q}).has_value());
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  for (mtp::id_t id = 0; id < 8; ++id) EXPECT_EQ(pool.send(gaps{id}), 0) << "item " << id;
}

TEST(Senders, CausalOrderAcrossASiblingPost) {
  // A handler on worker 0 posts inc to an item on worker 1 and returns; the caller, having its
  // reply, asks that item: the inc was sent first, so it must have run first.
  pool_t pool(mtp_test::options(2));
  g_pool.store(&pool);
  pool.create(0);
  pool.create(1);
  ASSERT_EQ(pool.worker_of(0), 0u);
  ASSERT_EQ(pool.worker_of(1), 1u);
  const int trials = 4000 / k_scale;
  int stale = 0;
  for (int t = 1; t <= trials; ++t) {
    pool.send(poke_sibling{0, 1});
    if (pool.send(get{1}) != t) ++stale;
  }
  EXPECT_EQ(stale, 0) << "a request overtook a message sent before it";
  g_pool.store(nullptr);
}

TEST(Senders, CausalOrderThroughAThirdThread) {
  // Thread A posts inc and then tells thread B (through an atomic); B then asks the item.
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  const int trials = 1000 / k_scale;
  std::atomic<int> published{0};
  std::atomic<int> stale{0};
  std::thread b([&] {
    for (int t = 1; t <= trials; ++t) {
      while (published.load(std::memory_order_acquire) < t) std::this_thread::yield();
      if (pool.send(get{1}) < t) stale.fetch_add(1, std::memory_order_relaxed);
    }
  });
  for (int t = 1; t <= trials; ++t) {
    const bool posted = pool.post(inc{1}).has_value();
    EXPECT_TRUE(posted) << "post " << t;
    if (!posted) {
      published.store(trials, std::memory_order_release);  // B must not wait for posts that never come
      break;
    }
    published.store(t, std::memory_order_release);
  }
  b.join();
  EXPECT_EQ(stale.load(), 0) << "a request overtook a post that happened before it";
}

}  // namespace
