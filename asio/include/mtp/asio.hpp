// SPDX-License-Identifier: MIT
// mtp::asio: pool requests as Asio asynchronous operations (standalone Asio, 1.22 or later).
//
//   int v = co_await mtp::asio::async_send(pool, add{1, 5}, asio::use_awaitable);
//   auto rs = co_await mtp::asio::async_send_batch(pool, requests, asio::use_awaitable);
//   mtp::asio::async_send(pool, add{1, 5}, asio::bind_executor(io, [](std::exception_ptr e, int v) {...}));
//
// Both follow Asio's universal asynchronous model (asio::async_initiate): any completion token
// works (callbacks, asio::use_awaitable, asio::use_future, asio::experimental::deferred /
// asio::deferred, as_tuple, redirect_error, ...).
//
// Completion signatures
//   async_send, response T      void(std::exception_ptr, T)   (T must be default-constructible)
//   async_send, response void   void(std::exception_ptr)
//   async_send_batch            void(std::exception_ptr, std::vector<mtp::result<T>>)
// The exception_ptr is null on success. Otherwise it holds exactly what mtp::thread_pool::send
// would throw: the handler's own exception (so co_await with use_awaitable rethrows it, and
// use_future's get() too), or mtp::pool_error with its errc (unknown_id, pool_stopped,
// invalid_route, queue_full, ...), except for a request cancelled before it started:
// std::system_error(asio::error::operation_aborted), as every Asio operation reports it.
// For a batch, each request's outcome is in its mtp::result (request order); the
// exception_ptr is null, or system_error(operation_aborted) when the operation was cancelled
// and at least one request was skipped (the vector still holds every result: the skipped
// ones as errc::cancelled, those that ran with their responses).
//
// Where the completion runs: always on the handler's associated executor (for use_awaitable
// the coroutine's executor), through asio::post: never on a pool worker and never inside the
// initiating call. A handler with no associated executor completes on asio::system_executor
// (Asio's own thread pool); bind your callback to your executor (asio::bind_executor). The
// operation holds outstanding work on that executor until the handler has run, so an
// io_context::run() does not return while requests are in flight.
//
// Allocation: the completion posted to the executor uses the handler's associated allocator,
// as does the operation's own state; the pool's per-request allocation is the pool's.
//
// Cancellation: per operation, through the handler's associated cancellation slot
// (asio::cancellation_signal, asio::bind_cancellation_slot, awaitable operators, ...):
// async_send honours terminal, partial and total cancellation; async_send_batch terminal and
// partial (some requests of the batch may have run). A request that has not started when the
// signal is emitted is skipped and the operation completes with
// system_error(asio::error::operation_aborted). A request that has already started runs to
// the end and the handler receives its outcome exactly as if nothing had been cancelled (a
// response, or the handler's exception). The handler runs exactly once in every case, also
// when the pool shuts down with operations in flight (then with the response or with
// pool_error(pool_stopped)). Emit the signal from the handler's executor, as Asio requires.
//
// The pool must stay alive until the operation has been initiated (with a deferred token:
// until it is launched); it may be shut down or destroyed while operations are in flight.
// The executor's execution context (the io_context) must outlive every operation in flight:
// a worker posts the completion to it. Shut the pool down first (every completion is then
// queued), then stop and destroy the io_context; queued completions that never run are
// destroyed with it, handler included.
#pragma once

#ifndef ASIO_STANDALONE
#define ASIO_STANDALONE
#endif
// Asio 1.22 enables co_await on clang only with libc++'s <experimental/coroutine>; C++20
// <coroutine> (libstdc++) works as well. (The mtp::asio target also defines this for clang.)
#if !defined(ASIO_HAS_CO_AWAIT) && defined(__clang__) && defined(__cpp_impl_coroutine) && __has_include(<coroutine>)
#define ASIO_HAS_CO_AWAIT 1
#endif

#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/bind_allocator.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <asio/execution.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/system_executor.hpp>

#include <atomic>
#include <exception>
#include <memory>
#include <ranges>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <mtp/core/batch.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/result.hpp>

namespace mtp::asio {

namespace impl {
template <class T>
struct send_signature {
  using type = void(std::exception_ptr, T);
};
template <>
struct send_signature<void> {
  using type = void(std::exception_ptr);
};
}  // namespace impl

/// The completion signature of async_send for a response type T.
template <class T>
using send_signature = typename impl::send_signature<T>::type;

/// The completion signature of async_send_batch for a response type T.
template <class T>
using batch_signature = void(std::exception_ptr, std::vector<mtp::result<T>>);

/// What a failed request reports: the handler's exception, pool_error(code), or, for a request
/// skipped by cancellation, std::system_error(asio::error::operation_aborted).
inline std::exception_ptr to_exception_ptr(const mtp::error& e) {
  if (e.code == errc::cancelled) {
    return std::make_exception_ptr(std::system_error(::asio::error::make_error_code(::asio::error::operation_aborted)));
  }
  if (e.exception) return e.exception;
  return std::make_exception_ptr(pool_error(e));
}

namespace impl {

/// One operation in flight: the handler, outstanding work on its executor, the pool's handle
/// and the value, in one allocation from the handler's associated allocator. The worker's
/// callback and the initiating call each arrive once; the second posts the completion.
template <class Handler, class Value, class Deliver>
class operation {
 public:
  using allocator_type = ::asio::associated_allocator_t<Handler>;
  using executor_type = ::asio::associated_executor_t<Handler, ::asio::system_executor>;
  using work_type = std::decay_t<decltype(::asio::prefer(std::declval<const executor_type&>(),
                                                         ::asio::execution::outstanding_work.tracked))>;
  using slot_type = ::asio::associated_cancellation_slot_t<Handler>;
  using alloc_traits = typename std::allocator_traits<allocator_type>::template rebind_traits<operation>;
  using op_allocator = typename std::allocator_traits<allocator_type>::template rebind_alloc<operation>;

  /// Allocates and builds an operation with the handler's allocator.
  template <class H>
  static operation* make(H&& h) {
    op_allocator alloc(::asio::get_associated_allocator(h));
    operation* p = alloc_traits::allocate(alloc, 1);
    try {
      alloc_traits::construct(alloc, p, Handler(std::forward<H>(h)));
    } catch (...) {
      alloc_traits::deallocate(alloc, p, 1);
      throw;
    }
    return p;
  }
  /// Destroys and frees it (before the handler runs, as Asio asks).
  static void destroy(operation* p) noexcept {
    op_allocator alloc(::asio::get_associated_allocator(p->handler_));
    alloc_traits::destroy(alloc, p);
    alloc_traits::deallocate(alloc, p, 1);
  }

  explicit operation(Handler&& h)
      : handler_(std::move(h)),
        work_(::asio::prefer(::asio::get_associated_executor(handler_, ::asio::system_executor()),
                             ::asio::execution::outstanding_work.tracked)),
        slot_(::asio::get_associated_cancellation_slot(handler_)) {}

  /// The pool's callback: runs once, on a worker (or inline when the request was not sent).
  struct on_done {
    operation* op;
    void operator()(Value&& v) noexcept {
      op->value_ = std::move(v);
      op->arrive();
    }
  };

  /// The initiating call's part, once the request is on its way.
  void started(async_handle handle, ::asio::cancellation_type supported) {
    handle_ = std::move(handle);
    if (slot_.is_connected()) slot_.template emplace<canceller>(this, supported);
    arrive();
  }

 private:
  struct canceller {
    canceller(operation* o, ::asio::cancellation_type s) noexcept : op(o), supported(s) {}
    operation* op;
    ::asio::cancellation_type supported;
    void operator()(::asio::cancellation_type type) const noexcept {
      if ((type & supported) != ::asio::cancellation_type::none) op->handle_.cancel();
    }
  };

  /// Runs the handler on its executor; owns the operation until then (freed unrun if the
  /// executor is destroyed with it still queued).
  class completer {
   public:
    explicit completer(operation* op) noexcept : op_(op) {}
    completer(completer&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
    completer& operator=(completer&&) = delete;
    ~completer() {
      if (op_ != nullptr) destroy(op_);
    }
    void operator()() {
      operation* op = std::exchange(op_, nullptr);
      if (op->slot_.is_connected()) op->slot_.clear();
      Handler handler(std::move(op->handler_));
      Value value(std::move(op->value_));
      destroy(op);  // also lets go of the outstanding work: this function is still queued work
      Deliver{}(std::move(handler), std::move(value));
    }

   private:
    operation* op_;
  };

  void arrive() noexcept {
    if (!arrived_.exchange(true, std::memory_order_acq_rel)) return;  // the other party posts
    const work_type work = work_;
    const allocator_type alloc = ::asio::get_associated_allocator(handler_);
    ::asio::post(work, ::asio::bind_allocator(alloc, completer(this)));
  }

  Handler handler_;
  work_type work_;
  slot_type slot_;
  Value value_{};
  async_handle handle_;
  std::atomic<bool> arrived_{false};
};

template <class T>
struct deliver_one {
  template <class Handler>
  void operator()(Handler&& handler, mtp::result<T>&& r) const {
    if constexpr (std::is_void_v<T>) {
      std::move(handler)(r.has_value() ? std::exception_ptr() : to_exception_ptr(r.error()));
    } else if (r.has_value()) {
      std::move(handler)(std::exception_ptr(), std::move(r).value());
    } else {
      std::move(handler)(to_exception_ptr(r.error()), T{});
    }
  }
};

template <class T>
struct deliver_batch {
  template <class Handler>
  void operator()(Handler&& handler, std::vector<mtp::result<T>>&& rs) const {
    std::exception_ptr e;
    for (const auto& r : rs) {
      if (r.has_error() && r.error().code == errc::cancelled) {
        e = to_exception_ptr(r.error());
        break;
      }
    }
    std::move(handler)(std::move(e), std::move(rs));
  }
};

template <class Pool, class R>
struct initiate_send {
  template <class Handler>
  void operator()(Handler&& handler, Pool* pool, R r) const {
    using T = response_t<R>;
    using op = operation<std::decay_t<Handler>, mtp::result<T>, deliver_one<T>>;
    std::unique_ptr<op, void (*)(op*)> owned(op::make(std::forward<Handler>(handler)), &op::destroy);
    async_handle h = pool->send_async(std::move(r), typename op::on_done{owned.get()});
    owned.release()->started(std::move(h), ::asio::cancellation_type::terminal | ::asio::cancellation_type::partial |
                                               ::asio::cancellation_type::total);
  }
};

template <class Pool, class R>
struct initiate_batch {
  template <class Handler>
  void operator()(Handler&& handler, Pool* pool, std::vector<R> requests) const {
    using T = response_t<R>;
    using op = operation<std::decay_t<Handler>, std::vector<mtp::result<T>>, deliver_batch<T>>;
    std::unique_ptr<op, void (*)(op*)> owned(op::make(std::forward<Handler>(handler)), &op::destroy);
    async_handle h = pool->send_batch_async(std::move(requests), typename op::on_done{owned.get()});
    owned.release()->started(std::move(h), ::asio::cancellation_type::terminal | ::asio::cancellation_type::partial);
  }
};

}  // namespace impl

/// Sends `r` to item `r.id` of `pool` as an Asio asynchronous operation; completes with
/// send_signature<T> on the handler's executor (see the top of this header).
template <class Pool, request R, class Token>
  requires(std::is_void_v<response_t<R>> || std::is_default_constructible_v<response_t<R>>)
auto async_send(Pool& pool, R r, Token&& token) {
  return ::asio::async_initiate<Token, send_signature<response_t<R>>>(impl::initiate_send<Pool, R>{}, token, &pool,
                                                                      std::move(r));
}

/// Sends a batch (any input range of requests, copied at once) as one Asio asynchronous
/// operation; completes with batch_signature<T>: the responses in request order.
template <class Pool, std::ranges::input_range Range, class Token>
  requires request<std::ranges::range_value_t<Range>>
auto async_send_batch(Pool& pool, Range&& requests, Token&& token) {
  using R = std::ranges::range_value_t<Range>;
  std::vector<R> owned;
  if constexpr (std::ranges::sized_range<Range>) owned.reserve(std::ranges::size(requests));
  for (auto&& r : requests) owned.emplace_back(std::forward<decltype(r)>(r));
  return ::asio::async_initiate<Token, batch_signature<response_t<R>>>(impl::initiate_batch<Pool, R>{}, token, &pool,
                                                                       std::move(owned));
}

}  // namespace mtp::asio
