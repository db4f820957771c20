// SPDX-License-Identifier: MIT
// Batches: responses in request order, per-id order inside a batch, mixed ids, sizes 0, 1 and
// many, the span-output overload, and submit_batch handles.
#include "pool_test_util.hpp"
#include "requests.hpp"

#include <atomic>
#include <cstdint>
#include <future>
#include <random>
#include <span>
#include <stdexcept>
#include <vector>

namespace {

using mtp_test::hold;

struct echo {
  mtp::id_t id;
  std::uint64_t payload;
  using response_type = std::uint64_t;
};
struct append {
  mtp::id_t id;
  int value;
  using response_type = std::size_t;  // the log's length after appending
};

// A request that counts its copies.
struct counted {
  static inline std::atomic<int> copies{0};
  mtp::id_t id;
  using response_type = mtp::id_t;
  explicit counted(mtp::id_t i) noexcept : id(i) {}
  counted(const counted& other) noexcept : id(other.id) { copies.fetch_add(1); }
  counted(counted&&) noexcept = default;
  counted& operator=(const counted&) = delete;
  counted& operator=(counted&&) noexcept = default;
  ~counted() = default;
};

class recorder {
 public:
  explicit recorder(mtp::id_t id) : id_(id) {}
  std::uint64_t handle(const echo& m) const { return m.payload * 1000 + id_; }
  std::size_t handle(const append& m) {
    log_.push_back(m.value);
    return log_.size();
  }
  void handle(const hold& h) const { mtp_test::hold_until_released(h); }
  void handle(const mtp_test::run_fn& r) const { r.fn(); }
  mtp::id_t handle(const counted& c) const { return c.id + id_; }
  std::vector<int> log() const { return log_; }

 private:
  mtp::id_t id_;
  std::vector<int> log_;
};

using pool_t = mtp::thread_pool<recorder>;

std::vector<mtp::id_t> iota_ids(mtp::id_t n) {
  std::vector<mtp::id_t> ids(n);
  for (mtp::id_t i = 0; i < n; ++i) ids[i] = i;
  return ids;
}

class Batch : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto ids = iota_ids(16);
    for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(ids))) ASSERT_TRUE(r.has_value());
  }
  pool_t pool{mtp_test::options(2)};
};

TEST_F(Batch, ResponsesComeBackInRequestOrderWithMixedIds) {
  std::mt19937_64 rng(7);
  std::vector<echo> reqs;
  for (int i = 0; i < 5000; ++i) reqs.push_back({rng() % 16, rng() % 1'000'000});
  const auto results = pool.send_batch(reqs);
  ASSERT_EQ(results.size(), reqs.size());
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(results[i].has_value()) << i;
    EXPECT_EQ(results[i].value(), reqs[i].payload * 1000 + reqs[i].id) << "response " << i << " out of place";
  }
}

TEST_F(Batch, ManyRequestsToOneIdRunInOrder) {
  std::vector<append> reqs;
  // Item 3 gets 0..299 interleaved with requests to items on both workers.
  for (int v = 0; v < 300; ++v) {
    reqs.push_back({3, v});
    reqs.push_back({static_cast<mtp::id_t>(4 + v % 5), v});
  }
  const auto results = pool.send_batch(reqs);
  std::size_t expected_len = 0;
  for (std::size_t i = 0; i < reqs.size(); i += 2) EXPECT_EQ(results[i].value(), ++expected_len);
  const std::vector<int> log = pool.call(3, &recorder::log);
  ASSERT_EQ(log.size(), 300u);
  for (int v = 0; v < 300; ++v) EXPECT_EQ(log[v], v);
  // Only one worker involved: the contiguous-chunk path.
  std::vector<append> same(100);
  for (int v = 0; v < 100; ++v) same[v] = {8, v};
  const auto same_results = pool.send_batch(same);
  for (int v = 0; v < 100; ++v) EXPECT_EQ(same_results[v].value(), static_cast<std::size_t>(v) + 1 + 60);
  const std::vector<int> log8 = pool.call(8, &recorder::log);
  ASSERT_EQ(log8.size(), 160u);
  for (int v = 0; v < 100; ++v) EXPECT_EQ(log8[60 + v], v);
}

TEST_F(Batch, SizeZeroReturnsAtOnce) {
  const std::vector<echo> none;
  const auto results = MTP_BOUNDED([&] { return pool.send_batch(none); });
  EXPECT_TRUE(results.empty());
  auto handle = pool.submit_batch(std::vector<echo>{});
  EXPECT_EQ(handle.size(), 0u);
  const bool ready = MTP_BOUNDED([&] { return handle.wait_for(std::chrono::seconds(10)); });
  EXPECT_TRUE(ready) << "an empty submitted batch never completed";
}

TEST_F(Batch, SizeOneAndUnknownIds) {
  const std::vector<echo> one{{5, 9}};
  const auto results = pool.send_batch(one);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].value(), 9005u);

  const std::vector<echo> mixed{{1, 1}, {999, 2}, {2, 3}, {1000, 4}};
  const auto r = pool.send_batch(mixed);
  EXPECT_EQ(r[0].value(), 1001u);
  EXPECT_EQ(r[2].value(), 3002u);
  for (std::size_t i : {1u, 3u}) {
    ASSERT_TRUE(r[i].has_error());
    EXPECT_EQ(r[i].error().code, mtp::errc::unknown_id);
    EXPECT_EQ(r[i].error().id, mixed[i].id);
  }
}

TEST_F(Batch, SpanOutputOverloadAndSizeMismatch) {
  std::vector<append> reqs;
  for (int v = 0; v < 50; ++v) reqs.push_back({static_cast<mtp::id_t>(v % 3), v});
  std::vector<mtp::result<std::size_t>> out(reqs.size());
  pool.send_batch(std::span<const append>(reqs), std::span<mtp::result<std::size_t>>(out));
  for (int v = 0; v < 50; ++v) EXPECT_EQ(out[v].value(), static_cast<std::size_t>(v / 3 + 1)) << v;
  // Reused output: overwritten in place.
  pool.send_batch(std::span<const append>(reqs), std::span<mtp::result<std::size_t>>(out));
  for (int v = 0; v < 50; ++v) EXPECT_EQ(out[v].value(), static_cast<std::size_t>(v / 3 + 1 + 17 - (v % 3 == 2 ? 1 : 0)));

  std::vector<mtp::result<std::size_t>> wrong(reqs.size() - 1);
  EXPECT_THROW(pool.send_batch(std::span<const append>(reqs), std::span<mtp::result<std::size_t>>(wrong)),
               std::invalid_argument);
  for (const auto& w : wrong) EXPECT_FALSE(w.has_value() || w.has_error()) << "a refused batch wrote results";
  EXPECT_EQ(pool.call(0, &recorder::log).size(), 34u) << "a refused batch ran requests";
}

// An asynchronous batch keeps its requests in a vector of its own: one passed as an rvalue is
// taken over whole, an lvalue is copied.
TEST_F(Batch, AnAsynchronousBatchTakesOverAVectorPassedAsAnRvalue) {
  const auto run = [&](auto&& requests) {
    std::promise<std::vector<mtp::result<mtp::id_t>>> got;
    (void)pool.send_batch_async(std::forward<decltype(requests)>(requests),
                                [&](std::vector<mtp::result<mtp::id_t>>&& rs) { got.set_value(std::move(rs)); });
    return got.get_future().get();
  };
  std::vector<counted> requests;
  for (mtp::id_t i = 0; i < 16; ++i) requests.emplace_back(i);
  counted::copies = 0;
  const auto copied = run(requests);
  EXPECT_EQ(counted::copies.load(), 16);
  counted::copies = 0;
  const auto moved = run(std::move(requests));
  EXPECT_EQ(counted::copies.load(), 0);
  ASSERT_EQ(moved.size(), 16u);
  for (mtp::id_t i = 0; i < 16; ++i) {
    EXPECT_EQ(copied[i].value(), 2 * i);
    EXPECT_EQ(moved[i].value(), 2 * i);
  }
}

TEST_F(Batch, LargeBatch) {
  std::vector<echo> reqs(20'000);
  for (std::size_t i = 0; i < reqs.size(); ++i) reqs[i] = {i % 16, i};
  const auto results = pool.send_batch(reqs);
  ASSERT_EQ(results.size(), reqs.size());
  for (std::size_t i = 0; i < reqs.size(); ++i) ASSERT_EQ(results[i].value(), i * 1000 + i % 16) << i;
}

TEST_F(Batch, SubmittedBatchesCompleteInOrderAndReportReadiness) {
  mtp_test::gate started;
  mtp_test::gate release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());  // worker 0 is held
  ASSERT_TRUE(started.wait_for(std::chrono::seconds(30)));

  std::vector<append> reqs;
  for (int v = 0; v < 40; ++v) reqs.push_back({static_cast<mtp::id_t>(v % 4), v});  // both workers
  auto first = pool.submit_batch(reqs);
  auto second = pool.submit_batch(std::vector<echo>{{1, 5}, {3, 6}});  // worker 1 only
  EXPECT_EQ(first.size(), 40u);
  // Worker 1 is free: the second batch completes although worker 0 is held.
  const bool second_done = MTP_BOUNDED([&] { return second.wait_for(std::chrono::seconds(20)); });
  EXPECT_TRUE(second_done);
  EXPECT_EQ(second.wait()[0].value(), 5001u);
  EXPECT_EQ(second.wait()[1].value(), 6003u);
  EXPECT_FALSE(first.ready()) << "a batch with requests for a held worker cannot be complete";
  EXPECT_FALSE(first.wait_for(std::chrono::milliseconds(1)));

  release.open();
  const auto results = MTP_BOUNDED([&] { return first.take(); });
  ASSERT_EQ(results.size(), 40u);
  for (int v = 0; v < 40; ++v) EXPECT_EQ(results[v].value(), static_cast<std::size_t>(v / 4 + 1)) << v;
  EXPECT_EQ(first.size(), 0u) << "take() leaves the handle empty";
  EXPECT_THROW((void)first.wait(), std::logic_error);
}

TEST_F(Batch, HandleDestroyedBeforeCompletionDoesNotWait) {
  // Dropping a handle returns at once; the batch still runs, and its storage lives until the
  // last worker is done with it (ASan and TSan would see a use after free otherwise).
  mtp_test::gate started;
  mtp_test::gate release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{2, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(std::chrono::seconds(30)));
  auto destroyer = std::async(std::launch::async, [&] {
    auto handle = pool.submit_batch(std::vector<append>{{2, 1}, {4, 2}, {6, 3}});
    EXPECT_FALSE(handle.ready()) << "worker 0 is held: its share cannot have run";
    // handle goes out of scope here while worker 0 is held
  });
  EXPECT_EQ(destroyer.wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << "the handle's destructor waited for its batch";
  release.open();  // before get(): a destructor that waits for the batch returns only now
  destroyer.get();
  EXPECT_EQ(pool.call(2, &recorder::log), std::vector<int>{1}) << "the dropped batch did not run";
}

TEST(BatchWait, OnAWorkerWhoseShareIsStillQueuedIsWouldDeadlock) {
  // The batch comes from this thread; worker 0 waits on it from inside a message while its own
  // share of the batch is queued behind that message.
  pool_t pool(mtp_test::options(2));
  pool.create(0);
  pool.create(1);
  ASSERT_EQ(pool.worker_of(0), 0u);
  mtp_test::gate started, submitted;
  mtp::batch<std::uint64_t> handle;
  std::optional<mtp::errc> seen;
  mtp_test::open_on_exit release_on_failure(submitted);
  ASSERT_TRUE(pool.post(mtp_test::run_fn{0, [&] {
                          started.open();
                          if (!submitted.wait_for(mtp_test::k_bound)) return;
                          try {
                            (void)handle.wait();
                          } catch (const mtp::pool_error& e) {
                            seen = e.code();
                          }
                        }}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  handle = pool.submit_batch(std::vector<echo>{{0, 1}, {1, 2}});
  submitted.open();
  const auto results = MTP_BOUNDED([&] {
    std::vector<std::uint64_t> out;
    for (const auto& r : handle.wait()) out.push_back(r.value());
    return out;
  });
  EXPECT_EQ(seen, mtp::errc::would_deadlock) << "batch::wait() on a worker with its share still queued";
  EXPECT_EQ(results, (std::vector<std::uint64_t>{1000, 2001}));
}

TEST(BatchWait, OnAWorkerWhoseShareHasRunWaitsForTheOthers) {
  // Worker 1 waits for a batch whose share on worker 1 has already run: that is no deadlock.
  pool_t pool(mtp_test::options(2));
  pool.create(0);
  pool.create(1);
  mtp::batch<std::uint64_t> handle = pool.submit_batch(std::vector<echo>{{0, 1}, {1, 2}});
  std::vector<std::uint64_t> seen;
  pool.send(mtp_test::run_fn{1, [&] {
    for (const auto& r : handle.wait()) seen.push_back(r.value());
  }});
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{1000, 2001}));
}

TEST(AsyncBatch, ThatFindsNoRoomCompletesOutsideThePool) {
  // Every piece finds worker 0's queue of one full: the callback runs on this thread, before
  // send_batch_async returns, and may send again or shut the pool down.
  mtp::pool_options o = mtp_test::options(2);
  o.queue_capacity = 1;
  pool_t pool(o);
  pool.create(0);
  pool.create(1);
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));

  std::vector<mtp::errc> codes;
  std::vector<std::uint64_t> resent;
  (void)pool.send_batch_async(std::vector<echo>{{0, 1}, {0, 2}}, [&](std::vector<mtp::result<std::uint64_t>> rs) {
    for (const auto& r : rs) codes.push_back(r.error().code);
    for (const auto& r : pool.send_batch(std::vector<echo>{{1, 3}, {1, 4}})) resent.push_back(r.value());
  });
  EXPECT_EQ(codes, (std::vector<mtp::errc>{mtp::errc::queue_full, mtp::errc::queue_full}));
  EXPECT_EQ(resent, (std::vector<std::uint64_t>{3001, 4001})) << "a batch sent from the callback";

  bool stopped = false;
  MTP_BOUNDED([&] {
    (void)pool.send_batch_async(std::vector<echo>{{0, 5}}, [&](std::vector<mtp::result<std::uint64_t>>) {
      release.open();
      pool.shutdown();
      stopped = true;
    });
  });
  EXPECT_TRUE(stopped) << "shutdown() from the callback";
}

}  // namespace
