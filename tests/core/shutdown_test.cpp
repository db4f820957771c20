// SPDX-License-Identifier: MIT
// Shutdown and destruction: in-flight requests from several threads are answered or get
// pool_stopped, nobody hangs, every item dies exactly once on its own thread.
#include "pool_test_util.hpp"
#include "requests.hpp"

#include <atomic>
#include <memory>
#include <random>
#include <span>
#include <thread>
#include <vector>

namespace {

mtp_test::lifetime_registry g_life;
std::atomic<int> g_posts_run{0};

using mtp_test::hold;

struct bump {
  mtp::id_t id;
  std::uint64_t token;
  using response_type = std::uint64_t;
};
struct counted_post {
  mtp::id_t id;
  using response_type = void;
};

class tracked {
 public:
  explicit tracked(mtp::id_t id) : id_(id) { g_life.born(id); }
  tracked(const tracked&) = delete;
  tracked& operator=(const tracked&) = delete;
  ~tracked() { g_life.died(id_); }
  std::uint64_t handle(const bump& m) { return m.token + (++count_, 0); }
  void handle(const counted_post&) { g_posts_run.fetch_add(1, std::memory_order_relaxed); }
  void handle(const hold& h) const { mtp_test::hold_until_released(h); }
  void handle(const mtp_test::run_fn& r) { r.fn(); }

 private:
  mtp::id_t id_;
  std::uint64_t count_ = 0;
};

using pool_t = mtp::thread_pool<tracked>;

class Shutdown : public ::testing::Test {
 protected:
  void SetUp() override {
    g_life.reset();
    g_posts_run = 0;
  }
};

/// A caller that keeps sending until the pool refuses; every answer must be the right value
/// or pool_stopped. Returns the number of answered requests.
struct outcome {
  std::uint64_t answered = 0;
  std::uint64_t stopped = 0;
  std::uint64_t wrong = 0;
};

outcome hammer(pool_t& pool, unsigned seed, mtp_test::gate& warmed_up, std::atomic<int>& warm_count) {
  outcome o;
  std::mt19937 rng(seed);
  bool counted = false;
  for (std::uint64_t token = 1;; ++token) {
    if (!counted && o.answered >= 50) {
      counted = true;
      if (warm_count.fetch_add(1) + 1 == 4) warmed_up.open();
    }
    const mtp::id_t id = rng() % 64;
    const unsigned op = rng() % 5;
    bool stop_seen = false;
    auto check = [&](const mtp::result<std::uint64_t>& r, std::uint64_t expect) {
      if (r.has_value()) {
        ++o.answered;
        if (r.value() != expect) ++o.wrong;
      } else if (r.error().code == mtp::errc::pool_stopped) {
        ++o.stopped;
        stop_seen = true;
      } else {
        ++o.wrong;
      }
    };
    if (op == 0) {
      try {
        const std::uint64_t v = pool.send(bump{id, token});
        ++o.answered;
        if (v != token) ++o.wrong;
      } catch (const mtp::pool_error& e) {
        if (e.code() == mtp::errc::pool_stopped) {
          ++o.stopped;
          stop_seen = true;
        } else {
          ++o.wrong;
        }
      }
    } else if (op == 1) {
      std::vector<bump> reqs;
      for (int i = 0; i < 16; ++i) reqs.push_back({(id + i) % 64, token * 100 + i});
      const auto rs = pool.send_batch(reqs);
      for (int i = 0; i < 16; ++i) check(rs[i], token * 100 + i);
    } else if (op == 2) {
      std::vector<bump> reqs;
      for (int i = 0; i < 8; ++i) reqs.push_back({(id + 3 * i) % 64, token * 100 + i});
      auto handle = pool.submit_batch(reqs);
      const auto rs = handle.wait();
      for (int i = 0; i < 8; ++i) check(rs[i], token * 100 + i);
    } else if (op == 3) {
      const auto r = pool.post(counted_post{id});
      if (r.has_error()) {
        if (r.error().code == mtp::errc::pool_stopped) {
          stop_seen = true;
        } else {
          ++o.wrong;
        }
      }
    } else {
      // Items come and go (ids 64.. are this caller's own).
      const mtp::id_t own = 64 + seed * 1000 + token % 7;
      try {
        if (!pool.remove(own)) pool.create(own);
      } catch (const mtp::pool_error& e) {
        if (e.code() == mtp::errc::pool_stopped) {
          stop_seen = true;
        } else {
          ++o.wrong;
        }
      }
    }
    if (stop_seen) return o;
  }
}

void shutdown_under_load(bool destroy) {
  auto pool = std::make_unique<pool_t>(mtp_test::options(2));
  for (mtp::id_t id = 0; id < 64; ++id) pool->create(id);
  mtp_test::gate warmed_up;
  std::atomic<int> warm_count{0};
  std::vector<std::future<outcome>> callers;
  for (unsigned c = 0; c < 4; ++c) {
    callers.push_back(std::async(std::launch::async, [&, c] { return hammer(*pool, c, warmed_up, warm_count); }));
  }
  // No early return here: the callers end only once the pool stops.
  EXPECT_TRUE(warmed_up.wait_for(std::chrono::seconds(60))) << "callers made no progress";
  MTP_BOUNDED([&] { pool->shutdown(); });
  // Every caller ends: it sees pool_stopped on its next call at the latest.
  for (auto& f : callers) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready) << "a caller hangs after shutdown";
    const outcome o = f.get();
    EXPECT_EQ(o.wrong, 0u);
    EXPECT_GE(o.answered, 50u);
  }
  EXPECT_EQ(g_life.alive(), 0u) << "shutdown returned with items alive";
  if (destroy) MTP_BOUNDED([&] { pool.reset(); });
  g_life.expect_all_died_once_on_own_thread();
}

TEST_F(Shutdown, InFlightRequestsFromSeveralThreadsAreAnsweredOrStopped) { shutdown_under_load(false); }

TEST_F(Shutdown, DestructionAfterShutdownUnderLoadIsClean) { shutdown_under_load(true); }

TEST_F(Shutdown, DestructionAnswersEverythingQueued) {
  auto pool = std::make_unique<pool_t>(mtp_test::options(2));
  pool_t* const raw = pool.get();
  for (mtp::id_t id = 0; id < 8; ++id) pool->create(id);
  // Worker 0 is held inside a message until the pool's destruction has begun: a message may
  // post to its own pool while it is destroyed, and gets pool_stopped once the gate is shut.
  mtp_test::gate started;
  std::atomic<bool> saw_destruction{false};
  ASSERT_TRUE(pool->post(mtp_test::run_fn{0, [&] {
                          started.open();
                          saw_destruction = mtp_test::poll_until([&] {
                            const mtp::result<void> r = raw->post(bump{1, 0});
                            return r.has_error() && r.error().code == mtp::errc::pool_stopped;
                          });
                        }}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(pool->post(counted_post{static_cast<mtp::id_t>(i % 8)}).has_value());
  auto handle = pool->submit_batch(std::vector<bump>{{0, 1}, {1, 2}, {2, 3}});

  // Another thread waits on the handle while the pool is destroyed.
  auto waiter = std::async(std::launch::async, [&handle] {
    std::vector<mtp::result<std::uint64_t>> out;
    for (const auto& r : handle.wait()) out.push_back(r);
    return out;
  });
  auto destroyer = std::async(std::launch::async, [&pool] { pool.reset(); });
  ASSERT_EQ(destroyer.wait_for(mtp_test::k_bound), std::future_status::ready) << "destruction hangs";
  destroyer.get();
  EXPECT_TRUE(saw_destruction.load()) << "the held worker never saw the destruction begin";
  ASSERT_EQ(waiter.wait_for(mtp_test::k_bound), std::future_status::ready) << "batch waiter hangs";
  const auto results = waiter.get();
  ASSERT_EQ(results.size(), 3u);
  for (std::uint64_t i = 0; i < 3; ++i) EXPECT_EQ(results[i].value(), i + 1) << "queued request not answered";
  EXPECT_EQ(g_posts_run.load(), 500) << "posts queued before destruction were dropped";
  EXPECT_EQ(g_life.alive(), 0u);
  g_life.expect_all_died_once_on_own_thread();
}

TEST_F(Shutdown, CallsAfterShutdownArePoolStopped) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  pool.create(2);
  pool.shutdown();
  EXPECT_EQ(g_life.alive(), 0u);
  MTP_EXPECT_POOL_ERROR(mtp::errc::pool_stopped, pool.send(bump{1, 1}));
  MTP_EXPECT_POOL_ERROR(mtp::errc::pool_stopped, pool.create(3));
  MTP_EXPECT_POOL_ERROR(mtp::errc::pool_stopped, pool.remove(1));
  const std::vector<bump> reqs{{1, 1}, {2, 2}};
  const auto rs = MTP_BOUNDED([&] { return pool.send_batch(reqs); });
  for (const auto& r : rs) {
    ASSERT_TRUE(r.has_error());
    EXPECT_EQ(r.error().code, mtp::errc::pool_stopped);
  }
  auto handle = pool.submit_batch(reqs);
  EXPECT_TRUE(handle.ready());
  for (const auto& r : handle.wait()) EXPECT_EQ(r.error().code, mtp::errc::pool_stopped);
  const std::vector<mtp::id_t> ids{5, 6};
  for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(ids))) {
    EXPECT_EQ(r.error().code, mtp::errc::pool_stopped);
  }
  const auto posted = pool.post(counted_post{1});
  ASSERT_TRUE(posted.has_error());
  EXPECT_EQ(posted.error().code, mtp::errc::pool_stopped);
  EXPECT_EQ(pool.stats().total_items(), 0u);
  // A second shutdown, and the destructor's, are fine.
  MTP_BOUNDED([&] { pool.shutdown(); });
  g_life.expect_all_died_once_on_own_thread();
}

TEST_F(Shutdown, ConcurrentShutdownsAllReturnAfterTheStop) {
  pool_t pool(mtp_test::options(2));
  for (mtp::id_t id = 0; id < 10; ++id) pool.create(id);
  std::vector<std::future<std::size_t>> stoppers;
  for (int i = 0; i < 3; ++i) {
    stoppers.push_back(std::async(std::launch::async, [&pool] {
      pool.shutdown();
      return g_life.alive();  // every shutdown returns only once the items are gone
    }));
  }
  for (auto& s : stoppers) {
    ASSERT_EQ(s.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    EXPECT_EQ(s.get(), 0u);
  }
  g_life.expect_all_died_once_on_own_thread();
}

TEST_F(Shutdown, ShutdownFromAWorkerIsWouldDeadlock) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  std::optional<mtp::errc> code;
  pool.send(mtp_test::run_fn{1, [&] {
                               try {
                                 pool.shutdown();
                               } catch (const mtp::pool_error& e) {
                                 code = e.code();
                               }
                             }});
  ASSERT_TRUE(code.has_value()) << "shutdown() from a worker did not throw";
  EXPECT_EQ(*code, mtp::errc::would_deadlock);
  EXPECT_EQ(pool.send(bump{1, 7}), 7u) << "the pool stopped anyway";
}

TEST_F(Shutdown, ItemsCreatedByBatchAreDestroyedOnTheirThread) {
  {
    pool_t pool(mtp_test::options(2));
    std::vector<mtp::id_t> ids(300);
    for (mtp::id_t i = 0; i < 300; ++i) ids[i] = i;
    for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(ids))) ASSERT_TRUE(r.has_value());
    EXPECT_EQ(g_life.alive(), 300u);
  }
  EXPECT_EQ(g_life.alive(), 0u);
  g_life.expect_all_died_once_on_own_thread();
  EXPECT_EQ(g_life.all().size(), 300u);
}

}  // namespace
