// SPDX-License-Identifier: MIT
// How a pool ends when its own items are involved: an item that drops the pool it lives in
// while a sibling waits for room, a shutdown() from another thread that makes an item drop
// the last reference, item destructors that send to the pool being destroyed, the trace of a
// pool that an item ended.
#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "pool_test_util.hpp"
#include "requests.hpp"

namespace {

using namespace std::chrono_literals;
using mtp_test::get;

class owner;
using owner_pool = mtp::thread_pool<owner>;

// Set by each test before the pool runs: what the items reach from their handlers.
owner_pool* g_raw = nullptr;
mtp_test::gate* g_may_drop = nullptr;  // item 0's let_go waits for it before dropping
mtp_test::gate* g_dropping = nullptr;  // opened by let_go once it runs
std::atomic<int> g_destroyed{0};
std::atomic<int> g_post_codes_stopped{0};  // destructor posts answered pool_stopped
std::atomic<int> g_post_codes_other{0};    // anything else
mtp_test::gate* g_all_destroyed = nullptr;
int g_items = 0;

struct adopt {  // the item becomes the pool's last owner
  mtp::id_t id;
  std::shared_ptr<owner_pool>* from;
  using response_type = void;
};
struct let_go {  // drops the pool the item holds
  mtp::id_t id;
  using response_type = void;
};
struct relay {  // a blocking send from this worker to item `to`
  mtp::id_t id;
  mtp::id_t to;
  using response_type = int;
};

class owner {
 public:
  explicit owner(mtp::id_t id, bool post_when_destroyed = false) : id_(id), post_(post_when_destroyed) {}
  owner(const owner&) = delete;
  owner& operator=(const owner&) = delete;
  ~owner() {
    pool_.reset();
    if (post_) {
      const mtp::result<void> r = g_raw->post(get{id_});
      if (r.has_error() && r.error().code == mtp::errc::pool_stopped) g_post_codes_stopped.fetch_add(1);
      else g_post_codes_other.fetch_add(1);
    }
    // Read before the count: the next test may rewrite it once the last destructor counted.
    const int items = g_items;
    if (g_destroyed.fetch_add(1) + 1 == items && g_all_destroyed != nullptr) g_all_destroyed->open();
  }
  void handle(const adopt& a) { pool_ = std::move(*a.from); }
  void handle(const let_go&) {
    if (g_dropping != nullptr) g_dropping->open();
    if (g_may_drop != nullptr) {
      EXPECT_TRUE(g_may_drop->wait_for(mtp_test::k_bound));
    }
    pool_.reset();  // the last owner: the pool ends here
  }
  int handle(const relay& r) { return g_raw->send(get{r.to}); }
  int handle(const get&) const { return static_cast<int>(id_); }

 private:
  mtp::id_t id_;
  bool post_;
  std::shared_ptr<owner_pool> pool_;
};

void reset_globals(int items) {
  g_raw = nullptr;
  g_may_drop = g_dropping = g_all_destroyed = nullptr;
  g_destroyed = 0;
  g_post_codes_stopped = g_post_codes_other = 0;
  g_items = items;
}

// Creates items 0..n-1 (even ids on worker 0, odd on worker 1) and makes item `holder` the
// pool's last owner; returns the pool's address.
owner_pool* owned_by_item(mtp::pool_options o, int n, mtp::id_t holder) {
  auto pool = std::make_shared<owner_pool>(std::move(o));
  for (mtp::id_t id = 0; id < static_cast<mtp::id_t>(n); ++id) pool->create(id);
  owner_pool* const raw = pool.get();
  g_raw = raw;
  raw->send(adopt{holder, &pool});
  EXPECT_EQ(pool, nullptr);
  return raw;
}

TEST(Ending, AnItemDroppingItsPoolWhileASiblingWaitsForRoomInItsQueue) {
  // Worker 0 runs let_go (its queue of one is full with it); worker 1 runs relay, a send to
  // item 2 on worker 0 that waits inside the sender gate for room. Then item 0 drops the pool:
  // the pool must not wait for that sender while worker 0 is the one that can make room.
  reset_globals(4);
  mtp_test::gate may_drop, dropping, all_destroyed;
  g_may_drop = &may_drop;
  g_dropping = &dropping;
  g_all_destroyed = &all_destroyed;
  mtp::pool_options o = mtp_test::options(2);
  o.queue_capacity = 1;
  owner_pool* const raw = owned_by_item(o, 4, 0);
  mtp_test::open_on_exit release_on_failure(may_drop);
  ASSERT_TRUE(raw->post(let_go{0}).has_value());
  ASSERT_TRUE(dropping.wait_for(mtp_test::k_bound));
  ASSERT_TRUE(raw->post(relay{1, 2}).has_value());
  ASSERT_TRUE(mtp_test::poll_until([&] { return raw->stats().workers[0].senders_waiting == 1; }))
      << "the sibling never waited for room";
  may_drop.open();
  EXPECT_TRUE(all_destroyed.wait_for(mtp_test::k_bound)) << "the pool never ended: a deadlock";
}

TEST(Ending, ShutdownFromAnotherThreadWhenAnItemIsTheLastOwner) {
  // shutdown() destroys item 1, which drops the pool's last reference on worker 1: the pool
  // must stay alive until shutdown() has joined every worker, then be freed once.
  for (int round = 0; round < 20; ++round) {
    reset_globals(4);
    mtp_test::gate all_destroyed;
    g_all_destroyed = &all_destroyed;
    owner_pool* const raw = owned_by_item(mtp_test::options(2), 4, 1);
    MTP_BOUNDED([&] { raw->shutdown(); });
    EXPECT_TRUE(all_destroyed.wait_for(mtp_test::k_bound));
    EXPECT_EQ(g_destroyed.load(), 4);
  }
}

TEST(Ending, ItemDestructorsThatPostToTheirPoolDuringItsDestructionGetPoolStopped) {
  reset_globals(6);
  {
    owner_pool pool(mtp_test::options(2));
    g_raw = &pool;
    for (mtp::id_t id = 0; id < 6; ++id) pool.create(id, true);
  }  // each item posts to the pool from its destructor, during ~thread_pool
  EXPECT_EQ(g_destroyed.load(), 6);
  EXPECT_EQ(g_post_codes_stopped.load(), 6);
  EXPECT_EQ(g_post_codes_other.load(), 0);
}

TEST(Ending, APoolDroppedByItsOwnItemWritesItsTrace) {
  reset_globals(2);
  const std::string path = ::testing::TempDir() + "mtp-ending-trace.json";
  std::remove(path.c_str());
  mtp::pool_options o = mtp_test::options(2);
  o.trace_file = path;
  owner_pool* const raw = owned_by_item(o, 2, 1);
  EXPECT_EQ(raw->send(get{0}), 0);
  ASSERT_TRUE(raw->post(let_go{1}).has_value());
  // The finishing worker writes the file after it joined the others: nothing announces it.
  const auto complete = [&] {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    const std::string s = text.str();
    return s.size() > 3 && s.compare(s.size() - 3, 3, "]}\n") == 0;
  };
  EXPECT_TRUE(mtp_test::poll_until(complete)) << "no trace written for a pool its own item ended";
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_TRUE(mtp_test::contains(text.str(), "\"traceEvents\"")) << text.str().substr(0, 200);
  std::remove(path.c_str());
}

}  // namespace
