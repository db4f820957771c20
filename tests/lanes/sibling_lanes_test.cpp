// SPDX-License-Identifier: MIT
// Messages between items on different workers of one pool travel through the same queue as
// every other sender's. These tests check that path keeps per-sender order, loses nothing,
// and drains at shutdown.
#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <vector>

namespace {

constexpr int k_messages = 20000;

struct numbered {
  mtp::id_t id;
  int seq;
  using response_type = void;
};
struct start_burst {  // tells an item to post k_messages numbered messages to `to`
  mtp::id_t id;
  mtp::id_t to;
  using response_type = void;
};
struct ask {  // a blocking call between siblings: answered with the receiver's count
  mtp::id_t id;
  using response_type = int;
};
struct relay {  // makes the item call `to` with a blocking send and return the answer
  mtp::id_t id;
  mtp::id_t to;
  using response_type = int;
};

struct shared_view {
  std::promise<void> all_received;
  int out_of_order = 0;
};

class peer;
using peer_pool = mtp::thread_pool<peer>;

class peer {
 public:
  peer(mtp::id_t /*id*/, peer_pool* pool, shared_view* view) : pool_(pool), view_(view) {}
  void handle(const start_burst& b) {
    for (int s = 0; s < k_messages; ++s) ASSERT_TRUE(pool_->post(numbered{b.to, s}).has_value());
  }
  void handle(const numbered& n) {
    if (n.seq != next_) ++view_->out_of_order;
    next_ = n.seq + 1;
    if (++received_ == k_messages) view_->all_received.set_value();
  }
  int handle(const ask&) const { return received_; }
  int handle(const relay& r) { return pool_->send(ask{r.to}); }

 private:
  peer_pool* pool_;
  shared_view* view_;
  int next_ = 0;
  int received_ = 0;
};

mtp::pool_options two_workers() { return {.workers = 2, .placement = mtp::plan_placement("none")}; }

TEST(SiblingLanes, PostsBetweenWorkersArriveInOrderAndComplete) {
  shared_view view;
  auto received = view.all_received.get_future();
  peer_pool pool(two_workers());
  // Ids 0 and 1 route to workers 0 and 1 (id % 2).
  pool.create(0, &pool, &view);
  pool.create(1, &pool, &view);
  ASSERT_NE(pool.worker_of(0), pool.worker_of(1));
  pool.send(start_burst{0, 1});
  ASSERT_EQ(received.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(view.out_of_order, 0);
  EXPECT_EQ(pool.send(ask{1}), k_messages);
}

TEST(SiblingLanes, BlockingCallToASiblingWorkerIsAnswered) {
  shared_view view;
  peer_pool pool(two_workers());
  pool.create(0, &pool, &view);
  pool.create(1, &pool, &view);
  EXPECT_EQ(pool.send(relay{0, 1}), 0);  // worker 0 calls into worker 1 and waits
}

TEST(SiblingLanes, ShutdownAnswersWhatSiblingsQueued) {
  shared_view view;
  auto received = view.all_received.get_future();
  {
    peer_pool pool(two_workers());
    pool.create(0, &pool, &view);
    pool.create(1, &pool, &view);
    pool.send(start_burst{0, 1});  // returns once all posts are queued in the lane
  }  // destruction drains the lane before item 1 dies
  EXPECT_EQ(received.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(view.out_of_order, 0);
}

}  // namespace
