// SPDX-License-Identifier: MIT
// Heap allocations per message in steady state, counted by replacing the global operator new
// in this test binary: none for a round trip, a method call, a post of a small request or a
// request awaited with mtp::async, and one for send_async with a callback, on a fresh pool and
// after a burst of 10,000 requests in flight.
#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <coroutine>
#include <exception>

#include "counting_new.hpp"
#include "pool_test_util.hpp"
#include "requests.hpp"

namespace {

using mtp_test::add;
using mtp_test::g_allocations;
using mtp_test::hold;

class counter {
 public:
  explicit counter(mtp::id_t) {}
  int handle(const add& a) { return value_ += a.amount; }
  void handle(const hold& h) { mtp_test::hold_until_released(h); }
  int increment(int by) { return value_ += by; }

 private:
  int value_ = 0;
};
using pool_t = mtp::thread_pool<counter>;

constexpr int k_measured = 2000;
constexpr int k_windows = 5;

// Allocations per call of `f` in steady state: after k_measured calls to warm up, the fewest
// over up to k_windows windows of k_measured calls. The pool's stock of recycled nodes grows
// to what the traffic needs and then stays: how many calls that takes depends on timing (a
// slow Debug worker lags more), so the steady state is the first window without allocations.
// Before that stock could be kept (after a burst), every window allocated about once per call.
template <class F>
double allocations_per_call(F&& f) {
  for (int i = 0; i < k_measured; ++i) f(i);
  double fewest = 1e9;
  for (int w = 0; w < k_windows && fewest != 0.0; ++w) {
    const std::uint64_t before = g_allocations.load(std::memory_order_relaxed);
    for (int i = 0; i < k_measured; ++i) f(i);
    const auto n = static_cast<double>(g_allocations.load(std::memory_order_relaxed) - before);
    fewest = std::min(fewest, n / k_measured);
  }
  return fewest;
}

// 10,000 posts queued behind a held handler, then drained: every one held a node of its own.
void burst(pool_t& pool) {
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(pool.post(add{0, 1}).has_value());
  release.open();
  ASSERT_EQ(MTP_BOUNDED([&] { return pool.send(add{0, 0}); }), 10000);
}

// Where an awaiting coroutine resumes: one handle at a time, handed to the test's thread
// without allocating (an atomic and its wait).
class mailbox {
 public:
  void put(std::coroutine_handle<> h) noexcept {
    // release: the coroutine's state, written before it suspended, goes with the handle.
    handle_.store(h.address(), std::memory_order_release);
    handle_.notify_one();
  }
  std::coroutine_handle<> take() noexcept {
    void* p = nullptr;
    // acquire: pairs with put.
    while ((p = handle_.exchange(nullptr, std::memory_order_acquire)) == nullptr) {
      handle_.wait(nullptr, std::memory_order_acquire);
    }
    return std::coroutine_handle<>::from_address(p);
  }

 private:
  std::atomic<void*> handle_{nullptr};
};
struct to_mailbox {
  mailbox* box;
  void operator()(std::coroutine_handle<> h) const noexcept { box->put(h); }
};

// A coroutine that starts at once and is destroyed by the test.
struct detached {
  struct promise_type {
    detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

// Awaits one request after another; the test resumes it each time (its frame is allocated
// once, when it starts).
detached await_forever(pool_t& pool, mailbox& box, int& added) {
  for (;;) {
    const add req{0, 1};
    (void)co_await mtp::async(pool, req, to_mailbox{&box});
    ++added;
  }
}

void expect_no_allocations(pool_t& pool, const char* when) {
  // The send's request and response are small: nothing but the queue node is needed, and
  // nodes are recycled.
  const int posts_before = pool.send(add{0, 0});
  int added = 0;
  EXPECT_EQ(allocations_per_call([&](int) {
              (void)pool.send(add{0, 1});
              ++added;
            }),
            0.0)
      << "send, " << when;
  EXPECT_EQ(allocations_per_call([&](int) {
              (void)pool.call(0, &counter::increment, 1);
              ++added;
            }),
            0.0)
      << "call, " << when;
  // Posts at a rate the worker keeps up with (a round trip after every 16): a burst that
  // outruns the worker needs a node per queued post, given back once drained.
  EXPECT_EQ(allocations_per_call([&](int i) {
              (void)pool.post(add{0, 1});
              ++added;
              if (i % 16 == 15) (void)pool.send(add{0, 0});
            }),
            0.0)
      << "post, " << when;
  // send_async: the request, its response and the callback share one block, and nothing else.
  std::atomic<int> pending{0};
  EXPECT_LE(allocations_per_call([&](int i) {
              pending.fetch_add(1, std::memory_order_relaxed);
              (void)pool.send_async(add{0, 1}, [&pending](mtp::result<int>&&) {
                pending.fetch_sub(1, std::memory_order_relaxed);
              });
              ++added;
              if (i % 16 == 15) (void)pool.send(add{0, 0});  // keeps pace with the worker
            }),
            1.0)
      << "send_async, " << when;
  (void)pool.send(add{0, 0});
  EXPECT_EQ(pending.load(), 0);
  mailbox box;
  await_forever(pool, box, added);
  EXPECT_EQ(allocations_per_call([&](int) { box.take().resume(); }), 0.0) << "co_await mtp::async, " << when;
  box.take().destroy();  // its last request ran: the coroutine was waiting to be resumed with it
  ++added;
  EXPECT_EQ(pool.send(add{0, 0}), posts_before + added) << "a message was lost";
}

TEST(Allocations, SendCallPostAndAwaitAllocateNothingOnAFreshPool) {
  pool_t pool(mtp_test::options(1));
  pool.create(0);
  expect_no_allocations(pool, "fresh pool");
}

TEST(Allocations, SendCallPostAndAwaitAllocateNothingAfterABurst) {
  pool_t pool(mtp_test::options(1));
  pool.create(0);
  burst(pool);
  if (HasFatalFailure()) return;
  expect_no_allocations(pool, "after a burst of 10,000 requests in flight");
}

}  // namespace
