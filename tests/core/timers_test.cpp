// SPDX-License-Identifier: MIT
// Timers that belong to items: post_after, post_at, post_every, cancellation, the lifecycle
// rules (remove, activation, passivation, shutdown), an item's own re-armable timeout, bad
// input and saturation, a million pending timers.
#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pool_test_util.hpp"
#include "requests.hpp"

namespace {

using namespace std::chrono_literals;

struct mark {  // appends `tag` to the item's log
  mtp::id_t id;
  int tag;
  using response_type = void;
};
struct log_of {
  mtp::id_t id;
  using response_type = std::vector<int>;
};

class item {
 public:
  explicit item(mtp::id_t) {}
  void handle(const mark& m) {
    log_.push_back(m.tag);
    if (seen_ != nullptr) seen_->fetch_add(1);
  }
  std::vector<int> handle(const log_of&) const { return log_; }
  static void handle(const mtp_test::hold& h) { mtp_test::hold_until_released(h); }
  static inline std::atomic<int>* seen_ = nullptr;

 private:
  std::vector<int> log_;
};
using pool_t = mtp::thread_pool<item>;

// Waits (bounded) until `n` marks have run, counting through the item's static counter.
struct counter_scope {
  std::atomic<int> seen{0};
  counter_scope() { item::seen_ = &seen; }
  ~counter_scope() { item::seen_ = nullptr; }
  bool wait_for(int n) {
    return mtp_test::poll_until([&] { return seen.load() >= n; });
  }
};

TEST(Timers, FireInDeadlineOrderAndEqualDeadlinesInSubmissionOrder) {
  counter_scope c;
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  const auto base = std::chrono::steady_clock::now() + 30ms;
  auto t3 = pool.post_at(base + 2ms, mark{1, 3});
  auto t1 = pool.post_at(base, mark{1, 1});
  auto t2a = pool.post_at(base + 1ms, mark{1, 20});
  auto t2b = pool.post_at(base + 1ms, mark{1, 21});
  auto t0 = pool.post_after(-5s, mark{1, 0});  // negative: at the next chance
  ASSERT_TRUE(c.wait_for(5));
  EXPECT_EQ(pool.send(log_of{1}), (std::vector<int>{0, 1, 20, 21, 3}));
  EXPECT_GE(std::chrono::steady_clock::now(), base + 2ms);
}

TEST(Timers, CancelBeforeItFiresStopsIt) {
  counter_scope c;
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  mtp::timer far = pool.post_after(1h, mark{1, 1});
  mtp::timer soon = pool.post_after(1ms, mark{1, 2});
  EXPECT_TRUE(far.cancel());
  EXPECT_FALSE(far.cancel()) << "cancelling twice";
  ASSERT_TRUE(c.wait_for(1));
  EXPECT_FALSE(soon.cancel()) << "after it fired";
  EXPECT_EQ(pool.send(log_of{1}), (std::vector<int>{2}));
  EXPECT_EQ(pool.stats().workers[pool.worker_of(1)].timers_pending, 1u) << "cancelled: swept lazily";
}

TEST(Timers, PeriodicTicksUntilCancelled) {
  counter_scope c;
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  mtp::timer every = pool.post_every(1ms, mark{1, 7});
  ASSERT_TRUE(c.wait_for(5));
  EXPECT_TRUE(every.cancel());
  const std::size_t after_cancel = pool.send(log_of{1}).size();
  // Another timer, later than any tick the cancelled one could still have had, shows that no
  // tick started after cancel() returned.
  mtp::timer probe = pool.post_after(20ms, mark{1, 8});
  ASSERT_TRUE(c.wait_for(static_cast<int>(after_cancel) + 1));
  const std::vector<int> log = pool.send(log_of{1});
  EXPECT_EQ(log.size(), after_cancel + 1);
  EXPECT_EQ(log.back(), 8);
  EXPECT_FALSE(every.cancel());
}

TEST(Timers, BadPeriodsAreRejected) {
  pool_t pool(mtp_test::options(1));
  pool.create(1);
  EXPECT_THROW((void)pool.post_every(0ms, mark{1, 1}), std::invalid_argument);
  EXPECT_THROW((void)pool.post_every(-1s, mark{1, 1}), std::invalid_argument);
  EXPECT_THROW((void)pool.post_every(std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN()), mark{1, 1}),
               std::invalid_argument);
}

TEST(Timers, HugeDurationsSaturateToNever) {
  pool_t pool(mtp_test::options(1));
  pool.create(1);
  mtp::timer a = pool.post_after(std::chrono::nanoseconds::max(), mark{1, 1});
  mtp::timer b = pool.post_after(std::chrono::hours::max(), mark{1, 2});
  mtp::timer c = pool.post_every(std::chrono::duration<double, std::ratio<86400 * 365>>(1e300), mark{1, 3});
  mtp::timer d = pool.post_at(std::chrono::steady_clock::time_point::max(), mark{1, 4});
  EXPECT_EQ(pool.send(log_of{1}), std::vector<int>{});
  EXPECT_TRUE(a.cancel());
  EXPECT_TRUE(b.cancel());
  EXPECT_TRUE(c.cancel());
  EXPECT_TRUE(d.cancel());
}

TEST(Timers, RemovingTheItemCancelsItsTimers) {
  std::vector<mtp::diagnostic> seen;
  std::mutex m;
  mtp::pool_options o = mtp_test::options(1);
  o.on_diagnostic = [&](const mtp::diagnostic& d) {
    std::lock_guard lock(m);
    seen.push_back(d);
  };
  counter_scope c;
  pool_t pool(std::move(o));
  pool.create(1);
  mtp::timer t = pool.post_after(5ms, mark{1, 1});
  mtp::timer every = pool.post_every(1ms, mark{1, 2});
  ASSERT_TRUE(pool.remove(1));
  pool.create(1);  // a new life of the same id: the old timers are not its own
  mtp::timer probe = pool.post_after(30ms, mark{1, 3});
  ASSERT_TRUE(c.wait_for(1));
  EXPECT_EQ(pool.send(log_of{1}), (std::vector<int>{3}));
  EXPECT_FALSE(t.cancel()) << "removal cancelled it";
  std::lock_guard lock(m);
  EXPECT_TRUE(seen.empty()) << seen.front().text;
}

// An item whose constructor starts its own heartbeat: the timer belongs to that life.
std::atomic<int> g_beats{0};
struct beat {
  mtp::id_t id;
  using response_type = void;
};
class beating {
 public:
  explicit beating(mtp::id_t id) : ticks_(mtp::this_pool<beating>().post_every(1ms, beat{id})) {}
  static void handle(const beat&) { g_beats.fetch_add(1); }
  static std::vector<int> handle(const log_of&) { return {}; }

 private:
  mtp::timer ticks_;  // dropping the handle does not cancel: removal of the item does
};

TEST(Timers, TimersArmedByTheConstructorEndWithTheItem) {
  std::atomic<int> reports{0};
  mtp::pool_options o = mtp_test::options(1);
  o.on_diagnostic = [&](const mtp::diagnostic&) { reports.fetch_add(1); };
  g_beats = 0;
  mtp::thread_pool<beating> pool(std::move(o));
  pool.create(1);
  ASSERT_TRUE(mtp_test::poll_until([] { return g_beats.load() >= 3; }));
  ASSERT_TRUE(pool.remove(1));
  // The heartbeat's next tick finds another life (none): it goes, silently.
  ASSERT_TRUE(mtp_test::poll_until([&] { return pool.stats().workers[0].timers_pending == 0; }));
  const int beats = g_beats.load();
  (void)pool.send_batch(std::vector<log_of>{{2}});  // a round trip through the worker, after the sweep
  EXPECT_EQ(g_beats.load(), beats);
  EXPECT_EQ(reports.load(), 0) << "a tick of a removed item was reported";
}

TEST(Timers, ATimerForAnIdWithNoItemIsReportedLikeAPost) {
  std::atomic<int> unknown{0};
  mtp_test::gate reported;
  mtp::pool_options o = mtp_test::options(1);
  o.on_diagnostic = [&](const mtp::diagnostic& d) {
    if (d.error && d.error->code == mtp::errc::unknown_id && d.error->id == 42) {
      unknown.fetch_add(1);
      reported.open();
    }
  };
  pool_t pool(std::move(o));
  mtp::timer t = pool.post_after(1ms, mark{42, 1});
  ASSERT_TRUE(reported.wait_for(mtp_test::k_bound));
  EXPECT_EQ(unknown.load(), 1);
}

TEST(Timers, ShutdownDropsPendingTimersAndCountsThem) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  pool.create(2);
  mtp::timer a = pool.post_after(1h, mark{1, 1});
  mtp::timer b = pool.post_every(1h, mark{2, 2});
  mtp::timer cancelled = pool.post_after(1h, mark{1, 3});
  EXPECT_TRUE(cancelled.cancel());
  (void)pool.send(log_of{1});  // the arms are in (they travel like posts)
  (void)pool.send(log_of{2});
  pool.shutdown();
  std::uint64_t dropped = 0;
  for (const auto& w : pool.stats().workers) {
    dropped += w.timers_dropped;
    EXPECT_EQ(w.timers_pending, 0u);
  }
  EXPECT_EQ(dropped, 2u);
  EXPECT_FALSE(a.cancel()) << "after the pool stopped";
  EXPECT_FALSE(b.cancel());
  try {
    (void)pool.post_after(1ms, mark{1, 4});
    ADD_FAILURE() << "scheduled on a stopped pool";
  } catch (const mtp::pool_error& e) {
    EXPECT_EQ(e.code(), mtp::errc::pool_stopped);
  }
}

TEST(Timers, HandlesOutliveThePool) {
  mtp::timer t;
  {
    pool_t pool(mtp_test::options(1));
    pool.create(1);
    t = pool.post_after(1h, mark{1, 1});
  }
  EXPECT_FALSE(t.cancel());
}

// ---- From inside an item --------------------------------------------------------------------

struct start_ticking {
  mtp::id_t id;
  int ticks;
  using response_type = void;
};
struct tick {
  mtp::id_t id;
  using response_type = void;
};
struct touch_session {
  mtp::id_t id;
  using response_type = int;
};
struct idle {
  mtp::id_t id;
  using response_type = void;
};
struct ticks_of {
  mtp::id_t id;
  using response_type = int;
};

std::atomic<int> g_idle_fired{0};
std::atomic<std::int64_t> g_idle_gap_ns{0};  // from the last re-arm to the firing
mtp_test::gate* g_done = nullptr;

class ticker {
 public:
  explicit ticker(mtp::id_t id) : id_(id), timeout_(mtp::this_pool<ticker>().make_timeout(idle{id})) {}
  void handle(const start_ticking& s) {
    left_ = s.ticks;
    every_ = mtp::this_pool<ticker>().post_every(1ms, tick{id_});  // self-scheduled, on this worker
  }
  void handle(const tick&) {
    ++ticks_;
    if (--left_ == 0) {
      every_.cancel();
      if (g_done != nullptr) g_done->open();
    }
  }
  int handle(const touch_session&) {
    // Read the clock before the re-arm: the deadline is at least 20 ms after this point (read
    // after it, a thread pre-empted between the two lines would see the timeout fire "early").
    last_rearm_ = std::chrono::steady_clock::now();
    timeout_.rearm(20ms);  // the session pattern: every message pushes the timeout back
    return ++touches_;
  }
  void handle(const idle&) {
    g_idle_gap_ns = (std::chrono::steady_clock::now() - last_rearm_).count();
    g_idle_fired.fetch_add(1);
    if (g_done != nullptr) g_done->open();
  }
  [[nodiscard]] int handle(const ticks_of&) const { return ticks_; }

 private:
  mtp::id_t id_;
  mtp::timeout timeout_;
  mtp::timer every_;
  int left_ = 0;
  int ticks_ = 0;
  int touches_ = 0;
  std::chrono::steady_clock::time_point last_rearm_{};
};

TEST(Timers, AnItemTicksItselfThroughThisPool) {
  mtp_test::gate done;
  g_done = &done;
  mtp::thread_pool<ticker> pool(mtp_test::options(2));
  pool.create(1);
  pool.send(start_ticking{1, 5});
  ASSERT_TRUE(done.wait_for(mtp_test::k_bound));
  EXPECT_EQ(pool.send(ticks_of{1}), 5);
  g_done = nullptr;
}

TEST(Timers, ARearmedTimeoutFiresOnlyAfterTheLastRearm) {
  mtp_test::gate done;
  g_done = &done;
  g_idle_fired = 0;
  mtp::thread_pool<ticker> pool(mtp_test::options(2));
  pool.create(1);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(pool.send(touch_session{1}), i + 1);
  ASSERT_TRUE(done.wait_for(mtp_test::k_bound));
  EXPECT_GE(std::chrono::nanoseconds(g_idle_gap_ns.load()), 20ms) << "fired before its last re-arm's deadline";
  EXPECT_EQ(g_idle_fired.load(), 1);
  g_done = nullptr;
}

TEST(Timers, RemovingAnItemWithAnArmedTimeoutCancelsIt) {
  g_idle_fired = 0;
  g_done = nullptr;
  mtp::thread_pool<ticker> pool(mtp_test::options(1));
  pool.create(1);
  EXPECT_EQ(pool.send(touch_session{1}), 1);  // armed for 20 ms
  ASSERT_TRUE(pool.remove(1));                 // the timeout dies with its item
  pool.create(2);
  std::this_thread::sleep_for(40ms);  // the deadline passes; nothing fires (nothing to wait for)
  EXPECT_EQ(pool.send(ticks_of{2}), 0);
  EXPECT_EQ(g_idle_fired.load(), 0);
}

TEST(Timers, MakeTimeoutOffTheItemsWorkerThrows) {
  mtp::thread_pool<ticker> pool(mtp_test::options(1));
  EXPECT_THROW((void)pool.make_timeout(idle{1}), std::logic_error);
  mtp::timeout empty;
  EXPECT_THROW(empty.rearm(1s), std::logic_error);
  EXPECT_FALSE(empty.armed());
}

// ---- Activation and passivation ------------------------------------------------------------

std::atomic<int> g_lazy_built{0};
std::atomic<int> g_lazy_marks{0};
class lazy {
 public:
  static constexpr bool activate_on_first_message = true;
  explicit lazy(mtp::id_t) { g_lazy_built.fetch_add(1); }
  static void handle(const mark&) { g_lazy_marks.fetch_add(1); }
  [[nodiscard]] static std::vector<int> handle(const log_of&) { return {}; }
};

TEST(Timers, ATimerArmedBeforeItsItemExistsActivatesIt) {
  g_lazy_built = g_lazy_marks = 0;
  mtp::thread_pool<lazy> pool(mtp_test::options(1));
  mtp::timer t = pool.post_after(1ms, mark{5, 1});
  ASSERT_TRUE(mtp_test::poll_until([] { return g_lazy_marks.load() == 1; }));
  EXPECT_EQ(g_lazy_built.load(), 1);
  EXPECT_EQ(pool.stats().total_items(), 1u);
}

TEST(Timers, PassivationCancelsTheTimersOfTheLifeItEnds) {
  g_lazy_built = g_lazy_marks = 0;
  mtp::pool_options o = mtp_test::options(1);
  o.passivate_after = 5ms;
  mtp::thread_pool<lazy> pool(std::move(o));
  (void)pool.send(log_of{5});  // activates item 5
  mtp::timer t = pool.post_after(200ms, mark{5, 1});
  // Idle, the item is passivated long before the deadline ...
  ASSERT_TRUE(mtp_test::poll_until([&] { return pool.stats().total_items() == 0; }));
  // ... and its timer goes when the deadline comes, without running or re-activating it.
  ASSERT_TRUE(mtp_test::poll_until([&] { return pool.stats().workers[0].timers_pending == 0; }));
  EXPECT_EQ(g_lazy_marks.load(), 0);
  EXPECT_EQ(g_lazy_built.load(), 1);
  EXPECT_FALSE(t.cancel());
}

// ---- Races ----------------------------------------------------------------------------------

TEST(Timers, CancelRacingTheFiringDecidesEachTimerExactlyOnce) {
  std::atomic<int> fired{0};
  item::seen_ = &fired;
  std::uint64_t dropped = 0;
  int cancelled = 0;
  const int n = 20'000 / mtp_test::k_scale;
  {
    pool_t pool(mtp_test::options(2));
    pool.create(1);
    pool.create(2);
    std::vector<mtp::timer> timers;
    timers.reserve(static_cast<std::size_t>(n));
    // Deadlines spread over 10-50 ms from now: the cancelling thread meets some timers that
    // fired, some firing and many pending; one in eight is 10 s ahead, so that some are
    // pending however slowly this runs (a Debug build took longer than 50 ms to schedule).
    const auto base = std::chrono::steady_clock::now() + 10ms;
    for (int i = 0; i < n; ++i) {
      const auto when = i % 8 == 7 ? base + 10s : base + std::chrono::microseconds(10 * (i % 4000));
      timers.push_back(pool.post_at(when, mark{static_cast<mtp::id_t>(1 + i % 2), i}));
    }
    std::thread canceller([&] {
      for (int i = n - 1; i >= 0; --i) cancelled += timers[static_cast<std::size_t>(i)].cancel() ? 1 : 0;
    });
    canceller.join();
    pool.shutdown();  // what neither fired nor was cancelled is dropped and counted
    for (const auto& w : pool.stats().workers) dropped += w.timers_dropped;
  }
  item::seen_ = nullptr;
  EXPECT_EQ(fired.load() + cancelled + static_cast<int>(dropped), n)
      << "fired " << fired.load() << ", cancelled " << cancelled << ", dropped " << dropped;
  EXPECT_GT(cancelled, 0);
}

TEST(Timers, ABoundedQueueWithNoRoomRefusesTheTimer) {
  mtp::pool_options o = mtp_test::options(1);
  o.queue_capacity = 1;
  pool_t pool(std::move(o));
  pool.create(1);
  mtp_test::gate started, release;
  ASSERT_TRUE(pool.post(mtp_test::hold{1, &started, &release}).has_value());
  mtp_test::open_on_exit let_go(release);
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));  // the held request fills the queue of one
  try {
    (void)pool.post_after(1ms, mark{1, 2});
    ADD_FAILURE() << "a timer went into a full bounded queue";
  } catch (const mtp::pool_error& e) {
    EXPECT_EQ(e.code(), mtp::errc::queue_full);
  }
}

// ---- Many timers ----------------------------------------------------------------------------

TEST(Timers, AMillionPendingTimersAndTheirCancellation) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  pool.create(2);
  const int n = 1'000'000 / mtp_test::k_scale;
  std::vector<mtp::timer> timers;
  timers.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) timers.push_back(pool.post_after(1h + std::chrono::microseconds(i % 1000), mark{static_cast<mtp::id_t>(1 + i % 2), i}));
  (void)pool.send(log_of{1});
  (void)pool.send(log_of{2});
  std::size_t pending = 0;
  for (const auto& w : pool.stats().workers) pending += w.timers_pending;
  EXPECT_EQ(pending, static_cast<std::size_t>(n));
  int cancelled = 0;
  for (auto& t : timers) cancelled += t.cancel() ? 1 : 0;
  EXPECT_EQ(cancelled, n);
  timers.clear();
}

}  // namespace
