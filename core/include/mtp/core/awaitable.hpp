// SPDX-License-Identifier: MIT
// C++20 coroutine support without any framework: co_await a request or a batch from any
// coroutine type.
//
//   int v = co_await mtp::async(pool, add{1, 5}, loop);            // the response; throws like send
//   mtp::result<int> r = co_await mtp::async_result(pool, add{1, 5}, loop);   // never throws
//   std::vector<mtp::result<int>> rs = co_await mtp::async_batch(pool, requests, loop);
//
// Where the coroutine resumes is always chosen by the caller: the third argument is required.
//  - A scheduler: any copyable callable taking a std::coroutine_handle<> and arranging for
//    handle.resume() to run on the caller's thread (a run loop, an event loop, a strand), e.g.
//      [&loop](std::coroutine_handle<> h) { loop.post(h); }
//      [ex](std::coroutine_handle<> h) { asio::post(ex, [h] { h.resume(); }); }
//    The coroutine always resumes through it, also when the request failed before it was sent
//    (pool_stopped, invalid_route, queue_full): never on a pool worker. It is called exactly
//    once per co_await, from a pool worker (or from the awaiting thread when the response
//    arrived before the coroutine finished suspending); it must not throw (what it throws goes
//    to the pool's diagnostic hook and the coroutine never resumes) and should not block.
//  - mtp::resume_inline_on_worker: the named opt-in to resume directly on the worker that
//    answered (or on the awaiting thread when the response arrived before suspension). The
//    coroutine then runs on the worker until its next suspension: keep that part short,
//    never block there, and never touch other items' state from it.
//
// The request is sent when the coroutine suspends (co_await), not when mtp::async is called.
// An optional std::stop_token cancels: a request that has not started when stop is requested
// completes with errc::cancelled (async throws pool_error(cancelled)); one that has started
// finishes and its response is delivered as usual.
//
// Threads and memory: everything the handler wrote is visible to the coroutine once it has
// resumed (the scheduler must synchronise its own hand-over, as any queue does). The
// operation lives in the coroutine frame (the awaiter); the pool keeps one allocation per
// request (or per batch) as for send_async.
#pragma once

#include <atomic>
#include <concepts>
#include <coroutine>
#include <exception>
#include <optional>
#include <ranges>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include <mtp/core/batch.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/result.hpp>

namespace mtp {

/// The tag asking for a coroutine to resume on the pool worker that answered its request.
struct resume_inline_on_worker_t {
  explicit resume_inline_on_worker_t() = default;
};
inline constexpr resume_inline_on_worker_t resume_inline_on_worker{};

/// A scheduler for mtp::async: copyable and callable with the coroutine to resume.
template <class S>
concept coroutine_scheduler =
    std::copy_constructible<S> && std::invocable<S&, std::coroutine_handle<>>;

/// What mtp::async accepts as its third argument.
template <class S>
concept resume_target = coroutine_scheduler<S> || std::same_as<S, resume_inline_on_worker_t>;

namespace impl {

/// The state every mtp awaiter shares: the value, the coroutine, and a two-party hand-off
/// between the suspending coroutine and the completion (whichever finishes second resumes).
template <class Value, class Sched>
class await_base {
 public:
  await_base(const await_base&) = delete;
  await_base& operator=(const await_base&) = delete;

  [[nodiscard]] bool await_ready() const noexcept { return false; }

 protected:
  await_base(Sched on, std::stop_token stop) : on_(std::move(on)), stop_(std::move(stop)) {}

  /// The callback given to the pool: stores the value, then resumes if the coroutine has
  /// finished suspending.
  struct completion {
    await_base* self;
    void operator()(Value&& v) noexcept {
      self->value_ = std::move(v);
      if (self->arrived_.exchange(true, std::memory_order_acq_rel)) self->resume_now();
    }
  };

  /// The tail of await_suspend, once the request is on its way and the handle is stored.
  /// Returns what await_suspend returns.
  bool finish_suspend() noexcept {
    if (stop_.stop_possible()) cancel_.emplace(stop_, canceller{&handle_});
    if (!arrived_.exchange(true, std::memory_order_acq_rel)) return true;  // the worker resumes it
    // The response is already here. Leave the awaiter alone once the coroutine may resume.
    if constexpr (std::same_as<Sched, resume_inline_on_worker_t>) {
      return false;  // resume at once, on this thread
    } else {
      resume_now();
      return true;
    }
  }

  void resume_now() noexcept {
    const std::coroutine_handle<> h = coro_;
    if constexpr (std::same_as<Sched, resume_inline_on_worker_t>) {
      h.resume();
    } else {
      Sched on = on_;  // a copy: the awaiter may be gone before `on` returns
      on(h);
    }
  }

  struct canceller {
    async_handle* handle;
    void operator()() noexcept { handle->cancel(); }
  };

  Value value_{};
  std::coroutine_handle<> coro_;
  async_handle handle_;
  [[no_unique_address]] Sched on_;
  std::stop_token stop_;
  std::optional<std::stop_callback<canceller>> cancel_;  // destroyed before handle_
  std::atomic<bool> arrived_{false};
};

template <class Pool, class R, class Sched, bool Throws>
class request_awaiter final : public await_base<result<response_t<R>>, Sched> {
  using base = await_base<result<response_t<R>>, Sched>;

 public:
  request_awaiter(Pool& pool, R r, Sched on, std::stop_token stop)
      : base(std::move(on), std::move(stop)), pool_(&pool), request_(std::move(r)) {}

  bool await_suspend(std::coroutine_handle<> h) {
    this->coro_ = h;
    this->handle_ = pool_->send_async(std::move(request_), typename base::completion{this});
    return this->finish_suspend();
  }

  std::conditional_t<Throws, response_t<R>, result<response_t<R>>> await_resume() {
    this->cancel_.reset();
    if constexpr (Throws) {
      return std::move(this->value_).value();
    } else {
      return std::move(this->value_);
    }
  }

 private:
  Pool* pool_;
  R request_;
};

template <class Pool, class R, class Sched>
class batch_awaiter final : public await_base<std::vector<result<response_t<R>>>, Sched> {
  using base = await_base<std::vector<result<response_t<R>>>, Sched>;

 public:
  batch_awaiter(Pool& pool, std::vector<R> requests, Sched on, std::stop_token stop)
      : base(std::move(on), std::move(stop)), pool_(&pool), requests_(std::move(requests)) {}

  bool await_suspend(std::coroutine_handle<> h) {
    this->coro_ = h;
    this->handle_ = pool_->send_batch_async(std::move(requests_), typename base::completion{this});
    return this->finish_suspend();
  }

  std::vector<result<response_t<R>>> await_resume() {
    this->cancel_.reset();
    return std::move(this->value_);
  }

 private:
  Pool* pool_;
  std::vector<R> requests_;
};

}  // namespace impl

/// co_await mtp::async(pool, r, resume_on [, stop]): sends `r` when the coroutine suspends and
/// resumes it through `resume_on` with the response. Throws what send would throw: the
/// handler's own exception, or pool_error (unknown_id, pool_stopped, cancelled, ...).
/// `pool` must outlive the co_await; `r` is moved into the pool.
template <class Pool, request R, resume_target Sched>
[[nodiscard]] impl::request_awaiter<Pool, R, Sched, true> async(Pool& pool, R r, Sched resume_on,
                                                                std::stop_token stop = {}) {
  return {pool, std::move(r), std::move(resume_on), std::move(stop)};
}

/// As async, returning the mtp::result<T> instead of throwing.
template <class Pool, request R, resume_target Sched>
[[nodiscard]] impl::request_awaiter<Pool, R, Sched, false> async_result(Pool& pool, R r, Sched resume_on,
                                                                        std::stop_token stop = {}) {
  return {pool, std::move(r), std::move(resume_on), std::move(stop)};
}

/// co_await mtp::async_batch(pool, requests, resume_on [, stop]): the responses in request
/// order, one mtp::result per request (never throws for a request's failure). Any input
/// range of requests; they are copied into the batch at once.
template <class Pool, std::ranges::input_range Range, resume_target Sched>
  requires request<std::ranges::range_value_t<Range>>
[[nodiscard]] impl::batch_awaiter<Pool, std::ranges::range_value_t<Range>, Sched> async_batch(
    Pool& pool, Range&& requests, Sched resume_on, std::stop_token stop = {}) {
  using R = std::ranges::range_value_t<Range>;
  std::vector<R> owned;
  if constexpr (std::ranges::sized_range<Range>) owned.reserve(std::ranges::size(requests));
  for (auto&& r : requests) owned.emplace_back(std::forward<decltype(r)>(r));
  return {pool, std::move(owned), std::move(resume_on), std::move(stop)};
}

}  // namespace mtp
