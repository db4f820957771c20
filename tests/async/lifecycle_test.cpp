// SPDX-License-Identifier: MIT
// Creating and removing items without waiting: create_async, remove_async and their batch
// forms, with completion callbacks.
#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "collector.hpp"
#include "pool_test_util.hpp"
#include "requests.hpp"

namespace {

using mtp_test::add;
using mtp_test::hold;

std::atomic<int> g_alive{0};

// Starts at a given total; a negative start makes the constructor throw.
class counter {
 public:
  explicit counter(mtp::id_t id, int start = 0) : total_(start) {
    if (start < 0) throw std::invalid_argument("negative start for item " + std::to_string(id));
    g_alive.fetch_add(1);
  }
  counter(mtp::id_t, std::unique_ptr<int> start) : total_(*start) { g_alive.fetch_add(1); }
  counter(const counter&) = delete;
  counter& operator=(const counter&) = delete;
  ~counter() { g_alive.fetch_sub(1); }
  int handle(const add& a) { return total_ += a.amount; }
  void handle(const hold& h) { mtp_test::hold_until_released(h); }

 private:
  int total_;
};
using pool_t = mtp::thread_pool<counter>;

// "ok", or the error's code name.
std::string code_of(const mtp::result<void>& r) { return r.has_error() ? mtp::to_string(r.error().code) : "ok"; }

TEST(AsyncLifecycle, ARequestSentAfterCreateAsyncFindsTheItem) {
  pool_t pool(mtp_test::options(2));
  mtp_test::collector<std::string> box;
  for (mtp::id_t id = 0; id < 50; ++id) {
    (void)pool.create_async(mtp::make_create(id, 100), [&box](mtp::result<void>&& r) { box.put(code_of(r)); });
    // Per-sender order: the create is queued before this request on the same worker.
    EXPECT_EQ(pool.send(add{id, 1}), 101) << id;
  }
  const auto codes = box.wait_for(50);
  ASSERT_EQ(codes.size(), 50u);
  for (const std::string& c : codes) EXPECT_EQ(c, "ok");
  EXPECT_EQ(box.on_workers(), 50u) << "callbacks run on the item's worker";
}

TEST(AsyncLifecycle, FailuresArriveAsResults) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  mtp_test::collector<mtp::result<void>> box;
  auto put = [&box](mtp::result<void>&& r) { box.put(std::move(r)); };
  (void)pool.create_async(mtp::make_create(1), put);       // duplicate
  (void)pool.create_async(mtp::make_create(2, -1), put);   // constructor throws
  (void)pool.remove_async(3, put);                          // no such item
  (void)pool.remove_async(1, put);                          // removed
  const auto rs = box.wait_for(4);
  ASSERT_EQ(rs.size(), 4u);
  std::vector<std::string> codes;
  for (const auto& r : rs) codes.push_back(code_of(r));
  // Items 1 and 3 share worker 1, item 2 is on worker 0: compare as a multiset.
  EXPECT_EQ(std::count(codes.begin(), codes.end(), "duplicate_id"), 1);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), "constructor_failed"), 1);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), "unknown_id"), 1);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), "ok"), 1);
  for (const auto& r : rs) {
    if (code_of(r) != "constructor_failed") continue;
    try {
      std::rethrow_exception(r.error().exception);
    } catch (const std::invalid_argument& e) {
      EXPECT_STREQ(e.what(), "negative start for item 2");
    }
  }
  EXPECT_THROW((void)pool.send(add{2, 0}), mtp::pool_error) << "a failed constructor added no item";
  EXPECT_THROW((void)pool.send(add{1, 0}), mtp::pool_error) << "item 1 was removed";

  pool.shutdown();
  std::vector<std::string> after;
  (void)pool.create_async(mtp::make_create(5), [&after](mtp::result<void>&& r) { after.push_back(code_of(r)); });
  (void)pool.remove_async(5, [&after](mtp::result<void>&& r) { after.push_back(code_of(r)); });
  // Nothing could be sent: both completed on this thread before returning.
  EXPECT_EQ(after, (std::vector<std::string>{"pool_stopped", "pool_stopped"}));
}

TEST(AsyncLifecycle, ArgumentsMoveIntoTheItem) {
  pool_t pool(mtp_test::options(2));
  mtp_test::collector<std::string> box;
  (void)pool.create_async(mtp::make_create(7, std::make_unique<int>(40)),
                          [&box](mtp::result<void>&& r) { box.put(code_of(r)); });
  ASSERT_EQ(box.wait_for(1).at(0), "ok");
  EXPECT_EQ(pool.send(add{7, 2}), 42);
}

TEST(AsyncLifecycle, BatchFormsAnswerInOrder) {
  pool_t pool(mtp_test::options(2));
  std::vector<mtp::create_request<int>> creates;
  for (mtp::id_t id = 0; id < 100; ++id) creates.push_back({id, {static_cast<int>(id)}});
  creates.push_back({10, {0}});  // a duplicate, last
  mtp_test::collector<std::vector<mtp::result<void>>> box;
  auto put = [&box](std::vector<mtp::result<void>>&& rs) { box.put(std::move(rs)); };
  (void)pool.create_batch_async(creates, put);
  const auto created = box.wait_for(1);
  ASSERT_EQ(created.size(), 1u);
  ASSERT_EQ(created[0].size(), 101u);
  for (std::size_t i = 0; i < 100; ++i) EXPECT_EQ(code_of(created[0][i]), "ok") << i;
  EXPECT_EQ(code_of(created[0][100]), "duplicate_id");
  for (mtp::id_t id = 0; id < 100; ++id) EXPECT_EQ(pool.send(add{id, 1}), static_cast<int>(id) + 1);

  const std::vector<mtp::id_t> ids{5, 500, 6};
  (void)pool.remove_batch_async(ids, put);
  const auto removed = box.wait_for(2);
  ASSERT_EQ(removed.size(), 2u);
  ASSERT_EQ(removed[1].size(), 3u);
  EXPECT_EQ(code_of(removed[1][0]), "ok");
  EXPECT_EQ(code_of(removed[1][1]), "unknown_id");
  EXPECT_EQ(code_of(removed[1][2]), "ok");
  EXPECT_EQ(pool.stats().workers[0].items + pool.stats().workers[1].items, 98u);
}

TEST(AsyncLifecycle, ABoundedQueueNeverHoldsBackCreateOrRemove) {
  mtp::pool_options o = mtp_test::options(1);
  o.queue_capacity = 1;
  pool_t pool(o);
  pool.create(0);
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  bool full = false;  // the message running counts until it ends: fill what room is left
  for (int i = 0; i < 4 && !full; ++i) full = !pool.post(add{0, 1}).has_value();
  ASSERT_TRUE(full) << "the bounded queue never said queue_full";
  mtp_test::collector<std::string> box;
  for (mtp::id_t id = 1; id <= 10; ++id) {
    (void)pool.create_async(mtp::make_create(id), [&box](mtp::result<void>&& r) { box.put(code_of(r)); });
  }
  (void)pool.remove_async(0, [&box](mtp::result<void>&& r) { box.put(code_of(r)); });
  release.open();
  const auto codes = box.wait_for(11);
  ASSERT_EQ(codes.size(), 11u);
  for (const std::string& c : codes) EXPECT_EQ(c, "ok");
}

TEST(AsyncLifecycle, CancelledBeforeItRanCreatesNothing) {
  pool_t pool(mtp_test::options(1));
  pool.create(0);
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  mtp_test::collector<std::string> box;
  auto handle = pool.create_async(mtp::make_create(1), [&box](mtp::result<void>&& r) { box.put(code_of(r)); });
  handle.cancel();
  release.open();
  ASSERT_EQ(box.wait_for(1).at(0), "cancelled");
  EXPECT_THROW((void)pool.send(add{1, 0}), mtp::pool_error);
}

// A callback is a message of its own: it may create, send to and remove items of the same pool
// (its own worker's included), without waiting.
TEST(AsyncLifecycle, CallbacksChainCreateSendAndRemove) {
  pool_t pool(mtp_test::options(2));
  mtp_test::collector<int> box;
  const int before = g_alive.load();
  for (mtp::id_t id = 0; id < 20; ++id) {
    (void)pool.create_async(mtp::make_create(id, 10), [&pool, &box, id](mtp::result<void>&& created) {
      if (created.has_error()) return box.put(-1);
      (void)pool.send_async(add{id, 5}, [&pool, &box, id](mtp::result<int>&& sum) {
        const int v = sum.has_value() ? sum.value() : -2;
        (void)pool.remove_async(id, [&box, v](mtp::result<void>&& removed) { box.put(removed.has_value() ? v : -3); });
      });
    });
  }
  const auto values = box.wait_for(20);
  ASSERT_EQ(values.size(), 20u);
  for (const int v : values) EXPECT_EQ(v, 15);
  EXPECT_EQ(g_alive.load(), before) << "every item was removed";
}

TEST(AsyncLifecycle, ShutdownWithCreatesInFlightCompletesEachOnce) {
  auto pool = std::make_unique<pool_t>(mtp_test::options(2));
  std::atomic<int> completed{0}, created{0}, stopped{0};
  const int n = 4000 / mtp_test::k_scale;
  std::thread sender([&] {
    for (int i = 0; i < n; ++i) {
      (void)pool->create_async(mtp::make_create(static_cast<mtp::id_t>(i)), [&](mtp::result<void>&& r) {
        completed.fetch_add(1);
        if (r.has_value()) created.fetch_add(1);
        else if (r.error().code == mtp::errc::pool_stopped) stopped.fetch_add(1);
      });
    }
  });
  pool->shutdown();  // races the sender
  sender.join();
  EXPECT_EQ(completed.load(), n) << "every operation completes exactly once";
  EXPECT_EQ(created.load() + stopped.load(), n);
  pool.reset();
  EXPECT_EQ(g_alive.load(), 0) << "shutdown destroyed every item that was created";
}

}  // namespace
