// SPDX-License-Identifier: MIT
// this_worker::current_id(): the item a handler, constructor, destructor or message hook
// runs for; empty off the workers and on a worker between messages.
#include "pool_test_util.hpp"

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

}  // namespace
