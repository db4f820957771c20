// SPDX-License-Identifier: MIT
// The Asio adapter (mtp/asio.hpp): every completion token kind, the error_code and exception
// forms of the completion, responses without a default constructor, completions on the
// handler's executor, outstanding work, allocators, cancellation, shutdown with operations in
// flight.
#include <mtp/asio.hpp>
#include <mtp/mtp.hpp>

#include <asio/bind_allocator.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "pool_test_util.hpp"
#include "requests.hpp"

namespace {

using mtp_test::add;
using mtp_test::fail_now;
using mtp_test::shout;
using mtp_test::k_scale;
using mtp_test::touch;
using hold = mtp_test::basic_hold<int>;  // blocks its worker until released; answers 42

// An exception of the item's own, not derived from std::runtime_error (as mtp::pool_error is).
struct item_refusal : std::exception {
  [[nodiscard]] const char* what() const noexcept override { return "item refusal"; }
};
struct refuse {
  mtp::id_t id;
  using response_type = int;
};

// A response type with no default constructor.
class label {
 public:
  explicit label(std::string text) : text_(std::move(text)) {}
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  std::string text_;
};
static_assert(!std::is_default_constructible_v<label>);
struct name_it {
  mtp::id_t id;
  std::string text;
  using response_type = label;
};
struct refuse_label {
  mtp::id_t id;
  using response_type = label;
};

class item {
 public:
  explicit item(mtp::id_t) {}
  item(mtp::id_t, int start) : total_(start) {  // for the lifecycle operations
    if (start < 0) throw item_refusal();
  }
  int handle(const add& a) { return total_ += a.amount; }
  int handle(const fail_now&) { throw std::runtime_error("refused"); }
  int handle(const refuse&) { throw item_refusal(); }
  static label handle(const name_it& n) { return label("#" + n.text); }
  static label handle(const refuse_label&) { throw item_refusal(); }
  void handle(const touch&) { ++total_; }
  static std::string handle(const shout& s) { return mtp_test::capitals(s.text); }
  int handle(const hold& h) {
    mtp_test::hold_until_released(h);
    return 42;
  }

 private:
  int total_ = 0;
};
using pool_t = mtp::thread_pool<item>;

bool is_aborted(const std::exception_ptr& e) {  // the exception form's operation_aborted
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error& se) {
    return se.code() == asio::error::operation_aborted;
  } catch (...) {
    return false;
  }
}

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
}

// Runs `io` on this thread until it runs out of work (bounded).
void run_bounded(asio::io_context& io) {
  auto deadline = std::chrono::steady_clock::now() + mtp_test::k_bound;
  while (!io.stopped() && std::chrono::steady_clock::now() < deadline) io.run_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(io.stopped()) << "the io_context still had work: a completion is missing";
}

TEST(AsioAdapter, CallbackCompletesOnItsExecutorInOrder) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  asio::io_context io;
  std::vector<int> values;
  int wrong_thread = 0;
  const auto io_thread = std::this_thread::get_id();
  for (int i = 0; i < 200; ++i) {
    mtp::asio::async_send(pool, add{1, 1}, asio::bind_executor(io, [&](std::error_code ec, int v) {
                            EXPECT_FALSE(ec);
                            if (std::this_thread::get_id() != io_thread || mtp::this_worker::is_worker()) ++wrong_thread;
                            values.push_back(v);
                          }));
  }
  run_bounded(io);  // returns only once every completion ran: outstanding work was held
  ASSERT_EQ(values.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(values[i], i + 1);
  EXPECT_EQ(wrong_thread, 0);
}

TEST(AsioAdapter, UnboundCallbackNeverRunsOnAWorker) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  std::promise<bool> on_worker;
  mtp::asio::async_send(pool, add{1, 1},
                        [&](std::error_code, int) { on_worker.set_value(mtp::this_worker::is_worker()); });
  auto f = on_worker.get_future();
  ASSERT_EQ(f.wait_for(mtp_test::k_bound), std::future_status::ready);
  EXPECT_FALSE(f.get()) << "completions go to the system executor, not the worker";
}

TEST(AsioAdapter, UseAwaitableReturnsAndThrowsLikeSend) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  asio::io_context io;
  const auto io_thread = std::this_thread::get_id();
  std::vector<std::string> seen;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 1; i <= 50; ++i) {
          const int v = co_await mtp::asio::async_send(pool, add{1, 1}, asio::use_awaitable);
          EXPECT_EQ(v, i);
          EXPECT_EQ(std::this_thread::get_id(), io_thread);
        }
        try {
          (void)co_await mtp::asio::async_send(pool, fail_now{1}, asio::use_awaitable);
        } catch (const std::runtime_error& e) {
          seen.push_back(e.what());  // the handler's own exception
        }
        try {
          (void)co_await mtp::asio::async_send(pool, add{99, 1}, asio::use_awaitable);
        } catch (const mtp::pool_error& e) {
          seen.push_back(mtp::to_string(e.code()));
        }
        try {  // pool_error is a std::system_error with the mtp code
          (void)co_await mtp::asio::async_send(pool, add{99, 1}, asio::use_awaitable);
        } catch (const std::system_error& e) {
          if (e.code() == mtp::errc::unknown_id) seen.push_back("system_error unknown_id");
        }
        co_await mtp::asio::async_send(pool, touch{1}, asio::use_awaitable);  // void response
        seen.push_back(std::to_string(co_await mtp::asio::async_send(pool, add{1, 0}, asio::use_awaitable)));
        pool.shutdown();
        try {
          (void)co_await mtp::asio::async_send(pool, add{1, 0}, asio::use_awaitable);
        } catch (const mtp::pool_error& e) {
          seen.push_back(mtp::to_string(e.code()));
          EXPECT_EQ(std::this_thread::get_id(), io_thread);
        }
      },
      [&](std::exception_ptr e) {
        if (e) ADD_FAILURE() << "escaped: " << what_of(e);
      });
  run_bounded(io);
  const std::vector<std::string> expected{"refused", "unknown_id", "system_error unknown_id", "51", "pool_stopped"};
  EXPECT_EQ(seen, expected);
}

// g++ 12 frees twice a temporary that owns heap memory when it is written inside a co_await
// expression (README, "Known toolchain issues"). Requests and responses that own heap memory
// go through async_send and async_send_batch, named first as the README says, many times: if
// the adapter's own code relied on that pattern, the g++ ASan+UBSan build would report it.
TEST(AsioAdapter, RequestsAndResponsesOwningHeapMemory) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  pool.create(2);
  asio::io_context io;
  int checked = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 200; ++i) {
          std::string text(40 + i, static_cast<char>('a' + i % 26));  // past any small-string buffer
          const std::string expected = mtp_test::capitals(text);
          shout one{static_cast<mtp::id_t>(1 + i % 2), std::move(text)};
          const std::string got = co_await mtp::asio::async_send(pool, std::move(one), asio::use_awaitable);
          if (got == expected) ++checked;
          std::vector<shout> batch{{1, "first " + expected}, {2, "second " + expected}};
          const auto rs = co_await mtp::asio::async_send_batch(pool, batch, asio::use_awaitable);
          if (rs.size() == 2 && rs[0].value() == "FIRST " + expected && rs[1].value() == "SECOND " + expected) ++checked;
        }
      },
      [&](std::exception_ptr e) {
        if (e) ADD_FAILURE() << "escaped: " << what_of(e);
      });
  run_bounded(io);
  EXPECT_EQ(checked, 400);
}

TEST(AsioAdapter, UseFuture) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  std::future<int> ok = mtp::asio::async_send(pool, add{1, 7}, asio::use_future);
  std::future<int> bad = mtp::asio::async_send(pool, fail_now{1}, asio::use_future);
  std::future<void> nothing = mtp::asio::async_send(pool, touch{1}, asio::use_future);
  std::future<std::vector<mtp::result<int>>> many =
      mtp::asio::async_send_batch(pool, std::vector<add>{{1, 1}, {2, 1}}, asio::use_future);
  ASSERT_EQ(ok.wait_for(mtp_test::k_bound), std::future_status::ready);
  EXPECT_EQ(ok.get(), 7);
  ASSERT_EQ(bad.wait_for(mtp_test::k_bound), std::future_status::ready);
  EXPECT_THROW((void)bad.get(), std::runtime_error);
  ASSERT_EQ(nothing.wait_for(mtp_test::k_bound), std::future_status::ready);
  EXPECT_NO_THROW(nothing.get());
  ASSERT_EQ(many.wait_for(mtp_test::k_bound), std::future_status::ready);
  const auto rs = many.get();
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].value(), 9);
  EXPECT_EQ(rs[1].error().code, mtp::errc::unknown_id);
}

TEST(AsioAdapter, DeferredStartsOnlyWhenLaunched) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  asio::io_context io;
  auto op = mtp::asio::async_send(pool, add{1, 5}, asio::experimental::deferred);
  EXPECT_EQ(pool.send(add{1, 0}), 0) << "nothing sent before launch";
  int got = 0;
  std::move(op)(asio::bind_executor(io, [&](std::error_code ec, int v) {
    EXPECT_FALSE(ec);
    got = v;
  }));
  auto batch_op = mtp::asio::async_send_batch(pool, std::vector<add>{{1, 1}, {1, 1}}, asio::experimental::deferred);
  std::vector<int> batch_values;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto rs = co_await std::move(batch_op)(asio::use_awaitable);
        for (auto& r : rs) batch_values.push_back(r.value());
      },
      asio::detached);
  run_bounded(io);
  EXPECT_EQ(got, 5);
  EXPECT_EQ(batch_values, (std::vector<int>{6, 7}));
}

TEST(AsioAdapter, BatchInRequestOrderOnTheExecutor) {
  pool_t pool(mtp_test::options(2));
  for (mtp::id_t id = 0; id < 4; ++id) pool.create(id);
  asio::io_context io;
  const auto io_thread = std::this_thread::get_id();
  std::vector<mtp::result<int>> got;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        std::vector<add> requests;
        for (int i = 0; i < 100; ++i) requests.push_back({static_cast<mtp::id_t>(i % 4), 1});
        got = co_await mtp::asio::async_send_batch(pool, requests, asio::use_awaitable);
        EXPECT_EQ(std::this_thread::get_id(), io_thread);
      },
      asio::detached);
  run_bounded(io);
  ASSERT_EQ(got.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[i].value(), i / 4 + 1) << i;
}

// A counting allocator: every byte the adapter takes through it is given back.
struct alloc_counts {
  std::atomic<int> allocations{0}, live{0};
};
template <class T>
struct counting_allocator {
  using value_type = T;
  alloc_counts* counts;
  explicit counting_allocator(alloc_counts* c) noexcept : counts(c) {}
  template <class U>
  counting_allocator(const counting_allocator<U>& o) noexcept : counts(o.counts) {}  // NOLINT
  T* allocate(std::size_t n) {
    counts->allocations.fetch_add(1);
    counts->live.fetch_add(1);
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    counts->live.fetch_sub(1);
    std::allocator<T>().deallocate(p, n);
  }
  template <class U>
  bool operator==(const counting_allocator<U>& o) const noexcept { return counts == o.counts; }
};

TEST(AsioAdapter, UsesTheAssociatedAllocator) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  asio::io_context io;
  alloc_counts counts;
  int got = 0;
  mtp::asio::async_send(pool, add{1, 3},
                        asio::bind_executor(io, asio::bind_allocator(counting_allocator<char>(&counts),
                                                                     [&](std::error_code, int v) { got = v; })));
  run_bounded(io);
  EXPECT_EQ(got, 3);
  EXPECT_GE(counts.allocations.load(), 1);
  EXPECT_EQ(counts.live.load(), 0);
}

TEST(AsioAdapter, CancelBeforeStartAbortsAndSkips) {
  pool_t pool(mtp_test::options(2));
  pool.create(0);
  pool.create(2);  // same worker as 0
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  asio::io_context io;
  asio::cancellation_signal single_signal, batch_signal;
  asio::cancellation_signal awaited_signal;
  std::error_code single_error, batch_error;
  std::exception_ptr awaited_error;
  std::vector<mtp::result<int>> batch_results;
  int calls = 0;
  mtp::asio::async_send(pool, add{2, 5},
                        asio::bind_cancellation_slot(single_signal.slot(),
                                                     asio::bind_executor(io, [&](std::error_code ec, int v) {
                                                       single_error = ec;
                                                       EXPECT_EQ(v, 0);
                                                       ++calls;
                                                     })));
  mtp::asio::async_send_batch(
      pool, std::vector<add>{{2, 1}, {2, 2}},
      asio::bind_cancellation_slot(batch_signal.slot(),
                                   asio::bind_executor(io, [&](std::error_code ec, std::vector<mtp::result<int>> rs) {
                                     batch_error = ec;
                                     batch_results = std::move(rs);
                                     ++calls;
                                   })));
  // A throwing token bound to a slot: the exception form, system_error(operation_aborted).
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        (void)co_await mtp::asio::async_send(pool, add{2, 7},
                                             asio::bind_cancellation_slot(awaited_signal.slot(), asio::use_awaitable));
        ADD_FAILURE() << "a cancelled co_await returned";
      },
      [&](std::exception_ptr e) {
        awaited_error = e;
        ++calls;
      });
  asio::post(io, [&] {  // emitted on the handlers' executor, as Asio requires, after the
                        // coroutine has started its request (both are queued on io in order)
    single_signal.emit(asio::cancellation_type::terminal);
    batch_signal.emit(asio::cancellation_type::partial);
    awaited_signal.emit(asio::cancellation_type::terminal);
    release.open();
  });
  run_bounded(io);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(single_error, asio::error::operation_aborted);
  EXPECT_EQ(batch_error, asio::error::operation_aborted);
  EXPECT_TRUE(is_aborted(awaited_error));
  ASSERT_EQ(batch_results.size(), 2u);
  for (auto& r : batch_results) EXPECT_EQ(r.error().code, mtp::errc::cancelled);
  EXPECT_EQ(pool.send(add{2, 0}), 0) << "a cancelled request ran";
}

// Total cancellation promises no side effect: a request that has started is not abandoned.
TEST(AsioAdapter, TotalCancellationWhileRunningDeliversTheResult) {
  pool_t pool(mtp_test::options(2));
  pool.create(0);
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  asio::io_context io;
  asio::cancellation_signal signal;
  std::error_code error;
  int value = 0, calls = 0;
  mtp::asio::async_send(pool, hold{0, &started, &release},
                        asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(io, [&](std::error_code ec, int v) {
                                                       error = ec;
                                                       value = v;
                                                       ++calls;
                                                     })));
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  asio::post(io, [&] {
    signal.emit(asio::cancellation_type::total);
    release.open();
  });
  run_bounded(io);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(error);
  EXPECT_EQ(value, 42) << "a request that started finishes and its response is delivered";
}

TEST(AsioAdapter, CancelAfterCompletionIsHarmless) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  asio::io_context io;
  asio::cancellation_signal signal;
  int value = 0;
  mtp::asio::async_send(pool, add{1, 2},
                        asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(io, [&](std::error_code, int v) {
                                                       value = v;
                                                       signal.emit(asio::cancellation_type::terminal);  // slot cleared
                                                     })));
  run_bounded(io);
  EXPECT_EQ(value, 2);
}

TEST(AsioAdapter, ShutdownWithOperationsInFlightCompletesEachOnce) {
  auto pool = std::make_unique<pool_t>(mtp_test::options(2));
  for (mtp::id_t id = 0; id < 8; ++id) pool->create(id);
  asio::io_context io;
  const auto io_thread = std::this_thread::get_id();
  const int n = 4000 / k_scale;
  int completed = 0, answered = 0, stopped = 0, wrong_thread = 0;
  std::thread stopper([&] { pool->shutdown(); });  // races the sends
  mtp_test::join_on_exit joiner(stopper);           // also when a send throws
  for (int i = 0; i < n; ++i) {
    mtp::asio::async_send(*pool, add{static_cast<mtp::id_t>(i % 8), 1},
                          asio::bind_executor(io, [&](std::error_code ec, int) {
                            ++completed;
                            if (std::this_thread::get_id() != io_thread) ++wrong_thread;
                            if (!ec) ++answered;
                            else if (ec == mtp::errc::pool_stopped) ++stopped;
                          }));
  }
  stopper.join();
  pool.reset();  // destroyed with completions still queued on the io_context
  run_bounded(io);
  EXPECT_EQ(completed, n) << "every operation completes exactly once";
  EXPECT_EQ(answered + stopped, n);
  EXPECT_EQ(wrong_thread, 0);
}

TEST(AsioAdapter, ThousandsOfConcurrentCoroutines) {
  pool_t pool(mtp_test::options(4));
  const mtp::id_t items = 64;
  for (mtp::id_t id = 0; id < items; ++id) pool.create(id);
  asio::io_context io(1);
  const auto io_thread = std::this_thread::get_id();
  const int coroutines = 5000 / k_scale, steps = 10;
  int finished = 0, wrong_thread = 0;
  for (int c = 0; c < coroutines; ++c) {
    asio::co_spawn(
        io,
        [&, c]() -> asio::awaitable<void> {
          for (int s = 0; s < steps; ++s) {
            (void)co_await mtp::asio::async_send(pool, add{static_cast<mtp::id_t>((c + s) % items), 1},
                                                 asio::use_awaitable);
            if (std::this_thread::get_id() != io_thread) ++wrong_thread;
          }
          ++finished;
        },
        asio::detached);
  }
  run_bounded(io);
  EXPECT_EQ(finished, coroutines);
  EXPECT_EQ(wrong_thread, 0);
  int total = 0;
  for (mtp::id_t id = 0; id < items; ++id) total += pool.send(add{id, 0});
  EXPECT_EQ(total, coroutines * steps);
}

TEST(AsioAdapter, OutstandingWorkKeepsRunAlive) {
  pool_t pool(mtp_test::options(2));
  pool.create(0);
  mtp_test::gate started, release, running;
  asio::io_context io;
  std::atomic<bool> completed{false};
  std::thread runner;
  mtp_test::join_on_exit joiner(runner);
  mtp_test::open_on_exit releaser(release);  // after the joiner: opens first, so that run() can end
  mtp::asio::async_send(pool, hold{0, &started, &release},
                        asio::bind_executor(io, [&](std::error_code, int) { completed = true; }));
  asio::post(io, [&] { running.open(); });  // runs once the runner is inside run()
  runner = std::thread([&] { io.run(); });  // would return at once without outstanding work
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  ASSERT_TRUE(running.wait_for(mtp_test::k_bound));
  // A window in which run() would return if the operation were not outstanding work.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(io.stopped());
  release.open();
  runner.join();
  EXPECT_TRUE(completed.load());
}

// Asio's convention: the error_code first, so that redirect_error catches a pool error instead
// of letting it throw.
TEST(AsioAdapter, RedirectErrorSetsTheCodeAndDoesNotThrow) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  asio::io_context io;
  std::vector<std::string> seen;
  const std::vector<add> requests{{1, 1}, {99, 1}};  // outside: g++ 12 rejects a braced list in a coroutine
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        std::error_code ec;
        const int unknown = co_await mtp::asio::async_send(pool, add{99, 1}, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == mtp::errc::unknown_id && &ec.category() == &mtp::error_category() && unknown == 0) {
          seen.push_back("unknown_id");
        }
        const int failed = co_await mtp::asio::async_send(pool, fail_now{1}, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == mtp::errc::handler_failed && failed == 0) seen.push_back("handler_failed");
        const int ok = co_await mtp::asio::async_send(pool, add{1, 4}, asio::redirect_error(asio::use_awaitable, ec));
        if (!ec && ok == 4) seen.push_back("4");
        co_await mtp::asio::async_send(pool, touch{7}, asio::redirect_error(asio::use_awaitable, ec));  // void
        if (ec == mtp::errc::unknown_id) seen.push_back("void unknown_id");
        const auto rs = co_await mtp::asio::async_send_batch(pool, requests, asio::redirect_error(asio::use_awaitable, ec));
        if (!ec && rs.size() == 2 && rs[0].value() == 5 && rs[1].error().code == mtp::errc::unknown_id) {
          seen.push_back("batch");
        }
        pool.shutdown();
        (void)co_await mtp::asio::async_send(pool, add{1, 1}, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == mtp::errc::pool_stopped) seen.push_back("pool_stopped");
      },
      [&](std::exception_ptr e) {
        if (e) ADD_FAILURE() << "redirect_error let an exception through: " << what_of(e);
      });
  run_bounded(io);
  const std::vector<std::string> expected{"unknown_id", "handler_failed", "4", "void unknown_id", "batch", "pool_stopped"};
  EXPECT_EQ(seen, expected);
}

TEST(AsioAdapter, AsTupleYieldsTheCodeAndTheValue) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  asio::io_context io;
  int checked = 0;
  const std::vector<add> one{{1, 1}};  // outside: g++ 12 rejects a braced list in a coroutine
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto [ec, v] = co_await mtp::asio::async_send(pool, add{99, 1}, asio::experimental::as_tuple(asio::use_awaitable));
        static_assert(std::is_same_v<decltype(ec), std::error_code>);
        static_assert(std::is_same_v<decltype(v), int>);
        if (ec == mtp::errc::unknown_id && v == 0) ++checked;
        auto [ok_ec, ok] = co_await mtp::asio::async_send(pool, add{1, 3}, asio::experimental::as_tuple(asio::use_awaitable));
        if (!ok_ec && ok == 3) ++checked;
        auto [void_ec] = co_await mtp::asio::async_send(pool, touch{1}, asio::experimental::as_tuple(asio::use_awaitable));
        static_assert(std::is_same_v<decltype(void_ec), std::error_code>);
        if (!void_ec) ++checked;
        auto [batch_ec, rs] = co_await mtp::asio::async_send_batch(pool, one, asio::experimental::as_tuple(asio::use_awaitable));
        static_assert(std::is_same_v<decltype(batch_ec), std::error_code>);
        if (!batch_ec && rs.size() == 1 && rs[0].value() == 5) ++checked;  // 3, touch, 1
      },
      [&](std::exception_ptr e) {
        if (e) ADD_FAILURE() << "escaped: " << what_of(e);
      });
  run_bounded(io);
  EXPECT_EQ(checked, 4);
}

// The tokens that throw get the item's own exception, as itself; every other form gets
// errc::handler_failed.
TEST(AsioAdapter, ItemExceptionReachesThrowingTokensAsItself) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  static_assert(mtp::asio::is_throwing_token_v<decltype(asio::use_awaitable)>);
  static_assert(mtp::asio::is_throwing_token_v<decltype(asio::use_future)>);
  static_assert(!mtp::asio::is_throwing_token_v<decltype(asio::detached)>);
  asio::io_context io;
  static_assert(mtp::asio::is_throwing_token_v<decltype(asio::bind_executor(io, asio::use_future))>);
  std::vector<std::string> seen;
  const std::vector<refuse> refusals(1, refuse{1});
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          (void)co_await mtp::asio::async_send(pool, refuse{1}, asio::use_awaitable);
        } catch (const item_refusal& e) {
          seen.push_back(e.what());
        }
        asio::cancellation_signal signal;  // a bound throwing token throws as well
        try {
          (void)co_await mtp::asio::async_send(pool, refuse{1}, asio::bind_cancellation_slot(signal.slot(), asio::use_awaitable));
        } catch (const item_refusal& e) {
          seen.push_back(std::string("bound ") + e.what());
        }
        try {
          (void)co_await mtp::asio::async_send_batch(pool, refusals, asio::use_awaitable);
          seen.push_back("batch did not throw");  // its results keep the exception
        } catch (...) {
          seen.push_back("batch threw");
        }
      },
      [&](std::exception_ptr e) {
        if (e) ADD_FAILURE() << "escaped: " << what_of(e);
      });
  std::error_code callback_ec;
  mtp::asio::async_send(pool, refuse{1}, asio::bind_executor(io, [&](std::error_code ec, int) { callback_ec = ec; }));
  run_bounded(io);
  const std::vector<std::string> expected{"item refusal", "bound item refusal", "batch did not throw"};
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(callback_ec, mtp::errc::handler_failed);

  std::future<int> refused = mtp::asio::async_send(pool, refuse{1}, asio::use_future);
  ASSERT_EQ(refused.wait_for(mtp_test::k_bound), std::future_status::ready);
  EXPECT_THROW((void)refused.get(), item_refusal);
  std::future<int> unknown = mtp::asio::async_send(pool, add{99, 1}, asio::use_future);
  ASSERT_EQ(unknown.wait_for(mtp_test::k_bound), std::future_status::ready);
  // Only its type is checked: use_future completes on Asio's system executor, whose thread may
  // free the exception after this one has read it, through a reference count that libstdc++
  // keeps out of ThreadSanitizer's sight (the tests with use_awaitable check the code).
  EXPECT_THROW((void)unknown.get(), mtp::pool_error);
}

TEST(AsioAdapter, ResponseWithoutDefaultConstructor) {
  static_assert(std::is_same_v<mtp::asio::send_value_t<label>, std::optional<label>>);
  static_assert(std::is_same_v<mtp::asio::send_value_t<int>, int>);
  static_assert(std::is_same_v<mtp::asio::send_signature<label>, void(std::error_code, std::optional<label>)>);
  static_assert(std::is_same_v<mtp::asio::throwing_send_signature<label>, void(std::exception_ptr, std::optional<label>)>);
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  asio::io_context io;
  std::vector<std::string> callbacks;  // in completion order: the unknown id completes first
  mtp::asio::async_send(pool, name_it{1, "a"}, asio::bind_executor(io, [&](std::error_code ec, std::optional<label> v) {
                          if (!ec && v) callbacks.push_back("#a");
                        }));
  mtp::asio::async_send(pool, name_it{99, "b"}, asio::bind_executor(io, [&](std::error_code ec, std::optional<label> v) {
                          if (ec == mtp::errc::unknown_id && !v) callbacks.push_back("unknown_id");
                        }));
  mtp::asio::async_send(pool, refuse_label{1}, asio::bind_executor(io, [&](std::error_code ec, std::optional<label> v) {
                          if (ec == mtp::errc::handler_failed && !v) callbacks.push_back("handler_failed");
                        }));
  run_bounded(io);
  std::sort(callbacks.begin(), callbacks.end());
  EXPECT_EQ(callbacks, (std::vector<std::string>{"#a", "handler_failed", "unknown_id"}));
  io.restart();
  std::vector<std::string> seen;
  const std::vector<name_it> names{{1, "e"}, {99, "f"}};  // outside: g++ 12 rejects a braced list in a coroutine
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // Requests owning heap memory are named before co_await (README, "Known toolchain issues").
        name_it c{1, "c"};
        const std::optional<label> v = co_await mtp::asio::async_send(pool, std::move(c), asio::use_awaitable);
        if (v) seen.push_back("awaited " + v->text());
        try {
          (void)co_await mtp::asio::async_send(pool, refuse_label{1}, asio::use_awaitable);
        } catch (const item_refusal&) {
          seen.push_back("awaited item_refusal");
        }
        try {
          (void)co_await mtp::asio::async_send(pool, refuse_label{99}, asio::use_awaitable);
        } catch (const mtp::pool_error& e) {
          seen.push_back(std::string("awaited ") + mtp::to_string(e.code()));
        }
        std::error_code ec;
        name_it d{99, "d"};
        const auto r = co_await mtp::asio::async_send(pool, std::move(d), asio::redirect_error(asio::use_awaitable, ec));
        if (ec == mtp::errc::unknown_id && !r) seen.push_back("redirected unknown_id");
        const auto rs = co_await mtp::asio::async_send_batch(pool, names, asio::use_awaitable);
        if (rs.size() == 2 && rs[0].value().text() == "#e" && rs[1].error().code == mtp::errc::unknown_id) {
          seen.push_back("batch");
        }
      },
      [&](std::exception_ptr e) {
        if (e) ADD_FAILURE() << "escaped: " << what_of(e);
      });
  run_bounded(io);
  std::future<std::optional<label>> f = mtp::asio::async_send(pool, name_it{1, "g"}, asio::use_future);
  ASSERT_EQ(f.wait_for(mtp_test::k_bound), std::future_status::ready);
  const std::optional<label> g = f.get();
  ASSERT_TRUE(g.has_value());
  seen.push_back("future " + g->text());
  const std::vector<std::string> expected{"awaited #c",           "awaited item_refusal", "awaited unknown_id",
                                          "redirected unknown_id", "batch",                "future #g"};
  EXPECT_EQ(seen, expected);
}

TEST(AsioAdapter, LifecycleThroughCallbacks) {
  static_assert(std::is_same_v<mtp::asio::create_signature, void(std::error_code)>);
  static_assert(std::is_same_v<mtp::asio::remove_signature, void(std::error_code, bool)>);
  pool_t pool(mtp_test::options(2));
  asio::io_context io;
  std::vector<std::string> seen;  // in completion order: one sender, one worker for ids 4 and 6
  auto note = [&](std::string what) { return [&seen, what](std::error_code ec) { seen.push_back(what + ":" + ec.message()); }; };
  const auto ok = std::error_code().message();
  mtp::asio::async_create(pool, mtp::make_create(4, 10), asio::bind_executor(io, note("create")));
  mtp::asio::async_create(pool, mtp::make_create(4, 1), asio::bind_executor(io, [&](std::error_code ec) {
                            EXPECT_EQ(ec, mtp::errc::duplicate_id);
                            seen.push_back("duplicate");
                          }));
  mtp::asio::async_create(pool, mtp::make_create(6, -1), asio::bind_executor(io, [&](std::error_code ec) {
                            EXPECT_EQ(ec, mtp::errc::constructor_failed);
                            seen.push_back("constructor_failed");
                          }));
  run_bounded(io);
  ASSERT_EQ(seen.size(), 3u);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"constructor_failed", "create:" + ok, "duplicate"}));
  EXPECT_EQ(pool.send(add{4, 1}), 11) << "the item was built from the create's arguments";
  EXPECT_FALSE(pool.remove(6)) << "no such item";

  io.restart();
  int removed = 0, unknown = 0;
  mtp::asio::async_remove(pool, 4, asio::bind_executor(io, [&](std::error_code ec, bool existed) {
                            EXPECT_FALSE(ec);
                            if (existed) ++removed;
                          }));
  mtp::asio::async_remove(pool, 77, asio::bind_executor(io, [&](std::error_code ec, bool existed) {
                            EXPECT_FALSE(ec) << "an unknown id is no failure: false, as remove returns";
                            if (!existed) ++unknown;
                          }));
  std::vector<mtp::result<void>> created, gone;
  std::vector<mtp::create_request<int>> batch{mtp::make_create(8, 1), mtp::make_create(9, -1), mtp::make_create(8, 2)};
  mtp::asio::async_create_batch(pool, batch, asio::bind_executor(io, [&](std::error_code ec, std::vector<mtp::result<void>> rs) {
                                  EXPECT_FALSE(ec);
                                  created = std::move(rs);
                                }));
  run_bounded(io);
  io.restart();
  mtp::asio::async_remove_batch(pool, std::vector<mtp::id_t>{8, 99}, asio::bind_executor(io, [&](std::error_code ec, std::vector<mtp::result<void>> rs) {
                                  EXPECT_FALSE(ec);
                                  gone = std::move(rs);
                                }));
  run_bounded(io);
  EXPECT_EQ(removed, 1);
  EXPECT_EQ(unknown, 1);
  EXPECT_FALSE(pool.remove(4)) << "no such item";
  ASSERT_EQ(created.size(), 3u);
  EXPECT_TRUE(created[0].has_value());
  EXPECT_EQ(created[1].error().code, mtp::errc::constructor_failed);
  EXPECT_EQ(created[2].error().code, mtp::errc::duplicate_id);
  ASSERT_EQ(gone.size(), 2u);
  EXPECT_TRUE(gone[0].has_value());
  EXPECT_EQ(gone[1].error().code, mtp::errc::unknown_id);
  EXPECT_FALSE(pool.remove(8)) << "no such item";

  // Failures of the pool itself, and every completion still on the executor.
  pool.shutdown();
  io.restart();
  int stopped = 0;
  mtp::asio::async_create(pool, mtp::make_create(1, 0), asio::bind_executor(io, [&](std::error_code ec) {
                            if (ec == mtp::errc::pool_stopped) ++stopped;
                          }));
  mtp::asio::async_remove(pool, 1, asio::bind_executor(io, [&](std::error_code ec, bool existed) {
                            if (ec == mtp::errc::pool_stopped && !existed) ++stopped;
                          }));
  mtp::asio::async_remove_batch(pool, std::vector<mtp::id_t>{1}, asio::bind_executor(io, [&](std::error_code ec, std::vector<mtp::result<void>> rs) {
                                  if (!ec && rs.size() == 1 && rs[0].error().code == mtp::errc::pool_stopped) ++stopped;
                                }));
  run_bounded(io);
  EXPECT_EQ(stopped, 3);
}

TEST(AsioAdapter, LifecycleThroughUseAwaitable) {
  pool_t pool(mtp_test::options(2));
  asio::io_context io;
  std::vector<std::string> seen;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await mtp::asio::async_create(pool, mtp::make_create(3, 5), asio::use_awaitable);
        seen.push_back("created " + std::to_string(co_await mtp::asio::async_send(pool, add{3, 1}, asio::use_awaitable)));
        try {
          co_await mtp::asio::async_create(pool, mtp::make_create(3, 0), asio::use_awaitable);
        } catch (const mtp::pool_error& e) {
          seen.push_back(mtp::to_string(e.code()));
        }
        try {
          co_await mtp::asio::async_create(pool, mtp::make_create(5, -1), asio::use_awaitable);
        } catch (const item_refusal&) {
          seen.push_back("the constructor's own exception");
        }
        std::error_code ec;
        co_await mtp::asio::async_create(pool, mtp::make_create(3, 0), asio::redirect_error(asio::use_awaitable, ec));
        if (ec == mtp::errc::duplicate_id) seen.push_back("redirected duplicate_id");
        const bool removed = co_await mtp::asio::async_remove(pool, 3, asio::use_awaitable);
        const bool again = co_await mtp::asio::async_remove(pool, 3, asio::use_awaitable);
        seen.push_back(std::string("removed ") + (removed ? "true" : "false") + " then " + (again ? "true" : "false"));
        std::vector<mtp::create_request<int>> creates{mtp::make_create(6, 1), mtp::make_create(7, -1)};
        const auto made = co_await mtp::asio::async_create_batch(pool, creates, asio::use_awaitable);
        if (made.size() == 2 && made[0].has_value() && made[1].error().code == mtp::errc::constructor_failed) {
          seen.push_back("create batch");
        }
        const std::vector<mtp::id_t> ids{6, 7};
        const auto removed_batch = co_await mtp::asio::async_remove_batch(pool, ids, asio::use_awaitable);
        if (removed_batch.size() == 2 && removed_batch[0].has_value() &&
            removed_batch[1].error().code == mtp::errc::unknown_id) {
          seen.push_back("remove batch");
        }
      },
      [&](std::exception_ptr e) {
        if (e) ADD_FAILURE() << "escaped: " << what_of(e);
      });
  run_bounded(io);
  const std::vector<std::string> expected{"created 6",      "duplicate_id", "the constructor's own exception",
                                          "redirected duplicate_id", "removed true then false", "create batch",
                                          "remove batch"};
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(pool.stats().workers[0].items + pool.stats().workers[1].items, 0u);
}

// Runs `io` until `done()` holds (bounded); returns whether it did.
template <class Done>
bool run_until(asio::io_context& io, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + mtp_test::k_bound;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_one_for(std::chrono::milliseconds(50));
  }
  return done();
}

TEST(AsioAdapter, TerminalCancellationCompletesAtOnceWhileTheWorkerIsBusy) {
  pool_t pool(mtp_test::options(2));
  pool.create(0);
  pool.create(2);  // same worker as 0 (and 4)
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  asio::io_context io;
  asio::cancellation_signal running_signal, send_signal, create_signal, remove_signal, awaited_signal;
  std::vector<std::string> seen;  // what completed before the worker was released
  auto aborted = [&](const char* what) {
    return [&seen, what](std::error_code ec, auto&&...) {
      if (ec == asio::error::operation_aborted) seen.emplace_back(what);
      else seen.emplace_back(std::string(what) + " completed with " + ec.message());
    };
  };
  // Started: the worker holds it until the gate opens; its result is dropped.
  mtp::asio::async_send(pool, hold{0, &started, &release},
                        asio::bind_cancellation_slot(running_signal.slot(), asio::bind_executor(io, aborted("running"))));
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  // Queued behind it: skipped when the worker reaches them.
  mtp::asio::async_send(pool, add{2, 5},
                        asio::bind_cancellation_slot(send_signal.slot(), asio::bind_executor(io, aborted("send"))));
  mtp::asio::async_create(pool, mtp::make_create(4, 1),
                          asio::bind_cancellation_slot(create_signal.slot(), asio::bind_executor(io, aborted("create"))));
  mtp::asio::async_remove(pool, 2,
                          asio::bind_cancellation_slot(remove_signal.slot(), asio::bind_executor(io, aborted("remove"))));
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          (void)co_await mtp::asio::async_send(pool, add{2, 7},
                                               asio::bind_cancellation_slot(awaited_signal.slot(), asio::use_awaitable));
          seen.emplace_back("awaited returned");
        } catch (const std::system_error& e) {
          if (e.code() == asio::error::operation_aborted) seen.emplace_back("awaited");
        }
        // 'Wait for one': an expired timer wins and the send is cancelled (terminal).
        using namespace asio::experimental::awaitable_operators;
        asio::steady_timer expired(io, std::chrono::steady_clock::time_point{});
        const auto first = co_await (mtp::asio::async_send(pool, add{2, 9}, asio::use_awaitable) ||
                                     expired.async_wait(asio::use_awaitable));
        seen.emplace_back(first.index() == 1 ? "timer won" : "send won");
      },
      asio::detached);
  asio::post(io, [&] {  // on the handlers' executor, after the coroutine has started its request
    running_signal.emit(asio::cancellation_type::terminal);
    send_signal.emit(asio::cancellation_type::terminal);
    create_signal.emit(asio::cancellation_type::partial);
    remove_signal.emit(asio::cancellation_type::terminal);
    awaited_signal.emit(asio::cancellation_type::terminal);
  });
  const bool all = run_until(io, [&] { return seen.size() == 6; });
  EXPECT_TRUE(all) << "a cancelled operation waited for its busy worker";
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"awaited", "create", "remove", "running", "send", "timer won"}));
  release.open();
  EXPECT_EQ(pool.send(add{2, 0}), 0) << "a cancelled request ran";
  EXPECT_TRUE(pool.remove(2)) << "a cancelled remove ran";
  EXPECT_FALSE(pool.remove(4)) << "a cancelled create ran";
  run_bounded(io);  // nothing else completes: each handler ran exactly once
  EXPECT_EQ(seen.size(), 6u);
}

// A request abandoned by a terminal cancellation lives in its operation, which the worker still
// holds: the io_context may go first, and the worker frees the operation when it is done (ASan
// checks that nothing is touched after, and nothing leaks).
TEST(AsioAdapter, AnAbandonedRequestMayOutliveItsIoContext) {
  pool_t pool(mtp_test::options(2));
  pool.create(0);
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  {
    asio::io_context io;
    asio::cancellation_signal signal;
    bool aborted = false;
    mtp::asio::async_send(pool, hold{0, &started, &release},
                          asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(io, [&](std::error_code ec, auto&&...) {
                                                         aborted = ec == asio::error::operation_aborted;
                                                       })));
    ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
    asio::post(io, [&] { signal.emit(asio::cancellation_type::terminal); });
    EXPECT_TRUE(run_until(io, [&] { return aborted; })) << "the cancelled request did not complete at once";
  }  // the io_context goes while the worker still runs the request
  release.open();
  EXPECT_EQ(pool.send(add{0, 1}), 1);  // after the held request, and its operation freed
}

// Completions for an io_context's own executor travel in bulk: every completion queued while
// the context did not run comes back through one executor post (one drain), in the order the
// pool completed them. The worker is held while the coroutines start (so that nothing
// completes inside poll()); `pool.send` to the same worker afterwards returns only once the
// worker has passed every earlier request to its completion.
TEST(AsioAdapter, CompletionsForAnIoContextRunFromOneDrain) {
  pool_t pool(mtp_test::options(2));
  pool.create(0);
  pool.create(2);  // same worker as 0
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  asio::io_context io;
  std::vector<int> values;
  int resumed = 0;
  constexpr int k_callbacks = 500, k_coroutines = 100;
  for (int i = 0; i < k_callbacks; ++i) {
    mtp::asio::async_send(pool, add{2, 1}, asio::bind_executor(io, [&](std::error_code ec, int v) {
                            EXPECT_FALSE(ec);
                            values.push_back(v);
                          }));
  }
  for (int i = 0; i < k_coroutines; ++i) {  // use_awaitable: the coroutine's any_io_executor
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          (void)co_await mtp::asio::async_send(pool, add{2, 0}, asio::use_awaitable);
          ++resumed;
        },
        asio::detached);
  }
  io.poll();  // the coroutines start their requests
  ASSERT_TRUE(values.empty());
  release.open();
  pool.send(add{2, 0});  // every completion above is queued on the context
  EXPECT_EQ(io.run_one(), 1u);  // one handler: the drain
  ASSERT_EQ(values.size(), static_cast<std::size_t>(k_callbacks));
  for (int i = 0; i < k_callbacks; ++i) EXPECT_EQ(values[i], i + 1);
  EXPECT_EQ(resumed, k_coroutines);
  run_bounded(io);
}

// A handler that throws leaves io_context::run() as with any handler; the rest of its drain
// runs on the next run(), each exactly once, in order.
TEST(AsioAdapter, AThrowingHandlerLeavesTheRestOfItsDrainToTheNextRun) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  asio::io_context io;
  std::vector<int> values;
  for (int i = 0; i < 50; ++i) {
    mtp::asio::async_send(pool, add{1, 1}, asio::bind_executor(io, [&](std::error_code, int v) {
                            values.push_back(v);
                            if (v == 10) throw std::runtime_error("handler");
                          }));
  }
  pool.send(add{1, 0});
  EXPECT_THROW(io.run(), std::runtime_error);
  EXPECT_EQ(values.size(), 10u);
  io.restart();
  run_bounded(io);
  ASSERT_EQ(values.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(values[i], i + 1);
}

// Completions queued for a drain that never runs: the context's destructor destroys their
// handlers (and nothing leaks, which AddressSanitizer checks).
TEST(AsioAdapter, IoContextDestroyedWithCompletionsQueued) {
  pool_t pool(mtp_test::options(2));
  pool.create(0);
  pool.create(2);  // same worker as 0
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  auto io = std::make_unique<asio::io_context>();
  auto alive = std::make_shared<int>(0);
  const std::weak_ptr<int> watch = alive;
  int ran = 0;
  for (int i = 0; i < 20; ++i) {
    mtp::asio::async_send(pool, add{2, 1}, asio::bind_executor(*io, [&ran, alive](std::error_code, int) { ++ran; }));
  }
  asio::co_spawn(
      *io,
      [&ran, &pool, alive]() -> asio::awaitable<void> {
        (void)co_await mtp::asio::async_send(pool, add{2, 1}, asio::use_awaitable);
        ++ran;
      },
      asio::detached);
  io->poll();  // the coroutine starts its request; the worker is held, so nothing completes
  release.open();
  pool.send(add{2, 0});  // all 21 completions are queued on the context
  alive.reset();
  EXPECT_FALSE(watch.expired());
  io.reset();
  EXPECT_TRUE(watch.expired()) << "a queued completion outlived its io_context";
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(pool.send(add{2, 0}), 21);
}

// Asio's own I/O objects let the io_context go first: its destructor destroys every handler
// still waiting. The adapter's operations do the same; the requests still run, and a worker
// that finishes one later drops its completion instead of posting into the freed context.
TEST(AsioAdapter, IoContextDestroyedWithOperationsInFlight) {
  pool_t pool(mtp_test::options(2));
  pool.create(0);
  pool.create(2);  // same worker as 0
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  auto io = std::make_unique<asio::io_context>();
  auto alive = std::make_shared<int>(0);  // held by every handler
  const std::weak_ptr<int> watch = alive;
  int ran = 0;
  mtp::asio::async_send(pool, add{2, 1}, asio::bind_executor(*io, [&ran, alive](std::error_code, int) { ++ran; }));
  mtp::asio::async_send_batch(pool, std::vector<add>{{2, 1}, {0, 1}},
                              asio::bind_executor(*io, [&ran, alive](std::error_code, std::vector<mtp::result<int>>) { ++ran; }));
  mtp::asio::async_create(pool, mtp::make_create(4, 1), asio::bind_executor(*io, [&ran, alive](std::error_code) { ++ran; }));
  asio::cancellation_signal signal;  // a cancellation slot still connected when the context goes
  mtp::asio::async_send(pool, add{2, 1},
                        asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(*io, [&ran, alive](std::error_code, int) { ++ran; })));
  asio::co_spawn(
      *io,
      [&ran, &pool, alive]() -> asio::awaitable<void> {
        (void)co_await mtp::asio::async_send(pool, add{2, 1}, asio::use_awaitable);
        ++ran;
      },
      asio::detached);
  io->poll();  // the coroutine starts its request and suspends
  alive.reset();
  EXPECT_FALSE(watch.expired());
  io.reset();  // every operation still in flight on the busy worker
  EXPECT_TRUE(watch.expired()) << "a handler outlived its io_context";
  release.open();
  EXPECT_EQ(pool.send(add{2, 0}), 4) << "the requests themselves ran";  // and their completions were dropped
  EXPECT_TRUE(pool.remove(4));
  EXPECT_EQ(ran, 0);
}

}  // namespace
