// SPDX-License-Identifier: MIT
// mtp::asio::async_await (mtp/asio/async_await.hpp): the library's awaitables inside an
// asio::awaitable, with callbacks, use_future, deferred, redirect_error and as_tuple; the
// exception and error_code forms; completions on the handler's executor, never inline; the
// three ways of holding the awaitable (owned, in place, made by a factory); cancellation
// through a std::stop_token and through the handler's cancellation slot.
#include <mtp/asio.hpp>
#include <mtp/asio/async_await.hpp>
#include <mtp/mtp.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "pool_test_util.hpp"
#include "requests.hpp"

namespace {

using mtp_test::add;
using mtp_test::touch;
using hold = mtp_test::basic_hold<int>;  // blocks its worker until released; answers 42

// An exception of the item's own (not a std::system_error).
struct item_refusal : std::exception {
  [[nodiscard]] const char* what() const noexcept override { return "item refusal"; }
};
struct refuse {
  mtp::id_t id;
  using response_type = int;
};
// Answers the thread that handled it.
struct where {
  mtp::id_t id;
  using response_type = std::thread::id;
};

class item {
 public:
  explicit item(mtp::id_t) {}
  item(mtp::id_t, int start) : total_(start) {
    if (start < 0) throw item_refusal();
  }
  int handle(const add& a) { return total_ += a.amount; }
  int handle(const refuse&) { throw item_refusal(); }
  static std::thread::id handle(const where&) { return std::this_thread::get_id(); }
  void handle(const touch&) { ++total_; }
  int handle(const hold& h) {
    mtp_test::hold_until_released(h);
    return 42;
  }

 private:
  int total_ = 0;
};
using pool_t = mtp::thread_pool<item>;

constexpr auto on_worker = mtp::resume_inline_on_worker;

// A movable awaitable that is ready at once (the operation owns it when given as an rvalue).
struct ready_int {
  int v;
  [[nodiscard]] bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  [[nodiscard]] int await_resume() const noexcept { return v; }
};
// A movable awaitable that throws from await_resume.
struct ready_failure {
  [[nodiscard]] bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  [[noreturn]] int await_resume() const { throw std::logic_error("ready failure"); }
};
// An awaitable through a member operator co_await, giving a type with no default constructor.
class label {
 public:
  explicit label(std::string text) : text_(std::move(text)) {}
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  std::string text_;
};
struct labelled {
  std::string text;
  [[nodiscard]] ready_int operator co_await() const& noexcept { return ready_int{static_cast<int>(text.size())}; }
};
struct make_label {  // awaiter: await_resume gives a label
  std::string text;
  [[nodiscard]] bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  [[nodiscard]] label await_resume() const { return label(text); }
};

static_assert(std::is_same_v<mtp::asio::await_result_t<ready_int>, int>);
static_assert(std::is_same_v<mtp::asio::await_result_t<labelled&>, int>);
static_assert(std::is_same_v<mtp::asio::await_result_t<make_label>, label>);

// Runs `io` on this thread until it runs out of work (bounded).
void run_bounded(asio::io_context& io) {
  const auto deadline = std::chrono::steady_clock::now() + mtp_test::k_bound;
  while (!io.stopped() && std::chrono::steady_clock::now() < deadline) io.run_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(io.stopped()) << "the io_context still had work: a completion is missing";
}

// Spawns `coro` on `io`, runs it to the end and rethrows what it threw.
template <class F>
void run_coroutine(asio::io_context& io, F coro) {
  std::exception_ptr failure;
  bool done = false;
  asio::co_spawn(io, std::move(coro), [&](std::exception_ptr e) {
    failure = std::move(e);
    done = true;
  });
  run_bounded(io);
  ASSERT_TRUE(done) << "the coroutine did not finish";
  if (failure) std::rethrow_exception(failure);
}

TEST(AsioAsyncAwait, AwaitsTheLibraryAwaitablesInsideAnAsioCoroutine) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  asio::io_context io;
  const auto io_thread = std::this_thread::get_id();
  run_coroutine(io, [&]() -> asio::awaitable<void> {
    // The immovable temporary is awaited in place: it lives until this co_await resumes.
    const int v = co_await mtp::asio::async_await(mtp::async(pool, add{1, 2}, on_worker), asio::use_awaitable);
    EXPECT_EQ(v, 2);
    EXPECT_EQ(std::this_thread::get_id(), io_thread);
    // The worker answered on its own thread; the coroutine resumed on the io_context's.
    const std::thread::id worker =
        co_await mtp::asio::async_await(mtp::async(pool, where{1}, on_worker), asio::use_awaitable);
    EXPECT_NE(worker, io_thread);
    EXPECT_EQ(std::this_thread::get_id(), io_thread);
    // void responses; async_result (never throws) gives the mtp::result itself.
    co_await mtp::asio::async_await(mtp::async(pool, touch{1}, on_worker), asio::use_awaitable);
    const mtp::result<int> r =
        co_await mtp::asio::async_await(mtp::async_result(pool, add{1, 10}, on_worker), asio::use_awaitable);
    EXPECT_EQ(r.value(), 13);
    // Through a scheduler instead of resuming on the worker: one more hop, same outcome.
    const auto ex = co_await asio::this_coro::executor;
    auto post_to_io = [ex](std::coroutine_handle<> h) { asio::post(ex, [h] { h.resume(); }); };
    const int w = co_await mtp::asio::async_await(mtp::async(pool, add{1, 1}, post_to_io), asio::use_awaitable);
    EXPECT_EQ(w, 14);
    EXPECT_EQ(std::this_thread::get_id(), io_thread);
    // That scheduler's post holds no work on io: the worker may still be inside it. The next
    // request to the same item runs on the same worker after it has left, before io may go.
    const int x = co_await mtp::asio::async_await(mtp::async(pool, add{1, 0}, on_worker), asio::use_awaitable);
    EXPECT_EQ(x, 14);
  });
}

TEST(AsioAsyncAwait, AwaitsTheLifecycleAndBatches) {
  pool_t pool(mtp_test::options(2));
  asio::io_context io;
  run_coroutine(io, [&]() -> asio::awaitable<void> {
    co_await mtp::asio::async_await(mtp::async_create(pool, mtp::make_create(7, 100), on_worker),
                                    asio::use_awaitable);
    const int first = co_await mtp::asio::async_await(mtp::async(pool, add{7, 1}, on_worker), asio::use_awaitable);
    EXPECT_EQ(first, 101);
    // The batch awaitables own vectors: named first (README, "Known toolchain issues"), and
    // then awaited in place as lvalues.
    const std::vector<add> requests{{7, 1}, {7, 2}, {8, 3}};
    auto batch = mtp::async_batch(pool, requests, on_worker);
    const std::vector<mtp::result<int>> rs = co_await mtp::asio::async_await(batch, asio::use_awaitable);
    EXPECT_EQ(rs.size(), 3u);
    EXPECT_EQ(rs[0].value(), 102);
    EXPECT_EQ(rs[1].value(), 104);
    EXPECT_EQ(rs[2].error().code, mtp::errc::unknown_id);
    const std::vector<mtp::create_request<int>> creates{mtp::make_create(8, 0), mtp::make_create(9, 0)};
    auto create_batch = mtp::async_create_batch(pool, creates, on_worker);
    const std::vector<mtp::result<void>> made = co_await mtp::asio::async_await(create_batch, asio::use_awaitable);
    EXPECT_EQ(made.size(), 2u);
    EXPECT_TRUE(std::all_of(made.begin(), made.end(), [](const auto& r) { return r.has_value(); }));
    const std::vector<mtp::id_t> ids{8, 9, 10};
    auto remove_batch = mtp::async_remove_batch(pool, ids, on_worker);
    const std::vector<mtp::result<void>> removed = co_await mtp::asio::async_await(remove_batch, asio::use_awaitable);
    EXPECT_EQ(removed.size(), 3u);
    EXPECT_TRUE(removed[0].has_value());
    EXPECT_TRUE(removed[1].has_value());
    EXPECT_EQ(removed[2].error().code, mtp::errc::unknown_id);
    const bool existed = co_await mtp::asio::async_await(mtp::async_remove(pool, 7, on_worker), asio::use_awaitable);
    EXPECT_TRUE(existed);
    const bool again = co_await mtp::asio::async_await(mtp::async_remove(pool, 7, on_worker), asio::use_awaitable);
    EXPECT_FALSE(again);
  });
  EXPECT_THROW((void)pool.send(add{7, 0}), mtp::pool_error);
}

TEST(AsioAsyncAwait, TheExceptionReachesTheCoroutineAsItself) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  asio::io_context io;
  run_coroutine(io, [&]() -> asio::awaitable<void> {
    bool refused = false;
    try {
      (void)co_await mtp::asio::async_await(mtp::async(pool, refuse{1}, on_worker), asio::use_awaitable);
    } catch (const item_refusal&) {
      refused = true;
    }
    EXPECT_TRUE(refused);
    std::optional<mtp::errc> code;
    try {
      (void)co_await mtp::asio::async_await(mtp::async(pool, add{99, 1}, on_worker), asio::use_awaitable);
    } catch (const mtp::pool_error& e) {
      code = e.code();
    }
    EXPECT_EQ(code, mtp::errc::unknown_id);
    bool constructor_threw = false;
    try {
      co_await mtp::asio::async_await(mtp::async_create(pool, mtp::make_create(5, -1), on_worker),
                                      asio::use_awaitable);
    } catch (const item_refusal&) {
      constructor_threw = true;
    }
    EXPECT_TRUE(constructor_threw);
    bool logic = false;
    try {
      (void)co_await mtp::asio::async_await(ready_failure{}, asio::use_awaitable);
    } catch (const std::logic_error&) {
      logic = true;
    }
    EXPECT_TRUE(logic);
  });
}

TEST(AsioAsyncAwait, ErrorCodeTokensInsideACoroutine) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  asio::io_context io;
  run_coroutine(io, [&]() -> asio::awaitable<void> {
    std::error_code ec;
    const int v = co_await mtp::asio::async_await(mtp::async(pool, add{99, 1}, on_worker),
                                                  asio::redirect_error(asio::use_awaitable, ec));
    EXPECT_EQ(ec, mtp::errc::unknown_id);
    EXPECT_EQ(v, 0);
    auto [ec2, v2] = co_await mtp::asio::async_await(mtp::async(pool, refuse{1}, on_worker),
                                                     asio::experimental::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec2, mtp::errc::handler_failed);  // the exception does not travel in this form
    EXPECT_EQ(v2, 0);
    auto [ec3, v3] = co_await mtp::asio::async_await(mtp::async(pool, add{1, 4}, on_worker),
                                                     asio::experimental::as_tuple(asio::use_awaitable));
    EXPECT_FALSE(ec3);
    EXPECT_EQ(v3, 4);
  });
}

TEST(AsioAsyncAwait, CallbacksRunOnTheirExecutorOnceAndNeverInline) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  asio::io_context io;
  const auto io_thread = std::this_thread::get_id();
  bool returned = false;
  int calls = 0;
  std::vector<int> values;
  std::vector<std::error_code> errors;
  auto record = [&](std::error_code ec, int v) {
    EXPECT_TRUE(returned) << "the handler ran inside the initiating call";
    EXPECT_EQ(std::this_thread::get_id(), io_thread);
    errors.push_back(ec);
    values.push_back(v);
    ++calls;
  };
  // An lvalue: awaited in place, kept alive here until the handler has run.
  auto lvalue = mtp::async(pool, add{1, 5}, on_worker);
  mtp::asio::async_await(lvalue, asio::bind_executor(io, record));
  // A factory: the operation builds and owns the (immovable) awaitable.
  mtp::asio::async_await([&] { return mtp::async(pool, add{99, 1}, on_worker); }, asio::bind_executor(io, record));
  // A movable awaitable that is ready at once: still posted, not run inside this call.
  mtp::asio::async_await(ready_int{3}, asio::bind_executor(io, record));
  mtp::asio::async_await(ready_failure{}, asio::bind_executor(io, record));
  returned = true;
  run_bounded(io);  // outstanding work: run() returns only once every handler has run
  ASSERT_EQ(calls, 4);
  // The pool may answer before the ready ones are posted: compare as sets.
  std::vector<std::pair<std::error_code, int>> got;
  for (std::size_t i = 0; i < errors.size(); ++i) got.emplace_back(errors[i], values[i]);
  const std::vector<std::pair<std::error_code, int>> expected{
      {std::error_code(), 5},
      {mtp::make_error_code(mtp::errc::unknown_id), 0},
      {std::error_code(), 3},
      {mtp::make_error_code(mtp::errc::handler_failed), 0},  // a logic_error: no code of its own
  };
  for (const auto& e : expected) {
    EXPECT_EQ(std::count(got.begin(), got.end(), e), 1) << e.first.message() << " " << e.second;
  }
}

TEST(AsioAsyncAwait, ValuesWithoutADefaultConstructorAndMemberCoAwait) {
  asio::io_context io;
  std::optional<label> got;
  int calls = 0;
  mtp::asio::async_await(make_label{"abc"}, asio::bind_executor(io, [&](std::error_code ec, std::optional<label> l) {
                           EXPECT_FALSE(ec);
                           got = std::move(l);
                           ++calls;
                         }));
  labelled named{"four"};
  mtp::asio::async_await(named, asio::bind_executor(io, [&](std::error_code ec, int n) {
                           EXPECT_FALSE(ec);
                           EXPECT_EQ(n, 4);
                           ++calls;
                         }));
  run_bounded(io);
  EXPECT_EQ(calls, 2);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->text(), "abc");
}

TEST(AsioAsyncAwait, UseFutureAndDeferred) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  // use_future: no executor of its own (asio::system_executor completes it).
  std::future<int> f = mtp::asio::async_await([&] { return mtp::async(pool, add{1, 2}, on_worker); }, asio::use_future);
  EXPECT_EQ(MTP_BOUNDED([&] { return f.get(); }), 2);
  std::future<int> refused =
      mtp::asio::async_await([&] { return mtp::async(pool, refuse{1}, on_worker); }, asio::use_future);
  EXPECT_THROW(MTP_BOUNDED([&] { return refused.get(); }), item_refusal);
  std::future<void> touched =
      mtp::asio::async_await([&] { return mtp::async(pool, touch{1}, on_worker); }, asio::use_future);
  MTP_BOUNDED([&] { touched.get(); });
  // deferred: nothing starts until it is launched.
  asio::io_context io;
  auto op = mtp::asio::async_await([&] { return mtp::async(pool, add{1, 10}, on_worker); },
                                   asio::experimental::deferred);
  EXPECT_EQ(pool.send(add{1, 0}), 3) << "a deferred operation started before it was launched";
  int got = 0;
  std::move(op)(asio::bind_executor(io, [&](std::error_code ec, int v) {
    EXPECT_FALSE(ec);
    got = v;
  }));
  run_bounded(io);
  EXPECT_EQ(got, 13);
}

// A stop through the std::stop_token given to mtp::async: the co_await completes at once with
// errc::cancelled while the worker is busy, and the request never runs.
TEST(AsioAsyncAwait, StopsThroughTheStopToken) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{1, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  asio::io_context io;
  std::stop_source stop;
  std::optional<mtp::errc> thrown;
  std::error_code callback_error;
  std::stop_source callback_stop;
  auto in_place = mtp::async(pool, add{1, 100}, on_worker, callback_stop.get_token());
  mtp::asio::async_await(in_place, asio::bind_executor(io, [&](std::error_code ec, int) { callback_error = ec; }));
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto aw = mtp::async(pool, add{1, 1000}, on_worker, stop.get_token());
        try {
          (void)co_await mtp::asio::async_await(aw, asio::use_awaitable);
        } catch (const mtp::pool_error& e) {  // the awaitable's exception, as itself
          thrown = e.code();
        }
      },
      asio::detached);
  asio::post(io, [&] {  // after the coroutine has started its request: both are queued in order
    stop.request_stop();
    callback_stop.request_stop();
  });
  run_bounded(io);  // returns with the worker still held: the cancelled operations did not wait
  EXPECT_FALSE(release.is_open());
  EXPECT_EQ(thrown, mtp::errc::cancelled);
  EXPECT_EQ(callback_error, asio::error::operation_aborted);
  release.open();
  EXPECT_EQ(pool.send(add{1, 0}), 0) << "a cancelled request ran";
}

// A factory taking a std::stop_token: the handler's cancellation slot requests stop, so Asio's
// own cancellation (a signal, awaitable operators) reaches the pool.
TEST(AsioAsyncAwait, TheCancellationSlotStopsAFactoryAwaitable) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  mtp_test::gate started, release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{1, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  asio::io_context io;
  asio::cancellation_signal signal, total_signal;
  std::error_code error;
  int calls = 0;
  mtp::asio::async_await(
      [&](std::stop_token st) { return mtp::async(pool, add{1, 100}, on_worker, std::move(st)); },
      asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(io, [&](std::error_code ec, int v) {
                                     error = ec;
                                     EXPECT_EQ(v, 0);
                                     ++calls;
                                   })));
  // Total cancellation is not honoured (a stop may drop a request that has started).
  std::error_code total_error;
  int total_value = 0;
  mtp::asio::async_await(
      [&](std::stop_token st) { return mtp::async(pool, add{1, 1}, on_worker, std::move(st)); },
      asio::bind_cancellation_slot(total_signal.slot(), asio::bind_executor(io, [&](std::error_code ec, int v) {
                                     total_error = ec;
                                     total_value = v;
                                     ++calls;
                                   })));
  std::variant<int, std::monostate> raced;
  bool timer_won = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        using namespace asio::experimental::awaitable_operators;
        asio::steady_timer now(co_await asio::this_coro::executor, std::chrono::steady_clock::now());
        raced = co_await (mtp::asio::async_await(
                              [&](std::stop_token st) { return mtp::async(pool, add{1, 10}, on_worker, std::move(st)); },
                              asio::use_awaitable) ||
                          now.async_wait(asio::use_awaitable));
        timer_won = raced.index() == 1;
        ++calls;
      },
      asio::detached);
  asio::post(io, [&] {  // on the handlers' executor, as Asio requires
    signal.emit(asio::cancellation_type::terminal);
    total_signal.emit(asio::cancellation_type::total);
  });
  // The terminal signal and the timer complete their operations while the worker is held.
  const auto deadline = std::chrono::steady_clock::now() + mtp_test::k_bound;
  while (calls < 2 && std::chrono::steady_clock::now() < deadline) io.run_one_for(std::chrono::milliseconds(100));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(error, asio::error::operation_aborted);
  EXPECT_TRUE(timer_won);
  release.open();
  run_bounded(io);
  EXPECT_EQ(calls, 3);
  EXPECT_FALSE(total_error);
  EXPECT_EQ(total_value, 1) << "a cancelled request ran";  // only add{1, 1} ran, after the hold
}

// A completion still queued when the io_context is destroyed is destroyed unrun, with what
// the operation held: the handler, the work and the cancellation slot's handler.
TEST(AsioAsyncAwait, AQueuedCompletionIsDestroyedWithTheContext) {
  asio::cancellation_signal signal;  // outlives the operation, as Asio asks
  auto held = std::make_shared<int>(0);
  const std::weak_ptr<int> watch = held;
  bool ran = false;
  {
    asio::io_context io;
    mtp::asio::async_await(ready_int{1}, asio::bind_executor(io, [&ran, h = std::move(held)](std::error_code, int) {
                             ran = true;
                           }));
    mtp::asio::async_await(
        [](const std::stop_token&) { return ready_int{2}; },
        asio::bind_cancellation_slot(signal.slot(), asio::bind_executor(io, [&ran](std::error_code, int) { ran = true; })));
    EXPECT_FALSE(watch.expired());
  }  // never run
  EXPECT_TRUE(watch.expired()) << "the handler was not destroyed";
  EXPECT_FALSE(ran);
  signal.emit(asio::cancellation_type::terminal);  // the slot was cleared: nothing to call
}

}  // namespace
