// SPDX-License-Identifier: MIT
// Self-call detection: a blocking call from a worker into its own worker fails with
// would_deadlock instead of hanging; posts to the own worker and blocking calls to other
// workers work.
#include "pool_test_util.hpp"
#include "requests.hpp"

#include <atomic>
#include <optional>
#include <span>
#include <vector>

namespace {

using mtp_test::get;

struct note {
  mtp::id_t id;
  mtp_test::gate* reached;
  using response_type = void;
};

struct item {
  explicit item(mtp::id_t id) : id(id) {}
  int handle(const get&) const { return static_cast<int>(id) * 10; }
  void handle(const note& n) {
    ++notes;
    n.reached->open();
  }
  void handle(const mtp_test::run_fn& r) { r.fn(); }
  int note_count() const { return notes; }
  mtp::id_t id;
  int notes = 0;
};

using pool_t = mtp::thread_pool<item>;

/// The code of the pool_error `f` throws, or nullopt.
template <class F>
std::optional<mtp::errc> code_of(F&& f) {
  try {
    f();
  } catch (const mtp::pool_error& e) {
    return e.code();
  }
  return std::nullopt;
}

class Deadlock : public ::testing::Test {
 protected:
  void SetUp() override {
    // Default routing with 2 workers: even ids on worker 0, odd on worker 1.
    for (mtp::id_t id = 0; id < 6; ++id) pool.create(id);
  }
  /// Runs `fn` inside the handler of item `on` (blocking, bounded).
  void inside(mtp::id_t on, std::function<void()> fn) {
    MTP_BOUNDED([&] { pool.send(mtp_test::run_fn{on, std::move(fn)}); });
  }
  pool_t pool{mtp_test::options(2)};
};

TEST_F(Deadlock, BlockingCallsIntoTheOwnWorkerFail) {
  std::optional<mtp::errc> send_code, call_code, create_code, remove_code, same_item_code;
  int other_worker = -1;
  inside(0, [&] {
    EXPECT_EQ(mtp::this_worker::index(), std::optional<std::size_t>(0));
    send_code = code_of([&] { (void)pool.send(get{2}); });
    same_item_code = code_of([&] { (void)pool.send(get{0}); });
    call_code = code_of([&] { (void)pool.call(4, &item::note_count); });
    create_code = code_of([&] { pool.create(100); });
    remove_code = code_of([&] { (void)pool.remove(2); });
    other_worker = pool.send(get{1});  // worker 1: fine, it does not call back
  });
  EXPECT_EQ(send_code, mtp::errc::would_deadlock);
  EXPECT_EQ(same_item_code, mtp::errc::would_deadlock);
  EXPECT_EQ(call_code, mtp::errc::would_deadlock);
  EXPECT_EQ(create_code, mtp::errc::would_deadlock);
  EXPECT_EQ(remove_code, mtp::errc::would_deadlock);
  EXPECT_EQ(other_worker, 10);
  EXPECT_EQ(pool.stats().total_items(), 6u) << "a refused create or remove took effect";
  EXPECT_EQ(pool.send(get{2}), 20);
}

TEST_F(Deadlock, BatchesFromAWorkerFailOnlyForItsOwnWorker) {
  std::vector<mtp::result<int>> results;
  for (const auto* rs : {&results}) {
    inside(1, [&] { results = pool.send_batch(std::vector<get>{{0}, {1}, {2}, {3}, {4}}); });
    ASSERT_EQ(rs->size(), 5u);
    for (std::size_t i = 0; i < 5; ++i) {
      if (i % 2 == 1) {
        ASSERT_TRUE((*rs)[i].has_error()) << i;
        EXPECT_EQ((*rs)[i].error().code, mtp::errc::would_deadlock);
        EXPECT_EQ((*rs)[i].error().id, i);
        EXPECT_TRUE(mtp_test::contains((*rs)[i].error().message(), "would_deadlock"));
      } else {
        EXPECT_EQ((*rs)[i].value(), static_cast<int>(i) * 10);
      }
    }
  }
}

TEST_F(Deadlock, SubmittedBatchFromAWorkerQueuesItsOwnShareAndRefusesToWaitThere) {
  // submit_batch never waits, so requests for the submitting worker's own items are queued
  // behind the current message; waiting for them there is what would deadlock.
  std::optional<mtp::batch<int>> handle;
  bool refused = false;
  inside(1, [&] {
    handle.emplace(pool.submit_batch(std::vector<get>{{0}, {1}, {2}, {3}, {4}}));
    try {
      (void)handle->wait();
    } catch (const mtp::pool_error& e) {
      refused = e.code() == mtp::errc::would_deadlock;
    }
  });
  EXPECT_TRUE(refused) << "wait() on the worker that holds part of the batch must throw would_deadlock";
  ASSERT_TRUE(handle.has_value());
  const auto rs = MTP_BOUNDED([&] { return handle->take(); });
  ASSERT_EQ(rs.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(rs[i].value(), static_cast<int>(i) * 10) << i;
}

TEST_F(Deadlock, PostToTheOwnWorkerWorks) {
  mtp_test::gate reached;
  std::optional<bool> posted;
  inside(0, [&] { posted = pool.post(note{2, &reached}).has_value(); });
  ASSERT_EQ(posted, true);
  ASSERT_TRUE(reached.wait_for(std::chrono::seconds(30))) << "a post to the own worker never ran";
  EXPECT_EQ(pool.call(2, &item::note_count), 1);
}

TEST_F(Deadlock, ShutdownFromAWorkerThrows) {
  std::optional<mtp::errc> code;
  inside(3, [&] { code = code_of([&] { pool.shutdown(); }); });
  EXPECT_EQ(code, mtp::errc::would_deadlock);
  EXPECT_EQ(pool.send(get{3}), 30);
}

TEST_F(Deadlock, AnotherPoolsWorkerMayCallBlocking) {
  // Only the own pool's worker counts: a worker of pool B calling into pool A blocks normally.
  pool_t other(mtp_test::options(2));
  other.create(0);
  int value = 0;
  MTP_BOUNDED([&] { other.send(mtp_test::run_fn{0, [&] { value = pool.send(get{2}); }}); });
  EXPECT_EQ(value, 20);
}

}  // namespace
