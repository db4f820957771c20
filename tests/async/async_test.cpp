// SPDX-License-Identifier: MIT
// Completion callbacks instead of waiting callers: send_async and send_batch_async.
#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "collector.hpp"
#include "pool_test_util.hpp"
#include "requests.hpp"

namespace {

using mtp_test::add;
using mtp_test::fail_now;
using mtp_test::hold;

class item {
 public:
  explicit item(mtp::id_t) {}
  int handle(const add& a) { return total_ += a.amount; }
  int handle(const fail_now&) { throw std::runtime_error("refused"); }
  void handle(const hold& h) { mtp_test::hold_until_released(h); }

 private:
  int total_ = 0;
};
using pool_t = mtp::thread_pool<item>;

TEST(Async, EachRequestCompletesExactlyOnceOnItsWorkerInOrder) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  mtp_test::collector<int> box;
  const int n = 1000;
  for (int i = 0; i < n; ++i) {
    auto handle = pool.send_async(add{1, 1}, [&box](mtp::result<int>&& r) { box.put(r.value()); });
  }
  const auto values = box.wait_for(n);
  ASSERT_EQ(values.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) EXPECT_EQ(values[i], i + 1) << "per-sender order: callbacks of one item in order";
  EXPECT_EQ(box.on_workers(), static_cast<std::size_t>(n));
}

TEST(Async, FailuresArriveAsResults) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  mtp_test::collector<mtp::errc> box;
  auto code_of = [&box](mtp::result<int>&& r) { box.put(r.error().code); };
  (void)pool.send_async(fail_now{1}, code_of);
  (void)pool.send_async(add{43, 1}, code_of);  // worker 1 too: callbacks in order
  pool.shutdown();
  (void)pool.send_async(add{1, 1}, code_of);  // completes on this thread, before returning
  const auto codes = box.wait_for(3);
  ASSERT_EQ(codes.size(), 3u);
  EXPECT_EQ(codes[0], mtp::errc::handler_failed);
  EXPECT_EQ(codes[1], mtp::errc::unknown_id);
  EXPECT_EQ(codes[2], mtp::errc::pool_stopped);
}

TEST(Async, CancelSkipsWhatHasNotStarted) {
  pool_t pool(mtp_test::options(2));
  pool.create(0);
  pool.create(2);
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  mtp_test::collector<mtp::errc> box;
  auto single = pool.send_async(add{2, 5}, [&box](mtp::result<int>&& r) {
    box.put(r.has_error() ? r.error().code : mtp::errc::unknown_id);
  });
  auto many = pool.send_batch_async(std::vector<add>{{2, 1}, {2, 2}}, [&box](std::vector<mtp::result<int>>&& rs) {
    for (auto& r : rs) EXPECT_EQ(r.error().code, mtp::errc::cancelled);
    box.put(rs[0].error().code);
  });
  single.cancel();
  many.cancel();
  release.open();
  const auto codes = box.wait_for(2);
  ASSERT_EQ(codes.size(), 2u);
  EXPECT_EQ(codes[0], mtp::errc::cancelled);
  EXPECT_EQ(codes[1], mtp::errc::cancelled);
  EXPECT_EQ(pool.send(add{2, 0}), 0) << "a cancelled request ran";
}

// abandon(): the caller takes the completion over; the callback never runs and the request is
// skipped. Once the callback has run, abandon() says so.
TEST(Async, AbandonTakesTheCompletionOverUntilTheCallbackStarts) {
  pool_t pool(mtp_test::options(2));
  pool.create(0);
  pool.create(2);
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  std::atomic<int> callbacks{0};
  auto pending = pool.send_async(add{2, 5}, [&callbacks](mtp::result<int>&&) { callbacks.fetch_add(1); });
  EXPECT_TRUE(pending.abandon());
  EXPECT_FALSE(pending.abandon()) << "only once";
  release.open();
  EXPECT_EQ(pool.send(add{2, 0}), 0) << "an abandoned request ran";
  EXPECT_EQ(callbacks.load(), 0);

  mtp_test::collector<int> box;
  auto finished = pool.send_async(add{2, 1}, [&box](mtp::result<int>&& r) { box.put(r.value()); });
  ASSERT_EQ(box.wait_for(1).at(0), 1);
  EXPECT_FALSE(finished.abandon()) << "the callback has run";
  EXPECT_FALSE(mtp::async_handle().abandon());
}

TEST(Async, BatchCallbackGetsResponsesInRequestOrder) {
  pool_t pool(mtp_test::options(2));
  for (mtp::id_t id = 0; id < 4; ++id) pool.create(id);
  mtp_test::collector<std::vector<mtp::result<int>>> box;
  std::vector<add> requests;
  for (int i = 0; i < 100; ++i) requests.push_back({static_cast<mtp::id_t>(i % 4), 1});
  (void)pool.send_batch_async(requests, [&box](std::vector<mtp::result<int>>&& rs) { box.put(std::move(rs)); });
  const auto all = box.wait_for(1);
  ASSERT_EQ(all.size(), 1u);
  ASSERT_EQ(all[0].size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(all[0][i].value(), i / 4 + 1) << i;
}

TEST(Async, ShutdownWithOperationsInFlightCompletesEachOnce) {
  auto pool = std::make_unique<pool_t>(mtp_test::options(2));
  for (mtp::id_t id = 0; id < 8; ++id) pool->create(id);
  std::atomic<int> completed{0}, answered{0}, stopped{0};
  const int per_thread = 2000;
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        (void)pool->send_async(add{static_cast<mtp::id_t>((t + i) % 8), 1}, [&](mtp::result<int>&& r) {
          completed.fetch_add(1);
          if (r.has_value()) answered.fetch_add(1);
          else if (r.error().code == mtp::errc::pool_stopped) stopped.fetch_add(1);
        });
      }
    });
  }
  pool->shutdown();  // races the senders
  for (auto& s : senders) s.join();
  EXPECT_EQ(completed.load(), 4 * per_thread) << "every operation completes exactly once";
  EXPECT_EQ(answered.load() + stopped.load(), 4 * per_thread);
}

TEST(Async, ThrowingCallbackIsReported) {
  mtp_test::diagnostic_sink sink;
  mtp::pool_options o = mtp_test::options(2);
  o.on_diagnostic = sink.callback();
  pool_t pool(o);
  pool.create(1);
  (void)pool.send_async(add{1, 1}, [](mtp::result<int>&&) { throw std::runtime_error("callback bug"); });
  const auto seen = sink.wait_for(mtp::diagnostic::kind::hook_failed, 1);
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(mtp_test::contains(seen[0].text, "callback bug")) << seen[0].text;
  EXPECT_EQ(pool.send(add{1, 1}), 2) << "the worker carries on";
}

}  // namespace
