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
// An optional std::stop_token cancels promptly: once stop is requested, a co_await of one
// request (async, async_result, async_create, async_remove) whose result has not been handed
// over yet completes at once with errc::cancelled (async throws pool_error(cancelled)),
// resumed through `resume_on` from the thread that requested stop (with
// resume_inline_on_worker: on that thread); the request is then skipped when its worker
// reaches it, or, if it had already started, it finishes and its result is dropped. A batch
// skips the requests that have not started and completes once the others have finished.
//
// Threads and memory: everything the handler wrote is visible to the coroutine once it has
// resumed (the scheduler must synchronise its own hand-over, as any queue does).
//
// Allocation: on mtp::thread_pool, async and async_result without a stop_token allocate
// nothing: the request and its result live in the awaiter, in the coroutine frame, and the
// worker hands the result back through it (with a stop_token, the request gets a block of its
// own, which the worker may still hold after the coroutine has resumed). The batch, create
// and remove forms go through the pool's asynchronous forms (send_batch_async, create_async,
// ...): one allocation per request or batch, as for send_async. Any pool whose asynchronous
// forms take a callback and return a handle with cancel() and abandon() can be awaited the
// same way: mtp::mpi::sharded_pool's are (every form above; there the callback, so a
// coroutine resumed inline, runs on a local worker or on the rank's communication thread).
#pragma once

#include <atomic>
#include <concepts>
#include <coroutine>
#include <exception>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include <mtp/core/batch.hpp>
#include <mtp/core/forwarding.hpp>
#include <mtp/core/async_slot.hpp>
#include <mtp/core/impl/std_parts.hpp>
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

/// The state every mtp awaiter shares: the coroutine, the scheduler, cancellation, and a
/// two-party hand-off between the suspending coroutine and the completion (whichever finishes
/// second resumes). `Handle` is what the pool's asynchronous forms return (mtp::async_handle,
/// mtp::mpi::async_handle): movable, with cancel() and abandon().
template <class Sched, class Handle = async_handle>
class await_core {
 public:
  await_core(const await_core&) = delete;
  await_core& operator=(const await_core&) = delete;

  [[nodiscard]] bool await_ready() const noexcept { return false; }

 protected:
  await_core(Sched on, std::stop_token stop) : on_(std::move(on)), stop_(std::move(stop)) {}
  ~await_core() = default;

  /// The completion's part, once the value is stored: resumes if the coroutine has finished
  /// suspending.
  void arrive() noexcept {
    if (arrived_.exchange(true, std::memory_order_acq_rel)) resume_now();
  }

  /// The tail of await_suspend, once the request is on its way and the handle is stored.
  /// Returns what await_suspend returns.
  bool finish_suspend() noexcept {
    if (stop_.stop_possible()) cancel_.emplace(stop_, canceller{this});
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

  /// A stop request: with `abandon_` set (one request, create or remove), the awaiter takes
  /// the completion over if the pool has not started it, and the coroutine resumes at once
  /// with errc::cancelled; otherwise (batches), what has not started is skipped.
  struct canceller {
    await_core* self;
    void operator()() noexcept {
      if (self->abandon_ != nullptr && self->handle_.abandon()) {
        self->abandon_(*self);
        self->arrive();
      } else {
        self->handle_.cancel();
      }
    }
  };

  void (*abandon_)(await_core&) noexcept = nullptr;  // stores errc::cancelled as the value
  std::coroutine_handle<> coro_;
  Handle handle_;
  [[no_unique_address]] Sched on_;
  std::stop_token stop_;
  std::optional<std::stop_callback<canceller>> cancel_;  // destroyed before handle_
  std::atomic<bool> arrived_{false};
};

/// An awaiter whose value the pool's callback delivers (any pool with the asynchronous forms).
template <class Value, class Sched, class Handle>
class await_base : public await_core<Sched, Handle> {
 protected:
  using await_core<Sched, Handle>::await_core;

  /// The callback given to the pool: stores the value, then resumes if the coroutine has
  /// finished suspending.
  struct completion {
    await_base* self;
    void operator()(Value&& v) noexcept {
      self->value_ = std::move(v);
      self->arrive();
    }
  };

  Value value_{};
};

/// The awaiter of one request on a pool that runs caller-owned blocks (mtp::thread_pool): the
/// request and its result live here, in the coroutine frame, and nothing is allocated. The
/// worker's last touch is the slot's `done`, which resumes (or lets the suspending thread
/// resume) the coroutine.
template <class Pool, class R, class Sched, bool Throws>
class slot_awaiter final : public await_core<Sched> {
  using core = await_core<Sched>;

 public:
  slot_awaiter(Pool& pool, R r, Sched on, std::stop_token stop)
      : core(std::move(on), std::move(stop)), pool_(&pool), slot_(std::move(r)) {}

  bool await_suspend(std::coroutine_handle<> h) {
    this->coro_ = h;
    if (this->stop_.stop_possible()) {
      // Cancellable: the request goes to a block of its own, which the worker may still hold
      // after a stop request has resumed the coroutine (see await_core::canceller).
      id_ = static_cast<id_t>(slot_.input.id);
      this->abandon_ = [](await_core<Sched>& c) noexcept {
        auto& self = static_cast<slot_awaiter&>(c);
        self.slot_.out.set_error(error{errc::cancelled, self.id_, {}});
      };
      this->handle_ = pool_->send_async(std::move(slot_.input), slot_completion{this});
    } else {
      slot_.owner = this;
      slot_.done = [](async_slot<R>& s) noexcept { static_cast<slot_awaiter*>(s.owner)->arrive(); };
      this->handle_ = async_handle(&slot_);  // its reference never frees the slot
      pool_->send_async(slot_);
    }
    return this->finish_suspend();
  }

  std::conditional_t<Throws, response_t<R>, result<response_t<R>>> await_resume() {
    this->cancel_.reset();
    if constexpr (Throws) {
      return std::move(slot_.out).value();
    } else {
      return std::move(slot_.out);
    }
  }

 private:
  struct slot_completion {
    slot_awaiter* self;
    void operator()(result<response_t<R>>&& v) noexcept {
      self->slot_.out = std::move(v);
      self->arrive();
    }
  };

  Pool* pool_;
  async_slot<R> slot_;
  id_t id_ = 0;  // what a prompt cancellation answers
};

/// What `Kind::start` returns on `Pool`: the handle of the pool's asynchronous forms.
template <class Pool, class Kind>
using handle_of = std::remove_cvref_t<decltype(Kind::start(
    std::declval<Pool&>(), std::declval<typename Kind::input&&>(), std::declval<void (*)(typename Kind::value&&)>()))>;

/// The awaiter of every form: `Kind` says how the operation starts on the pool (which
/// asynchronous member it calls, with what input) and what co_await returns.
template <class Pool, class Kind, class Sched>
class pool_awaiter final : public await_base<typename Kind::value, Sched, handle_of<Pool, Kind>> {
  using base = await_base<typename Kind::value, Sched, handle_of<Pool, Kind>>;
  using core = await_core<Sched, handle_of<Pool, Kind>>;

 public:
  pool_awaiter(Pool& pool, typename Kind::input in, Sched on, std::stop_token stop)
      : base(std::move(on), std::move(stop)), pool_(&pool), input_(std::move(in)) {}

  bool await_suspend(std::coroutine_handle<> h) {
    this->coro_ = h;
    if constexpr (Kind::k_single) {
      id_ = Kind::id_of(input_);
      this->abandon_ = [](core& c) noexcept {
        auto& self = static_cast<pool_awaiter&>(c);
        self.value_.set_error(error{errc::cancelled, self.id_, {}});
      };
    }
    this->handle_ = Kind::start(*pool_, std::move(input_), typename base::completion{this});
    return this->finish_suspend();
  }

  decltype(auto) await_resume() {
    this->cancel_.reset();
    return Kind::finish(std::move(this->value_));
  }

 private:
  Pool* pool_;
  typename Kind::input input_;
  id_t id_ = 0;  // single kinds: what a prompt cancellation answers
};

/// One request: the response (Throws: or what send throws), or its mtp::result.
template <class R, bool Throws>
struct send_kind {
  static constexpr bool k_single = true;
  using input = R;
  using value = result<response_t<R>>;
  static id_t id_of(const input& r) noexcept { return static_cast<id_t>(r.id); }
  template <class P, class C>
  static auto start(P& pool, input&& in, C done) -> decltype(pool.send_async(std::move(in), std::move(done))) {
    return pool.send_async(std::move(in), std::move(done));
  }
  static std::conditional_t<Throws, response_t<R>, value> finish(value&& v) {
    if constexpr (Throws) return std::move(v).value();
    else return std::move(v);
  }
};

/// The awaiter of one request: in place where the pool allows it, else through send_async.
template <class Pool, class R, class Sched, bool Throws>
using request_awaiter = std::conditional_t<starts_async_slots<Pool, R>, slot_awaiter<Pool, R, Sched, Throws>,
                                           pool_awaiter<Pool, send_kind<R, Throws>, Sched>>;

/// A batch of requests, creates or removes: the results in order, never throws.
template <class In, class Out, class Start>
struct batch_kind {
  static constexpr bool k_single = false;
  using input = std::vector<In>;
  using value = std::vector<result<Out>>;
  template <class P, class C>
  static auto start(P& pool, input&& in, C done) -> decltype(Start{}(pool, std::move(in), std::move(done))) {
    return Start{}(pool, std::move(in), std::move(done));
  }
  static value finish(value&& v) noexcept { return std::move(v); }
};
struct start_send_batch {
  template <class P, class In, class C>
  auto operator()(P& pool, In&& in, C done) const -> decltype(pool.send_batch_async(std::forward<In>(in), std::move(done))) {
    return pool.send_batch_async(std::forward<In>(in), std::move(done));
  }
};
struct start_create_batch {
  template <class P, class In, class C>
  auto operator()(P& pool, In&& in, C done) const -> decltype(pool.create_batch_async(std::forward<In>(in), std::move(done))) {
    return pool.create_batch_async(std::forward<In>(in), std::move(done));
  }
};
struct start_remove_batch {
  template <class P, class In, class C>
  auto operator()(P& pool, In&& in, C done) const -> decltype(pool.remove_batch_async(std::forward<In>(in), std::move(done))) {
    return pool.remove_batch_async(std::forward<In>(in), std::move(done));
  }
};

/// One create: nothing, or what create throws.
template <class... A>
struct create_kind {
  static constexpr bool k_single = true;
  using input = create_request<A...>;
  using value = result<void>;
  static id_t id_of(const input& r) noexcept { return r.id; }
  template <class P, class C>
  static auto start(P& pool, input&& in, C done) -> decltype(pool.create_async(std::move(in), std::move(done))) {
    return pool.create_async(std::move(in), std::move(done));
  }
  static void finish(value&& v) { std::move(v).value(); }
};

/// One remove: true if the item existed (as remove), or what remove throws.
struct remove_kind {
  static constexpr bool k_single = true;
  using input = id_t;
  using value = result<void>;
  static id_t id_of(input id) noexcept { return id; }
  template <class P, class C>
  static auto start(P& pool, input&& in, C done) -> decltype(pool.remove_async(in, std::move(done))) {
    return pool.remove_async(in, std::move(done));
  }
  static bool finish(value&& v) {
    if (v.has_error() && v.error().code == errc::unknown_id) return false;
    std::move(v).value();
    return true;
  }
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
[[nodiscard]] auto async_batch(Pool& pool, Range&& requests, Sched resume_on, std::stop_token stop = {}) {
  using R = std::ranges::range_value_t<Range>;
  using kind = impl::batch_kind<R, response_t<R>, impl::start_send_batch>;
  return impl::pool_awaiter<Pool, kind, Sched>(pool, mtp::to_vector<R>(std::forward<Range>(requests)),
                                               std::move(resume_on), std::move(stop));
}

/// co_await mtp::async_create(pool, mtp::make_create(id, args...), resume_on [, stop]): builds
/// the item on its worker (Pool::create_async) and resumes once it exists; throws what create
/// throws (the constructor's exception, or pool_error: duplicate_id, pool_stopped, ...).
template <class Pool, class... A, resume_target Sched>
[[nodiscard]] impl::pool_awaiter<Pool, impl::create_kind<A...>, Sched> async_create(Pool& pool,
                                                                                  create_request<A...> r,
                                                                                  Sched resume_on,
                                                                                  std::stop_token stop = {}) {
  return {pool, std::move(r), std::move(resume_on), std::move(stop)};
}

/// co_await mtp::async_remove(pool, id, resume_on [, stop]): true once the item is destroyed,
/// false if there was none (as remove); throws pool_error otherwise (pool_stopped, ...).
template <class Pool, resume_target Sched>
[[nodiscard]] impl::pool_awaiter<Pool, impl::remove_kind, Sched> async_remove(Pool& pool, id_t id, Sched resume_on,
                                                                            std::stop_token stop = {}) {
  return {pool, id, std::move(resume_on), std::move(stop)};
}

/// co_await mtp::async_create_batch(pool, create_requests, resume_on [, stop]): one
/// mtp::result<void> per request, in order (never throws for a request's failure).
template <class Pool, std::ranges::input_range Range, resume_target Sched>
  requires impl::is_create_request<std::ranges::range_value_t<Range>>
[[nodiscard]] auto async_create_batch(Pool& pool, Range&& requests, Sched resume_on, std::stop_token stop = {}) {
  using C = std::ranges::range_value_t<Range>;
  using kind = impl::batch_kind<C, void, impl::start_create_batch>;
  return impl::pool_awaiter<Pool, kind, Sched>(pool, mtp::to_vector<C>(std::forward<Range>(requests)),
                                               std::move(resume_on), std::move(stop));
}

/// co_await mtp::async_remove_batch(pool, ids, resume_on [, stop]): one mtp::result<void> per
/// id, in order (errc::unknown_id for those that did not exist).
template <class Pool, id_range Ids, resume_target Sched>
[[nodiscard]] auto async_remove_batch(Pool& pool, Ids&& ids, Sched resume_on, std::stop_token stop = {}) {
  using kind = impl::batch_kind<id_t, void, impl::start_remove_batch>;
  return impl::pool_awaiter<Pool, kind, Sched>(pool, mtp::to_vector<id_t>(std::forward<Ids>(ids)),
                                               std::move(resume_on), std::move(stop));
}

}  // namespace mtp
