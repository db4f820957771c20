// SPDX-License-Identifier: MIT
// Passivation: idle items go under constant load too, too short a period is refused, and an
// idle worker that just passivated an item is not taken for a stuck one.
#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>

#include "pool_test_util.hpp"
#include "requests.hpp"

namespace {

using namespace std::chrono_literals;

using mtp_test::touch;

struct keep_busy {  // posts the next keep_busy before it returns: the queue is never empty
  mtp::id_t id;
  using response_type = void;
};

mtp_test::gate* g_destroyed = nullptr;  // opened by the destructor of item 7

class grain;
struct counting_hooks;
mtp::thread_pool<grain, counting_hooks>* g_pool = nullptr;  // for keep_busy
std::atomic<bool> g_stop_busy{false};

class grain {  // a "virtual" item: it exists as soon as someone talks to it
 public:
  static constexpr bool activate_on_first_message = true;
  explicit grain(mtp::id_t id) : id_(id) {}
  grain(const grain&) = delete;
  grain& operator=(const grain&) = delete;
  ~grain() {
    if (id_ == 7 && g_destroyed != nullptr) g_destroyed->open();
  }
  void handle(const touch&) {}
  void handle(const keep_busy& k) {
    if (!g_stop_busy.load(std::memory_order_relaxed)) {
      EXPECT_TRUE(g_pool->post(k).has_value());
    }
  }

 private:
  mtp::id_t id_;
};

struct counting_hooks {
  static inline std::atomic<int> passivated{0};
  void on_passivate(mtp::id_t id) {
    if (id == 7) passivated.fetch_add(1);
  }
};
using pool_t = mtp::thread_pool<grain, counting_hooks>;

TEST(Passivation, IdleItemsArePassivatedUnderConstantLoad) {
  counting_hooks::passivated = 0;
  mtp_test::gate destroyed;
  g_destroyed = &destroyed;
  mtp::pool_options o = mtp_test::options(1);
  o.passivate_after = 20ms;
  pool_t pool(o);
  pool.send(touch{7});  // item 7 is built, then never touched again
  // The one worker's queue never runs empty from here on: each keep_busy posts the next.
  g_pool = &pool;
  g_stop_busy = false;
  ASSERT_TRUE(pool.post(keep_busy{1}).has_value());
  const bool passivated = destroyed.wait_for(mtp_test::k_bound);
  g_stop_busy = true;
  pool.send(touch{1});  // the chain has ended: no keep_busy refers to the pool after this
  g_pool = nullptr;
  g_destroyed = nullptr;
  EXPECT_TRUE(passivated) << "an idle item was never passivated while its worker was busy";
  EXPECT_EQ(counting_hooks::passivated.load(), 1);
}

TEST(Passivation, TooShortAPeriodIsRefusedWithAClearError) {
  for (const std::chrono::nanoseconds d : {std::chrono::nanoseconds(1), std::chrono::nanoseconds(3),
                                           std::chrono::nanoseconds(999'999), std::chrono::nanoseconds(-5)}) {
    mtp::pool_options o = mtp_test::options(1);
    o.passivate_after = d;
    try {
      pool_t pool(o);
      ADD_FAILURE() << "passivate_after = " << d.count() << " ns was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(mtp_test::contains(e.what(), "passivate_after = " + std::to_string(d.count()) + " ns"))
          << e.what();
    }
  }
  mtp::pool_options o = mtp_test::options(1);
  o.passivate_after = 1ms;  // the shortest period accepted
  pool_t pool(o);
  pool.send(touch{1});
}

TEST(Passivation, AnIdleWorkerIsNotReportedAsStalledAfterPassivating) {
  // The worker sweeps every passivate_after / 4 (250 ms here). After it passivated item 7 it
  // is idle; were it still marked inside a message until the next sweep, the stall detector
  // would report it after 100 ms.
  counting_hooks::passivated = 0;
  mtp_test::gate destroyed;
  g_destroyed = &destroyed;
  mtp_test::diagnostic_sink sink;
  mtp::pool_options o = mtp_test::options(1);
  o.passivate_after = 1s;
  o.stall_threshold = 100ms;
  o.on_diagnostic = sink.callback();
  pool_t pool(o);
  pool.send(touch{7});
  ASSERT_TRUE(destroyed.wait_for(mtp_test::k_bound)) << "item 7 was never passivated";
  g_destroyed = nullptr;
  EXPECT_TRUE(sink.none_within(mtp::diagnostic::kind::stalled, 600ms))
      << "an idle worker was reported as stalled: " << sink.of_kind(mtp::diagnostic::kind::stalled).front().text;
}

}  // namespace
