// SPDX-License-Identifier: MIT
// Heap allocations per mtp::asio::async_send in steady state, counted by replacing the global
// operator new in this test binary, on a fresh pool and after a burst of 10,000 requests in
// flight: a callback bound to the io_context, and use_awaitable in a coroutine. Each request
// allocates the adapter's operation, through the handler's associated allocator, and nothing
// else: the request and its result live in the operation (the pool runs it as a caller-owned
// slot), a completion in bulk allocates nothing, nor does its drain (built in a buffer of the
// io_context's guard). With an associated allocator that recycles (asio::recycling_allocator)
// nothing is allocated. The counts are printed; the test fails above 1 (co_spawn's own
// allocations add a little to use_awaitable's). Before: 4 for use_awaitable, then 3, then 2.
#include <mtp/asio.hpp>
#include <mtp/mtp.hpp>

#include <asio/bind_allocator.hpp>
#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/recycling_allocator.hpp>
#include <asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <system_error>

#include "counting_new.hpp"
#include "pool_test_util.hpp"
#include "requests.hpp"

namespace {

using mtp_test::add;
using mtp_test::g_allocations;

class counter {
 public:
  explicit counter(mtp::id_t) {}
  int handle(const add& a) { return value_ += a.amount; }

 private:
  int value_ = 0;
};
using pool_t = mtp::thread_pool<counter>;

// Allocations per request over `rounds` rounds of `in_flight` starts of `per_start` requests
// each (run to the end on `io`), after as many rounds to warm up; the fewest of three such
// windows.
template <class Start>
double allocations_per_request(asio::io_context& io, int rounds, int in_flight, int per_start, Start&& start) {
  auto round = [&] {
    for (int i = 0; i < in_flight; ++i) start();
    io.restart();
    io.run();  // returns once every completion has run: each holds outstanding work
  };
  for (int r = 0; r < rounds; ++r) round();
  double fewest = 1e9;
  for (int w = 0; w < 3; ++w) {
    const std::uint64_t before = g_allocations.load(std::memory_order_relaxed);
    for (int r = 0; r < rounds; ++r) round();
    const auto n = static_cast<double>(g_allocations.load(std::memory_order_relaxed) - before);
    fewest = std::min(fewest, n / (rounds * in_flight * per_start));
  }
  return fewest;
}

// A completion that sends the next request of a chain, with a recycling allocator.
constexpr int k_chain = 1000;
struct chain_link {
  pool_t* pool;
  asio::io_context* io;
  int* left;
  void operator()(std::error_code ec, int) const {
    EXPECT_FALSE(ec);
    if (--*left > 0) send(*pool, *io, left);
  }
  static void send(pool_t& pool, asio::io_context& io, int* left) {
    mtp::asio::async_send(pool, add{0, 1},
                          asio::bind_allocator(asio::recycling_allocator<void>(),
                                               asio::bind_executor(io, chain_link{&pool, &io, left})));
  }
};

void count(pool_t& pool, const char* when) {
  asio::io_context io(1);
  int completed = 0;
  auto callback = [&] {
    mtp::asio::async_send(pool, add{0, 1}, asio::bind_executor(io, [&completed](std::error_code ec, int) {
                            EXPECT_FALSE(ec);
                            ++completed;
                          }));
  };
  // A coroutine awaits k_per_coroutine requests one after another: co_spawn's own allocations
  // (a few per coroutine) are spread over them.
  constexpr int k_per_coroutine = 200;
  auto coroutine = [&] {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          for (int i = 0; i < k_per_coroutine; ++i) {
            (void)co_await mtp::asio::async_send(pool, add{0, 1}, asio::use_awaitable);
            ++completed;
          }
        },
        asio::detached);
  };
  for (const int in_flight : {1, 64}) {
    const double cb = allocations_per_request(io, 400, in_flight, 1, callback);
    const double co = allocations_per_request(io, 10, in_flight, k_per_coroutine, coroutine);
    std::cout << "async_send, " << when << ", " << in_flight << " in flight: callback " << cb << ", use_awaitable "
              << co << " allocations per request\n";
    EXPECT_LE(cb, 1.0) << "callback, " << in_flight << " in flight, " << when;
    EXPECT_LE(co, 1.1) << "use_awaitable, " << in_flight << " in flight, " << when;
  }
  // A handler whose associated allocator recycles (Asio's per-thread cache, which serves a
  // thread inside io_context::run): each completion starts the next request, k_chain in a row;
  // only the first of each chain, started outside run(), allocates.
  int left = 0;
  auto recycled = [&] {
    left = k_chain;
    chain_link::send(pool, io, &left);
  };
  const double rc = allocations_per_request(io, 4, 1, k_chain, recycled);
  std::cout << "async_send, " << when << ", recycling allocator: " << rc << " allocations per request\n";
  EXPECT_LE(rc, 1.0 / k_chain) << "recycling allocator, " << when;
  EXPECT_GT(completed, 0);
}

TEST(AsioAllocations, AsyncSendOnAFreshPool) {
  pool_t pool(mtp_test::options(1));
  pool.create(0);
  count(pool, "fresh pool");
}

TEST(AsioAllocations, AsyncSendAfterABurst) {
  pool_t pool(mtp_test::options(1));
  pool.create(0);
  {
    asio::io_context io(1);
    int completed = 0;
    for (int i = 0; i < 10000; ++i) {
      mtp::asio::async_send(pool, add{0, 1}, asio::bind_executor(io, [&completed](std::error_code, int) { ++completed; }));
    }
    io.run();
    ASSERT_EQ(completed, 10000);
  }
  count(pool, "after a burst of 10,000 requests in flight");
}

}  // namespace
