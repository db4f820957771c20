// SPDX-License-Identifier: MIT
// thread_pool::quiescent(): true only when no message is queued or running anywhere in the
// pool, including messages that items send each other; false while a handler runs or a
// message waits behind it.
#include "pool_test_util.hpp"
#include "requests.hpp"

#include <atomic>
#include <cstdint>
#include <vector>

namespace {

using mtp_test::hold;

std::atomic<std::uint64_t> g_hops{0};

struct relay {  // passes itself on to the next item until `left` reaches 0
  mtp::id_t id;
  std::uint32_t left;
  using response_type = void;
};

struct item {
  explicit item(mtp::id_t id) : id_(id) {}
  void handle(const relay& r) {
    g_hops.fetch_add(1, std::memory_order_relaxed);
    if (r.left == 0) return;
    // The next item lives on another worker (ids alternate between the two workers), so the
    // chain crosses worker queues at every hop.
    (void)mtp::this_pool<item>().post(relay{(id_ + 1) % k_items, r.left - 1});
  }
  void handle(const hold& h) const { mtp_test::hold_until_released(h); }
  static constexpr mtp::id_t k_items = 8;
  mtp::id_t id_;
};

using pool_t = mtp::thread_pool<item>;

TEST(Quiescence, AnIdlePoolIsQuiescent) {
  pool_t pool(mtp_test::options(2));
  for (mtp::id_t id = 0; id < item::k_items; ++id) pool.create(id);
  EXPECT_TRUE(pool.quiescent());
}

// A chain of posts between items: whenever quiescent() says true, every hop has run. Many
// short chains, so that the answer is taken at every stage of a chain, on both workers.
TEST(Quiescence, TrueOnlyOnceItemsHaveStoppedSendingEachOther) {
  pool_t pool(mtp_test::options(2));
  for (mtp::id_t id = 0; id < item::k_items; ++id) pool.create(id);
  const std::uint32_t chains = 400 / mtp_test::k_scale;
  const std::uint32_t hops = 200;
  std::uint64_t expected = g_hops.load();
  std::uint64_t false_answers = 0;
  for (std::uint32_t c = 0; c < chains; ++c) {
    ASSERT_TRUE(pool.post(relay{c % item::k_items, hops}).has_value());
    expected += hops + 1;
    ASSERT_TRUE(mtp_test::poll_until([&] {
      if (pool.quiescent()) return true;
      ++false_answers;
      return false;
    })) << "chain " << c << " never ended";
    ASSERT_EQ(g_hops.load(std::memory_order_relaxed), expected) << "quiescent() said true in the middle of chain " << c;
  }
  EXPECT_GT(false_answers, 0u) << "some answers were taken while a chain ran";
}

TEST(Quiescence, FalseWhileAHandlerRunsOrAMessageWaits) {
  pool_t pool(mtp_test::options(2));
  for (mtp::id_t id = 0; id < item::k_items; ++id) pool.create(id);
  mtp_test::gate started;
  mtp_test::gate release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  EXPECT_FALSE(pool.quiescent()) << "a handler runs";
  ASSERT_TRUE(pool.post(relay{0, 0}).has_value());  // queued behind the hold
  EXPECT_FALSE(pool.quiescent());
  const std::uint64_t before = g_hops.load();
  release.open();
  EXPECT_TRUE(mtp_test::poll_until([&] { return pool.quiescent(); }));
  EXPECT_EQ(g_hops.load(), before + 1) << "the queued message ran before the pool was quiescent";
}

}  // namespace
