// SPDX-License-Identifier: MIT
// this_worker::current_id(): the item a handler, constructor, destructor or message hook
// runs for; empty off the workers and on a worker between messages. In a completion callback
// on a worker: the request it completes (a batch's: the batch's last request).
#include "collector.hpp"
#include "pool_test_util.hpp"
#include "requests.hpp"

#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace {

struct where {
  mtp::id_t id;
  using response_type = std::optional<mtp::id_t>;
};

std::mutex g_mutex;
std::vector<std::optional<mtp::id_t>> g_outside;  // seen by on_worker_start / on_worker_stop
std::vector<std::optional<mtp::id_t>> g_built;    // seen by constructors
std::vector<std::optional<mtp::id_t>> g_hooked;   // seen by after_message

void record(std::vector<std::optional<mtp::id_t>>& into) {
  const std::lock_guard lock(g_mutex);
  into.push_back(mtp::this_worker::current_id());
}

class item {
 public:
  explicit item(mtp::id_t) { record(g_built); }
  std::optional<mtp::id_t> handle(const where&) const { return mtp::this_worker::current_id(); }
};

struct hooks {
  void on_worker_start(std::size_t) { record(g_outside); }
  void on_worker_stop(std::size_t) { record(g_outside); }
  void after_message(mtp::id_t) { record(g_hooked); }
};

TEST(CurrentId, SetInMessagesOnlyEmptyBetween) {
  EXPECT_FALSE(mtp::this_worker::current_id().has_value()) << "off the workers";
  {
    mtp::thread_pool<item, hooks> pool(mtp_test::options(2));
    pool.create(5);
    pool.create(6);
    EXPECT_EQ(pool.send(where{5}), std::optional<mtp::id_t>(5));
    EXPECT_EQ(pool.send(where{6}), std::optional<mtp::id_t>(6));
    pool.remove(6);
  }  // the stop hooks run after every item (and message) is gone
  const std::lock_guard lock(g_mutex);
  ASSERT_EQ(g_outside.size(), 4u) << "two workers, each started and stopped";
  for (const auto& seen : g_outside) EXPECT_FALSE(seen.has_value()) << "a stale id leaked out of a message";
  EXPECT_EQ(g_built, (std::vector<std::optional<mtp::id_t>>{5, 6}));
  ASSERT_FALSE(g_hooked.empty());
  for (const auto& seen : g_hooked) EXPECT_TRUE(seen.has_value()) << "after_message still runs inside the message";
}

// ---- Completion callbacks ------------------------------------------------------------------

using mtp_test::hold;

class async_item;
using async_pool = mtp::thread_pool<async_item>;

// Sends a batch from inside a handler; returns what current_id() was in its callback and after.
struct relay {
  mtp::id_t id;
  async_pool* pool;
  std::vector<where> batch;
  using response_type = std::vector<std::optional<mtp::id_t>>;
};

class async_item {
 public:
  explicit async_item(mtp::id_t) {}
  std::optional<mtp::id_t> handle(const where&) const { return mtp::this_worker::current_id(); }
  void handle(const hold& h) const { mtp_test::hold_until_released(h); }
  std::vector<std::optional<mtp::id_t>> handle(const relay& r) const {
    auto in_callback = std::make_shared<std::optional<mtp::id_t>>();
    (void)r.pool->send_batch_async(r.batch, [in_callback](auto&&) { *in_callback = mtp::this_worker::current_id(); });
    return {*in_callback, mtp::this_worker::current_id()};
  }
};

// What callbacks saw, in the order they ran, from whichever thread ran them.
class seen_ids : public mtp_test::collector<std::optional<mtp::id_t>> {
 public:
  auto callback() {
    return [this](auto&&) { put(mtp::this_worker::current_id()); };
  }
};

TEST(CurrentId, CompletionCallbackSeesTheRequestItCompletes) {
  seen_ids seen;  // outlives the pool, and so every callback
  mtp_test::gate started, release;
  async_pool pool(mtp_test::options(1));  // one worker: callbacks run in send order
  mtp_test::open_on_exit releaser(release);
  pool.create(5);
  pool.create(6);
  (void)pool.send_async(hold{6, &started, &release}, seen.callback());  // the rest queues behind it
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  (void)pool.send_async(where{5}, seen.callback());
  (void)pool.send_async(where{99}, seen.callback());  // no such item: no handler runs
  auto skipped = pool.send_async(where{6}, seen.callback());
  skipped.cancel();  // not started yet: no handler runs
  (void)pool.send_batch_async(std::vector<where>{{6}, {5}, {99}}, seen.callback());
  release.open();
  const std::vector<std::optional<mtp::id_t>> expected{6, 5, 99, 6, 99};
  EXPECT_EQ(seen.wait_for(expected.size()), expected)
      << "each callback sees the request it completes; a batch's sees the batch's last request";

  pool.shutdown();
  (void)pool.send_async(where{5}, seen.callback());  // not sent: completes on this thread, off the workers
  (void)pool.send_batch_async(std::vector<where>{{5}}, seen.callback());
  const auto all = seen.wait_for(expected.size() + 2);
  ASSERT_EQ(all.size(), expected.size() + 2);
  EXPECT_FALSE(all[expected.size()].has_value()) << "a callback on the calling thread sees that thread's own";
  EXPECT_FALSE(all[expected.size() + 1].has_value());
}

TEST(CurrentId, BatchCallbackOnTheSendingThreadLeavesTheSendersId) {
  mtp::pool_options o = mtp_test::options(2);
  o.router = [](mtp::id_t id, std::size_t workers) { return id == 99 ? workers : id % workers; };  // 99: no route
  async_pool pool(o);
  pool.create(7);
  // Nothing of the batch can be sent, so its callback runs inside the send, in the handler of 7.
  const auto seen = pool.send(relay{7, &pool, {{99}, {99}}});
  const std::vector<std::optional<mtp::id_t>> expected{7, 7};
  EXPECT_EQ(seen, expected) << "in the callback, then after the send: the handler's own id both times";
}

}  // namespace
