// SPDX-License-Identifier: MIT
// mtp::asio: pool requests as Asio asynchronous operations (standalone Asio, 1.22 or later).
//
//   int v = co_await mtp::asio::async_send(pool, add{1, 5}, asio::use_awaitable);
//   auto rs = co_await mtp::asio::async_send_batch(pool, requests, asio::use_awaitable);
//   mtp::asio::async_send(pool, add{1, 5}, asio::bind_executor(io, [](std::error_code ec, int v) {...}));
//   co_await mtp::asio::async_create(pool, mtp::make_create(7, 100), asio::use_awaitable);
//   bool existed = co_await mtp::asio::async_remove(pool, 7, asio::use_awaitable);
//   int w = co_await mtp::asio::async_send(pool, add{1, 5}, asio::redirect_error(asio::use_awaitable, ec));
//
// The lifecycle: async_create, async_remove, async_create_batch and async_remove_batch (on the
// pool's create_async, remove_async, create_batch_async, remove_batch_async), with every rule
// below. async_remove answers as thread_pool::remove: `true` once the item is destroyed, `false`
// with no error when there was no such item (unknown_id is no failure there);
// async_remove_batch keeps errc::unknown_id in its results, as remove_batch.
//
// All follow Asio's universal asynchronous model (asio::async_initiate): any completion token
// works (callbacks, asio::use_awaitable, asio::use_future, asio::experimental::deferred /
// asio::deferred, as_tuple, redirect_error, ...).
//
// Completion signatures. Errors follow Asio's convention: a std::error_code first, in the
// category mtp::error_category() (`ec == mtp::errc::unknown_id`), or
// asio::error::operation_aborted for a request skipped by cancellation, so that
// redirect_error, as_tuple and `ec == asio::error::operation_aborted` work as with any Asio
// operation. Only the tokens that turn a failure into an exception get a std::exception_ptr
// first instead, so that the item's own exception reaches them as itself, as it does through
// mtp::thread_pool::send (a std::error_code would reach them as std::system_error):
//
//   throwing tokens (is_throwing_token): use_awaitable, use_future, and either of them bound
//   with bind_executor, bind_allocator or bind_cancellation_slot
//     async_send         void(std::exception_ptr, V)     void(std::exception_ptr) for void
//     async_send_batch   void(std::exception_ptr, std::vector<mtp::result<T>>)
//     async_create       void(std::exception_ptr)
//     async_remove       void(std::exception_ptr, bool)
//     async_create_batch, async_remove_batch   void(std::exception_ptr, std::vector<mtp::result<void>>)
//   every other token: callbacks, redirect_error, as_tuple, deferred, detached, ...
//     async_send         void(std::error_code, V)        void(std::error_code) for void
//     async_send_batch   void(std::error_code, std::vector<mtp::result<T>>)
//     async_create       void(std::error_code)
//     async_remove       void(std::error_code, bool)
//     async_create_batch, async_remove_batch   void(std::error_code, std::vector<mtp::result<void>>)
//
// V (send_value_t<T>) is T when T is default-constructible (T{} when the request failed),
// else std::optional<T> (empty exactly when the request failed), for every token: with
// use_awaitable, co_await then gives a std::optional<T> that is always engaged. The aliases
// below name the signatures: send_signature<T>, throwing_send_signature<T>,
// batch_signature<T>, throwing_batch_signature<T>, create_signature, remove_signature and their
// throwing_ forms.
//
// error_code form: empty on success; else make_error_code(errc) of the failure (unknown_id,
// pool_stopped, invalid_route, queue_full, ...; errc::handler_failed or errc::hook_failed when
// the item's handler or hook threw: that exception itself does not travel in this form; use a
// throwing token, or async_send_batch, whose results keep it), or
// asio::error::operation_aborted for a request cancelled before it started.
// exception_ptr form: null on success; else exactly what the blocking call (send, create) would throw:
// the handler's own exception (the constructor's, for async_create; co_await rethrows it, as does
// use_future's get()), or
// mtp::pool_error, a std::system_error whose code() is the mtp error_code; a request skipped by
// cancellation: std::system_error(asio::error::operation_aborted), as every Asio operation.
// A deferred operation has the error_code form whatever token launches it later (its
// signature is fixed when it is created). A token of your own that throws can have the
// exception_ptr form by specialising mtp::asio::is_throwing_token.
// For a batch, each request's outcome is in its mtp::result (request order); the first
// argument is success, or operation_aborted when the operation was cancelled and at least one
// request was skipped (the vector still holds every result: the skipped ones as
// errc::cancelled, those that ran with their responses).
//
// Where the completion runs: always on the handler's associated executor (for use_awaitable
// the coroutine's executor), as through asio::post: never on a pool worker and never inside
// the initiating call. Completions for an io_context's own executor (io_context::executor_type
// in any variant, or an any_io_executor holding one: use_awaitable in a coroutine co_spawned
// on an io_context, bind_executor(io, ...)) travel in bulk: workers queue them on the context
// without a lock, and one posted drain runs all those queued so far, one after another, in the
// order they completed (one executor post per drain, not per completion). Every other executor
// (a strand, a thread pool's, your own) gets one asio::post per completion. A handler with no
// associated executor completes on asio::system_executor (Asio's own thread pool); bind your
// callback to your executor (asio::bind_executor). The operation holds outstanding work on that executor until the handler has run, so an
// io_context::run() does not return while requests are in flight.
//
// Allocation: the operation's own state uses the handler's associated allocator, as does the
// completion posted to an executor that is not an io_context's own (a completion in bulk
// allocates nothing, and its drain lives in a buffer of the context's own). On a
// mtp::thread_pool, async_send's request and result live in the operation (an
// mtp::async_slot), so one request is one allocation, through that allocator (none with one
// that recycles, such as asio::recycling_allocator); the batch, create and remove forms add
// the pool's own block.
//
// Cancellation: per operation, through the handler's associated cancellation slot
// (asio::cancellation_signal, asio::bind_cancellation_slot, awaitable operators, ...).
// One request, create or remove (async_send, async_create, async_remove): terminal and partial
// cancellation complete the operation at once with asio::error::operation_aborted, also while
// its worker is busy with something else (so `co_await (op || timer)` and parallel_group's
// wait-for-one do not wait for the worker): the request is skipped when the worker reaches it,
// or, if it has already started, runs to the end and its result is dropped. Only when the
// pool's callback has already begun (the result is on its way) does the handler receive that
// outcome instead. Total cancellation (no side effect allowed) only skips a request that has
// not started; one already running finishes and the handler receives its outcome unchanged.
// Batches (async_send_batch, async_create_batch, async_remove_batch), terminal and partial: the
// requests that have not started are skipped, and the operation completes once the rest has
// run (operation_aborted first when at least one was skipped). The handler runs exactly once
// in every case, also when the pool shuts down with operations in flight (then with the
// response or with errc::pool_stopped). Emit the signal from the handler's executor, as Asio
// requires.
//
// The pool must stay alive until the operation has been initiated (with a deferred token:
// until it is launched); it may be shut down or destroyed while operations are in flight.
// The executor's execution context (the io_context) may be destroyed with operations in
// flight, in either order with the pool, as with Asio's own I/O objects: its destructor
// destroys, on the destroying thread, the handler (and the outstanding work) of every
// operation whose completion is not queued yet, as it destroys the queued ones; the requests
// themselves still run, and the worker that finishes one later drops its completion instead of
// posting into the freed context (a service of the context, mtp::asio::impl::context_guard,
// records the operations in flight on it). What remains: the handler's associated allocator
// must stay usable until the pool has answered the request (what is left of such an operation
// is freed through it, on the worker), and the cancellation slot's signal must outlive the
// handler, as Asio asks of every operation.
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
#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/any_io_executor.hpp>
#include <asio/error.hpp>
#include <asio/execution_context.hpp>
#include <asio/io_context.hpp>
#include <asio/execution.hpp>
#include <asio/post.hpp>
#include <asio/query.hpp>
#include <asio/prefer.hpp>
#include <asio/system_executor.hpp>
#include <asio/use_future.hpp>
#if defined(ASIO_HAS_CO_AWAIT)
#include <asio/use_awaitable.hpp>
#endif

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <mtp/core/async_slot.hpp>
#include <mtp/core/batch.hpp>
#include <mtp/core/forwarding.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/result.hpp>

namespace mtp::asio {

/// Whether a completion token turns a failure into an exception, and so gets the
/// std::exception_ptr form of the completion signatures (see the top of this header): true for
/// asio::use_awaitable_t and asio::use_future_t, and for a token bound to an executor, an
/// allocator or a cancellation slot when the token itself is. Specialise it (true_type) for a
/// token of your own that throws the first argument.
template <class Token>
struct is_throwing_token : std::false_type {};
#if defined(ASIO_HAS_CO_AWAIT)
template <class Executor>
struct is_throwing_token<::asio::use_awaitable_t<Executor>> : std::true_type {};
#endif
#if defined(ASIO_HAS_STD_FUTURE_CLASS)
template <class Allocator>
struct is_throwing_token<::asio::use_future_t<Allocator>> : std::true_type {};
#endif
template <class T, class Executor>
struct is_throwing_token<::asio::executor_binder<T, Executor>> : is_throwing_token<T> {};
template <class T, class Allocator>
struct is_throwing_token<::asio::allocator_binder<T, Allocator>> : is_throwing_token<T> {};
template <class T, class Slot>
struct is_throwing_token<::asio::cancellation_slot_binder<T, Slot>> : is_throwing_token<T> {};

template <class Token>
inline constexpr bool is_throwing_token_v = is_throwing_token<std::decay_t<Token>>::value;

/// The value argument of async_send's completion for a non-void response T: T itself when it is
/// default-constructible (T{} on failure), else std::optional<T> (empty on failure).
template <class T>
using send_value_t = std::conditional_t<std::is_default_constructible_v<T>, T, std::optional<T>>;

namespace impl {
template <class First, class T>
struct send_signature {
  using type = void(First, send_value_t<T>);
};
template <class First>
struct send_signature<First, void> {
  using type = void(First);
};
}  // namespace impl

/// async_send's completion signature for a response type T and every token but the throwing
/// ones: void(std::error_code, send_value_t<T>), or void(std::error_code) for void.
template <class T>
using send_signature = typename impl::send_signature<std::error_code, T>::type;
/// async_send's completion signature for a throwing token (is_throwing_token):
/// void(std::exception_ptr, send_value_t<T>), or void(std::exception_ptr) for void.
template <class T>
using throwing_send_signature = typename impl::send_signature<std::exception_ptr, T>::type;

/// async_send_batch's completion signature for a response type T, every token but the
/// throwing ones.
template <class T>
using batch_signature = void(std::error_code, std::vector<mtp::result<T>>);
/// async_send_batch's completion signature for a throwing token (is_throwing_token).
template <class T>
using throwing_batch_signature = void(std::exception_ptr, std::vector<mtp::result<T>>);

/// async_create's completion signature: void(std::error_code); for a throwing token
/// void(std::exception_ptr).
using create_signature = void(std::error_code);
using throwing_create_signature = void(std::exception_ptr);
/// async_remove's completion signature: void(std::error_code, bool) (`false`: no such item,
/// or a failure); for a throwing token void(std::exception_ptr, bool).
using remove_signature = void(std::error_code, bool);
using throwing_remove_signature = void(std::exception_ptr, bool);

/// A failed request in the error_code form: asio::error::operation_aborted for a request
/// skipped by cancellation, else make_error_code(e.code) in mtp::error_category().
inline std::error_code to_error_code(const mtp::error& e) noexcept {
  if (e.code == errc::cancelled) return ::asio::error::make_error_code(::asio::error::operation_aborted);
  return mtp::make_error_code(e.code);
}

/// A failed request in the exception_ptr form: the handler's exception, pool_error(code) (a
/// std::system_error with the mtp code), or, for a request skipped by cancellation,
/// std::system_error(asio::error::operation_aborted).
inline std::exception_ptr to_exception_ptr(const mtp::error& e) {
  if (e.code == errc::cancelled) {
    return std::make_exception_ptr(std::system_error(::asio::error::make_error_code(::asio::error::operation_aborted)));
  }
  if (e.exception) return e.exception;
  return std::make_exception_ptr(pool_error(e));
}

namespace impl {

/// What the context_guard of an execution context sees of an operation in flight: its link in
/// the guard's list (under the guard's mutex) and who completes it (`state`, see operation).
struct tracked {
  static constexpr std::uint8_t k_live = 0;     // in flight; the second arrival will post
  static constexpr std::uint8_t k_posting = 1;  // the second arrival is posting the completion
  static constexpr std::uint8_t k_posted = 2;   // the completion is queued on the context
  static constexpr std::uint8_t k_closing = 3;  // the context shuts down: it destroys the handler
  static constexpr std::uint8_t k_orphan = 4;   // closing, and the second arrival has come
  static constexpr std::uint8_t k_gone = 5;     // the handler is destroyed; the pool still owes its arrival
  std::atomic<std::uint8_t> state{k_live};
  tracked* prev = nullptr;  // the guard's list, under its mutex
  tracked* next = nullptr;
  bool linked = false;
  void (*close)(tracked*) noexcept = nullptr;  // destroys the handler and the work (shutdown)
  void (*free_rest)(tracked*) noexcept = nullptr;  // frees what is left of a closed operation
  // Completion in bulk (an io_context's own executor): the guard's list of completed operations.
  tracked* ready_next = nullptr;
  void (*complete)(tracked*) = nullptr;        // runs the handler, from a drain on the context
  void (*discard)(tracked*) noexcept = nullptr;  // destroys it unrun (the context shuts down)
};

/// Completed operations on their way to an io_context, pushed by any number of workers and
/// taken all at once by the context's thread: a lock-free LIFO of intrusive links (the
/// operation is the node, so nothing is allocated), reversed on taking, so a drain runs them
/// in the order they completed. Only the push that finds the list empty asks for a drain: one
/// executor post per drain, however many completions it carries.
template <class Node>
class ready_list {
 public:
  /// Adds `n`; true when the list was empty (the caller then posts the drain).
  bool push(Node* n) noexcept {
    Node* head = head_.load(std::memory_order_relaxed);
    do {
      n->ready_next = head;
      // release: the drain that takes `n` sees everything written to it before the push.
    } while (!head_.compare_exchange_weak(head, n, std::memory_order_release, std::memory_order_relaxed));
    return head == nullptr;
  }
  /// Takes every node pushed so far, oldest first (null when empty).
  Node* take() noexcept {
    // acquire: pairs with the pushes' release.
    Node* lifo = head_.exchange(nullptr, std::memory_order_acquire);
    Node* fifo = nullptr;
    while (lifo != nullptr) {
      Node* const next = lifo->ready_next;
      lifo->ready_next = fifo;
      fifo = lifo;
      lifo = next;
    }
    return fifo;
  }

 private:
  std::atomic<Node*> head_{nullptr};
};

/// The io_context of an executor that runs handlers on the context's own threads without a
/// strand (io_context::executor_type in any of its variants, or an any_io_executor holding
/// one): its completions can run one after another from one drain. Null for any other
/// executor (a strand, a thread pool's, a user's), whose completions are posted one by one.
template <class Executor>
::asio::io_context* plain_io_context(const Executor& ex) noexcept {
  using plain = ::asio::io_context::executor_type;
  using plain_tracked = std::decay_t<decltype(::asio::prefer(std::declval<const plain&>(),
                                                             ::asio::execution::outstanding_work.tracked))>;
  if constexpr (std::is_same_v<Executor, plain> || std::is_same_v<Executor, plain_tracked>) {
    return &ex.context();
  } else if constexpr (std::is_same_v<Executor, ::asio::any_io_executor>) {
    if (const plain* e = ex.template target<plain>()) return &e->context();
    if (const plain_tracked* e = ex.template target<plain_tracked>()) return &e->context();
    return nullptr;
  } else {
    return nullptr;
  }
}

/// An execution context's record of the adapter's operations in flight on it (asio::use_service):
/// its shutdown, which runs in the context's destructor before the context's scheduler goes,
/// destroys the handler of every operation whose completion is not queued yet, as Asio's own
/// services do, so that a worker finishing one later drops its completion instead of posting
/// into the freed context. One mutex per context, taken when an operation starts and ends on
/// the context's threads; a worker never takes it.
class context_guard final : public ::asio::execution_context::service {
 public:
  using key_type = context_guard;
  explicit context_guard(::asio::execution_context& context) : ::asio::execution_context::service(context) {}

  void add(tracked* t) {
    const std::lock_guard lock(m_);
    t->next = head_;
    if (head_ != nullptr) head_->prev = t;
    head_ = t;
    t->linked = true;
  }
  void remove(tracked* t) noexcept {
    const std::lock_guard lock(m_);
    unlink(t);
  }

  /// Queues the completed operation `t` (k_posting, so the context cannot shut down
  /// meanwhile) for the next drain on `io` (this guard's context), stores k_posted, and posts
  /// the drain when none is pending. k_posted is stored before the post, so the drain never
  /// waits for this thread to come back from the post's wake-up system call; shutdown() waits
  /// for `drains_posting_` instead.
  void push_ready(tracked* t, ::asio::io_context& io) {
    if (!ready_.push(t)) {
      // release: the drain that runs `t` (already pending) sees it posted.
      t->state.store(tracked::k_posted, std::memory_order_release);
      return;
    }
    // relaxed: the release store below orders it before a shutdown that sees k_posted.
    drains_posting_.fetch_add(1, std::memory_order_relaxed);
    // release: as above; and a shutdown that sees k_posted also sees the count above.
    t->state.store(tracked::k_posted, std::memory_order_release);
    ::asio::post(io.get_executor(), ::asio::bind_allocator(drain_allocator<void>{this}, drain{this, &io}));
    // release: shutdown() sees the post done before it discards the list.
    drains_posting_.fetch_sub(1, std::memory_order_release);
  }

 private:
  /// Where Asio builds a posted drain: the guard's own buffer. At most one drain is posted and
  /// not yet run (a push posts one only when it finds the list empty, and Asio frees a
  /// handler's memory before it runs it), so one buffer serves them all and a drain allocates
  /// nothing; a drain that does not fit, or finds the buffer taken, goes to the heap.
  template <class T>
  struct drain_allocator {
    using value_type = T;
    context_guard* guard;
    explicit drain_allocator(context_guard* g) noexcept : guard(g) {}
    template <class U>
    drain_allocator(const drain_allocator<U>& other) noexcept : guard(other.guard) {}  // NOLINT: rebinding converts implicitly
    T* allocate(std::size_t n) {
      if (n * sizeof(T) <= sizeof(guard->drain_buffer_) && alignof(T) <= alignof(std::max_align_t) &&
          // acquire: the previous drain's release of the buffer happens before it is reused.
          !guard->drain_buffer_busy_.exchange(true, std::memory_order_acquire)) {
        return reinterpret_cast<T*>(guard->drain_buffer_);  // NOLINT: the buffer is raw storage for one T
      }
      return std::allocator<T>().allocate(n);
    }
    void deallocate(T* p, std::size_t n) noexcept {
      if (static_cast<void*>(p) == static_cast<void*>(guard->drain_buffer_)) {
        // release: this drain's last use of the buffer happens before the next one takes it.
        guard->drain_buffer_busy_.store(false, std::memory_order_release);
      } else {
        std::allocator<T>().deallocate(p, n);
      }
    }
    template <class U>
    bool operator==(const drain_allocator<U>& other) const noexcept {
      return guard == other.guard;
    }
  };

  /// Runs every queued completion on the context's thread. Destroyed unrun when the context
  /// shuts down with it queued: shutdown() has already discarded the list.
  struct drain {
    context_guard* guard;
    ::asio::io_context* io;
    void operator()() const {
      tracked* t = guard->ready_.take();
      while (t != nullptr) {
        tracked* const next = t->ready_next;
        try {
          t->complete(t);
        } catch (...) {
          // The handler's exception leaves io_context::run(), as for any handler; what this
          // drain had not run yet goes to the next one.
          for (tracked* rest = next; rest != nullptr;) {
            tracked* const after = rest->ready_next;
            guard->push_ready(rest, *io);
            rest = after;
          }
          throw;
        }
        t = next;
      }
    }
  };

  void unlink(tracked* t) noexcept {
    if (!t->linked) return;
    if (t->prev != nullptr) t->prev->next = t->next;
    else head_ = t->next;
    if (t->next != nullptr) t->next->prev = t->prev;
    t->prev = t->next = nullptr;
    t->linked = false;
  }

  void shutdown() override {
    tracked* closing = nullptr;  // claimed here, closed outside the lock
    {
      const std::lock_guard lock(m_);
      for (tracked* t = head_; t != nullptr;) {
        tracked* const next = t->next;
        std::uint8_t s = tracked::k_live;
        // acq_rel: acquire pairs with the posting side's release of k_posted; release is for
        // the arrival that later sees k_closing or k_gone.
        while (!t->state.compare_exchange_weak(s, tracked::k_closing, std::memory_order_acq_rel)) {
          if (s == tracked::k_posted) break;  // queued: the scheduler's shutdown destroys it
          s = tracked::k_live;                // k_posting: lasts one post
          std::this_thread::yield();
        }
        if (s != tracked::k_posted) {
          unlink(t);
          t->next = closing;
          closing = t;
        }
        t = next;
      }
    }
    while (closing != nullptr) {
      tracked* const t = closing;
      closing = t->next;
      t->close(t);
      // acq_rel: release hands the closed operation to a later arrival; acquire sees an
      // arrival that came meanwhile (k_orphan) before freeing here.
      if (t->state.exchange(tracked::k_gone, std::memory_order_acq_rel) == tracked::k_orphan) t->free_rest(t);
    }
    // Completed operations waiting for a drain (k_posted, so the loop above left them), once
    // no drain is being posted: the drain itself is destroyed unrun by the context's scheduler,
    // which shuts down after.
    // acquire: pairs with push_ready's release decrement.
    while (drains_posting_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    for (tracked* t = ready_.take(); t != nullptr;) {
      tracked* const next = t->ready_next;
      t->discard(t);
      t = next;
    }
  }

  std::mutex m_;
  tracked* head_ = nullptr;
  ready_list<tracked> ready_;
  std::atomic<int> drains_posting_{0};  // push_ready calls inside asio::post of a drain
  // The posted drain's storage (see drain_allocator): Asio's operation holding a drain is a
  // few pointers; 128 bytes leave room for other Asio versions.
  alignas(std::max_align_t) unsigned char drain_buffer_[128]{};
  std::atomic<bool> drain_buffer_busy_{false};
};

/// The guard of an executor's execution context (Asio's standard executors and the older
/// ones), or null for an executor with no context (use_future's runs the handler inline).
template <class Executor>
context_guard* guard_of(const Executor& ex) {
  if constexpr (::asio::can_query<const Executor&, ::asio::execution::context_t>::value) {
    ::asio::execution_context& context = ::asio::query(ex, ::asio::execution::context);
    return &::asio::use_service<context_guard>(context);
  } else if constexpr (requires { ex.context(); }) {
    ::asio::execution_context& context = ex.context();
    return &::asio::use_service<context_guard>(context);
  } else {
    return nullptr;
  }
}

/// Where an operation keeps its request when the pool runs caller-owned slots (SlotRequest:
/// the request type; void: the pool's send_async allocates a block of its own instead).
template <class SlotRequest>
struct request_slot {
  using type = std::optional<mtp::async_slot<SlotRequest>>;
};
template <>
struct request_slot<void> {
  struct type {};
};

/// One operation in flight: the handler, outstanding work on its executor, the pool's handle
/// (or, on a pool that runs caller-owned slots, the request itself: SlotRequest) and the value,
/// in one allocation from the handler's associated allocator. The initiating call arrives
/// once, and so does exactly one of the worker's callback and (Single: one request, create or
/// remove) a canceller that abandoned the pool's callback; the second arrival posts the
/// completion. The pool frees its own block when its worker gets to it; an abandoned slot,
/// which the worker may still hold, goes with whichever of the completion and the worker's
/// last touch comes second.
///
/// The executor's context may be destroyed first: its context_guard then closes the operation
/// (destroys the handler and the work, on the thread destroying the context), and the second
/// arrival, whenever it comes, frees the rest instead of posting. `state` (tracked) decides
/// between the two: the second arrival moves it from k_live to k_posting, and to k_posted once
/// the post has returned; the completion waits for k_posted before it frees the operation (a
/// completion in bulk finds it stored before its drain was posted: see context_guard).
template <class Handler, class Value, class Deliver, bool Single, class SlotRequest = void>
class operation : tracked {
  static constexpr bool k_slot = !std::is_void_v<SlotRequest>;

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
  /// Destroys and frees it (before the handler runs, as Asio asks); the context is alive.
  static void destroy(operation* p) noexcept {
    if (p->guard_ != nullptr) p->guard_->remove(p);
    deallocate_op(p);
  }

  explicit operation(Handler&& h)
      : handler_(std::move(h)),
        alloc_(::asio::get_associated_allocator(*handler_)),
        work_(::asio::prefer(::asio::get_associated_executor(*handler_, ::asio::system_executor()),
                             ::asio::execution::outstanding_work.tracked)),
        slot_(::asio::get_associated_cancellation_slot(*handler_)),
        guard_(guard_of(*work_)),
        bulk_(guard_ != nullptr ? plain_io_context(*work_) : nullptr) {
    close = &close_op;
    free_rest = &free_op;
    complete = &complete_op;
    discard = &discard_op;
    if (guard_ != nullptr) guard_->add(this);
  }

  /// The pool's callback: runs once, on a worker (or inline when the request was not sent).
  struct on_done {
    operation* op;
    void operator()(Value&& v) noexcept {
      op->value_ = std::move(v);
      op->arrive();
    }
  };

  /// The slot form: hold_request keeps the request in the operation's own slot, and
  /// start_in_slot starts it on `pool`, which allocates nothing, then the initiating call's
  /// part. The slot's `done` is the worker's last touch: it arrives as the pool's callback
  /// would, or, when a canceller has abandoned the slot, only lets go of the memory (see
  /// deallocate_op).
  template <class R>
    requires k_slot
  void hold_request(R&& r) {
    auto& slot = request_.emplace(std::forward<R>(r));
    slot.owner = this;
    slot.done = &slot_done;
  }
  template <class Pool>
  void start_in_slot(Pool& pool, ::asio::cancellation_type supported, id_t id) {
    pool.send_async(*request_);
    started(async_handle(), supported, id);
  }

  /// The initiating call's part, once the request is on its way. `id`: what an abandoned
  /// single operation answers.
  void started(async_handle handle, ::asio::cancellation_type supported, id_t id) {
    handle_ = std::move(handle);
    id_ = id;
    if (slot_.is_connected()) slot_.template emplace<canceller>(this, supported);
    arrive();
  }

 private:
  struct canceller {
    canceller(operation* o, ::asio::cancellation_type s) noexcept : op(o), supported(s) {}
    operation* op;
    ::asio::cancellation_type supported;
    void operator()(::asio::cancellation_type type) const noexcept {
      if ((type & supported) == ::asio::cancellation_type::none) return;
      constexpr auto prompt = ::asio::cancellation_type::terminal | ::asio::cancellation_type::partial;
      if constexpr (Single) {
        // Terminal or partial: complete now unless the pool's callback has started (a request
        // not yet started is skipped, a running one's result dropped). Total cancellation
        // promises no side effect, which only a request that never starts can keep: skip it.
        if ((type & prompt) != ::asio::cancellation_type::none && op->abandon_pool()) {
          op->value_.set_error(mtp::error{errc::cancelled, op->id_, {}});
          op->arrive();  // the callback never runs: this arrival stands in for it
          return;
        }
      }
      op->cancel_pool();
    }
  };

  /// Skips the request if its worker has not started it.
  void cancel_pool() noexcept {
    if constexpr (k_slot) {
      request_->cancelled.store(true, std::memory_order_relaxed);  // relaxed: a hint, as async_handle::cancel
    } else {
      handle_.cancel();
    }
  }
  /// cancel_pool(), and takes the completion over if the pool's side has not: true when the
  /// pool will never arrive (its slot's `done` then only lets go of the memory).
  bool abandon_pool() noexcept {
    if constexpr (k_slot) {
      cancel_pool();
      if (!request_->abandon()) return false;
      abandoned_ = true;  // read once both arrivals are in: arrive()'s acq_rel exchange orders it
      return true;
    } else {
      return handle_.abandon();
    }
  }

  /// The slot's `done`: the worker's last touch of the operation.
  static void slot_done(mtp::async_slot<SlotRequest>& slot) noexcept {
    auto* op = static_cast<operation*>(slot.owner);
    if (!slot.take_turn()) {  // a canceller has completed the operation: only the memory is left
      op->release_memory();
      return;
    }
    op->value_ = std::move(slot.out);
    op->arrive();
  }

  /// Runs the handler on its executor; owns the operation until then (freed unrun if the
  /// executor is destroyed with it still queued).
  class completer {
   public:
    explicit completer(operation* op) noexcept : op_(op) {}
    completer(completer&& other) noexcept : op_(std::exchange(other.op_, nullptr)) {}
    completer& operator=(completer&&) = delete;
    ~completer() {
      if (op_ != nullptr) {
        op_->wait_posted();
        destroy(op_);
      }
    }
    void operator()() {
      operation* op = std::exchange(op_, nullptr);
      if (op->slot_.is_connected()) op->slot_.clear();
      Handler handler(std::move(*op->handler_));
      Value value(std::move(op->value_));
      op->wait_posted();
      destroy(op);  // also lets go of the outstanding work: this function is still queued work
      Deliver{}(std::move(handler), std::move(value));
    }

   private:
    operation* op_;
  };

  /// The posting side may still be inside asio::post (it leaves the operation alone once it
  /// has stored k_posted).
  void wait_posted() const noexcept {
    // acquire: pairs with the release of k_posted.
    while (state.load(std::memory_order_acquire) == k_posting) std::this_thread::yield();
  }

  void arrive() noexcept {
    // acq_rel: the second arrival sees what the first stored (the value, the handle).
    if (!arrived_.exchange(true, std::memory_order_acq_rel)) return;  // the other party completes
    std::uint8_t s = k_live;
    // acquire: a closed operation's handler destruction happens before this side frees the rest.
    if (!state.compare_exchange_strong(s, k_posting, std::memory_order_acquire)) {
      // The context is shutting down (k_closing: its guard frees the rest once the handler is
      // destroyed) or gone (k_gone: free it here).
      // acq_rel: acquire sees the close; release publishes this side's value to the guard.
      if (s == k_closing && state.compare_exchange_strong(s, k_orphan, std::memory_order_acq_rel)) return;
      deallocate_op(this);
      return;
    }
    if (bulk_ != nullptr) {
      guard_->push_ready(this, *bulk_);  // runs with the context's other completions; stores k_posted
      return;
    }
    const work_type& work = *work_;
    ::asio::post(work, ::asio::bind_allocator(alloc_, completer(this)));
    // release: the completion (or the guard) frees the operation once it sees this.
    state.store(k_posted, std::memory_order_release);
  }

  /// A drain's run of the completion (complete) and the context's shutdown's (discard), as a
  /// posted completer would run or be destroyed.
  static void complete_op(tracked* t) { completer(static_cast<operation*>(t))(); }
  static void discard_op(tracked* t) noexcept { completer unrun(static_cast<operation*>(t)); }

  /// The guard's close: the slot, the handler and the work go now, while the context lives.
  static void close_op(tracked* t) noexcept {
    auto* op = static_cast<operation*>(t);
    if (op->slot_.is_connected()) op->slot_.clear();
    op->handler_.reset();
    op->work_.reset();
  }
  static void free_op(tracked* t) noexcept { deallocate_op(static_cast<operation*>(t)); }

  /// The completion's side is done with the operation (run, discarded, or closed with its
  /// context). When a canceller abandoned the slot, the worker may still hold it: the handler
  /// and the work go now (on the context's thread, or already gone), and the memory goes with
  /// whichever of this side and the worker's `done` comes last.
  static void deallocate_op(operation* p) noexcept {
    if constexpr (k_slot) {
      if (p->abandoned_) {
        p->handler_.reset();
        p->work_.reset();
        p->release_memory();
        return;
      }
    }
    free_memory(p);
  }
  void release_memory() noexcept {
    // acq_rel: the side that frees sees everything the other side did to the operation.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) free_memory(this);
  }
  static void free_memory(operation* p) noexcept {
    op_allocator alloc(p->alloc_);
    alloc_traits::destroy(alloc, p);
    alloc_traits::deallocate(alloc, p, 1);
  }

  std::optional<Handler> handler_;
  allocator_type alloc_;
  std::optional<work_type> work_;
  slot_type slot_;
  context_guard* guard_;
  ::asio::io_context* bulk_;  // completes through guard_'s drains (plain_io_context), else null
  Value value_{};
  async_handle handle_;  // the pool's block, when the request is not in request_
  [[no_unique_address]] typename request_slot<SlotRequest>::type request_;
  bool abandoned_ = false;                // a canceller abandoned request_ (slot form)
  std::atomic<std::uint8_t> refs_{2};      // slot form, abandoned: this side and the worker
  id_t id_ = 0;
  std::atomic<bool> arrived_{false};
};

/// The first argument of a completion: std::error_code, or std::exception_ptr for a throwing
/// token.
template <bool Throwing>
struct failure {
  static std::error_code make(const mtp::error& e) noexcept { return to_error_code(e); }
};
template <>
struct failure<true> {
  static std::exception_ptr make(const mtp::error& e) { return to_exception_ptr(e); }
};
template <bool Throwing>
using first_arg_t = decltype(failure<Throwing>::make(std::declval<const mtp::error&>()));

template <class T, bool Throwing>
struct deliver_one {
  template <class Handler>
  void operator()(Handler&& handler, mtp::result<T>&& r) const {
    using first = first_arg_t<Throwing>;
    if constexpr (std::is_void_v<T>) {
      std::move(handler)(r.has_value() ? first() : failure<Throwing>::make(r.error()));
    } else if (r.has_value()) {
      std::move(handler)(first(), send_value_t<T>(std::move(r).value()));
    } else {
      std::move(handler)(failure<Throwing>::make(r.error()), send_value_t<T>{});
    }
  }
};

template <class T, bool Throwing>
struct deliver_batch {
  template <class Handler>
  void operator()(Handler&& handler, std::vector<mtp::result<T>>&& rs) const {
    first_arg_t<Throwing> first{};
    for (const auto& r : rs) {
      if (r.has_error() && r.error().code == errc::cancelled) {
        first = failure<Throwing>::make(r.error());
        break;
      }
    }
    std::move(handler)(std::move(first), std::move(rs));
  }
};

template <class T, bool Throwing>
struct deliver_remove {  // unknown_id is no failure: `false`, as thread_pool::remove returns
  template <class Handler>
  void operator()(Handler&& handler, mtp::result<void>&& r) const {
    using first = first_arg_t<Throwing>;
    if (r.has_value()) {
      std::move(handler)(first(), true);
    } else if (r.error().code == errc::unknown_id) {
      std::move(handler)(first(), false);
    } else {
      std::move(handler)(failure<Throwing>::make(r.error()), false);
    }
  }
};

/// What each asynchronous operation starts on the pool: one request, a batch, a create, a
/// remove, or a batch of either (Value: the pool callback's argument; Deliver: how it becomes
/// the completion's arguments).
template <class Input, class Value, template <class, bool> class Deliver, class T, bool Single>
struct kind_base {
  using input = Input;
  using value = Value;
  template <bool Throwing>
  using deliver = Deliver<T, Throwing>;
  static constexpr bool k_single = Single;
};
template <class R>
struct send_kind : kind_base<R, mtp::result<response_t<R>>, deliver_one, response_t<R>, true> {
  using slot_request = R;  // on a pool that runs caller-owned slots, the request lives in the operation
  static id_t id_of(const R& r) noexcept { return static_cast<id_t>(r.id); }
  template <class Pool, class F>
  static async_handle start(Pool& pool, R&& r, F done) {
    return pool.send_async(std::move(r), std::move(done));
  }
};
template <class R>
struct send_batch_kind
    : kind_base<std::vector<R>, std::vector<mtp::result<response_t<R>>>, deliver_batch, response_t<R>, false> {
  template <class Pool, class F>
  static async_handle start(Pool& pool, std::vector<R>&& rs, F done) {
    return pool.send_batch_async(std::move(rs), std::move(done));
  }
};
template <class C>
struct create_kind : kind_base<C, mtp::result<void>, deliver_one, void, true> {
  static id_t id_of(const C& c) noexcept { return c.id; }
  template <class Pool, class F>
  static async_handle start(Pool& pool, C&& c, F done) {
    return pool.create_async(std::move(c), std::move(done));
  }
};
struct remove_kind : kind_base<id_t, mtp::result<void>, deliver_remove, void, true> {
  static id_t id_of(id_t id) noexcept { return id; }
  template <class Pool, class F>
  static async_handle start(Pool& pool, id_t&& id, F done) {
    return pool.remove_async(id, std::move(done));
  }
};
template <class C>
struct create_batch_kind : kind_base<std::vector<C>, std::vector<mtp::result<void>>, deliver_batch, void, false> {
  template <class Pool, class F>
  static async_handle start(Pool& pool, std::vector<C>&& cs, F done) {
    return pool.create_batch_async(std::move(cs), std::move(done));
  }
};
struct remove_batch_kind
    : kind_base<std::vector<id_t>, std::vector<mtp::result<void>>, deliver_batch, void, false> {
  template <class Pool, class F>
  static async_handle start(Pool& pool, std::vector<id_t>&& ids, F done) {
    return pool.remove_batch_async(std::move(ids), std::move(done));
  }
};

/// The request type an operation of Kind keeps in its own slot on Pool, or void.
template <class Pool, class Kind>
struct slot_request_of {
  using type = void;
};
template <class Pool, class Kind>
  requires requires { typename Kind::slot_request; } && starts_async_slots<Pool, typename Kind::slot_request>
struct slot_request_of<Pool, Kind> {
  using type = typename Kind::slot_request;
};

template <class Pool, class Kind, bool Throwing>
struct initiate {
  template <class Handler>
  void operator()(Handler&& handler, Pool* pool, typename Kind::input in) const {
    using slot_request = typename slot_request_of<Pool, Kind>::type;
    using op = operation<std::decay_t<Handler>, typename Kind::value, typename Kind::template deliver<Throwing>,
                         Kind::k_single, slot_request>;
    std::unique_ptr<op, void (*)(op*)> owned(op::make(std::forward<Handler>(handler)), &op::destroy);
    id_t id = 0;
    if constexpr (Kind::k_single) id = Kind::id_of(in);
    constexpr auto some = ::asio::cancellation_type::terminal | ::asio::cancellation_type::partial;
    constexpr auto supported = Kind::k_single ? some | ::asio::cancellation_type::total : some;
    if constexpr (!std::is_void_v<slot_request>) {
      owned->hold_request(std::move(in));
      owned.release()->start_in_slot(*pool, supported, id);  // the pool holds it from here on
    } else {
      async_handle h = Kind::start(*pool, std::move(in), typename op::on_done{owned.get()});
      owned.release()->started(std::move(h), supported, id);
    }
  }
};

template <class Kind, class Token, class Signature, class ThrowingSignature, class Pool>
auto start(Pool& pool, typename Kind::input in, Token&& token) {
  constexpr bool throwing = is_throwing_token_v<Token>;
  using signature = std::conditional_t<throwing, ThrowingSignature, Signature>;
  return ::asio::async_initiate<Token, signature>(initiate<Pool, Kind, throwing>{}, token, &pool, std::move(in));
}

}  // namespace impl

/// Sends `r` to item `r.id` of `pool` as an Asio asynchronous operation; completes with
/// send_signature<T>, or throwing_send_signature<T> for a throwing token, on the handler's
/// executor (see the top of this header).
template <class Pool, request R, class Token>
auto async_send(Pool& pool, R r, Token&& token) {
  using T = response_t<R>;
  return impl::start<impl::send_kind<R>, Token, send_signature<T>, throwing_send_signature<T>>(
      pool, std::move(r), std::forward<Token>(token));
}

/// Sends a batch (any input range of requests, copied at once) as one Asio asynchronous
/// operation; completes with batch_signature<T>, or throwing_batch_signature<T> for a throwing
/// token: the responses in request order.
template <class Pool, std::ranges::input_range Range, class Token>
  requires request<std::ranges::range_value_t<Range>>
auto async_send_batch(Pool& pool, Range&& requests, Token&& token) {
  using R = std::ranges::range_value_t<Range>;
  using T = response_t<R>;
  return impl::start<impl::send_batch_kind<R>, Token, batch_signature<T>, throwing_batch_signature<T>>(
      pool, mtp::to_vector<R>(std::forward<Range>(requests)), std::forward<Token>(token));
}

/// Builds `Item(r.id, args...)` on its worker (Pool::create_async) as an Asio asynchronous
/// operation: `mtp::asio::async_create(pool, mtp::make_create(id, args...), token)`. Completes
/// with create_signature (void(std::error_code)), or throwing_create_signature
/// (void(std::exception_ptr)): empty once the item exists; else duplicate_id (no constructor
/// ran), constructor_failed (the exception form holds the constructor's own exception, as
/// create rethrows it), pool_stopped, ...
template <class Pool, class... A, class Token>
auto async_create(Pool& pool, create_request<A...> r, Token&& token) {
  return impl::start<impl::create_kind<create_request<A...>>, Token, create_signature, throwing_create_signature>(
      pool, std::move(r), std::forward<Token>(token));
}

/// Removes item `id` (Pool::remove_async: destroyed on its worker after the messages queued
/// for it before) as an Asio asynchronous operation. Completes with remove_signature
/// (void(std::error_code, bool)), or throwing_remove_signature (void(std::exception_ptr,
/// bool)): as thread_pool::remove, `true` once the item is destroyed and `false`, with no
/// error, when there was no such item (errc::unknown_id is no failure here); a failure
/// (pool_stopped, invalid_route, ...) comes with `false`.
template <class Pool, class Token>
auto async_remove(Pool& pool, id_t id, Token&& token) {
  return impl::start<impl::remove_kind, Token, remove_signature, throwing_remove_signature>(pool, std::move(id),
                                                                                          std::forward<Token>(token));
}

/// create_batch as one Asio asynchronous operation: any input range of
/// mtp::create_request<A...> (copied at once); completes with batch_signature<void> (or
/// throwing_batch_signature<void>): one mtp::result<void> per request, in order.
template <class Pool, std::ranges::input_range Range, class Token>
  requires mtp::impl::is_create_request<std::ranges::range_value_t<Range>>
auto async_create_batch(Pool& pool, Range&& requests, Token&& token) {
  using C = std::ranges::range_value_t<Range>;
  return impl::start<impl::create_batch_kind<C>, Token, batch_signature<void>, throwing_batch_signature<void>>(
      pool, mtp::to_vector<C>(std::forward<Range>(requests)), std::forward<Token>(token));
}

/// remove_batch as one Asio asynchronous operation: any input range of ids; completes with
/// batch_signature<void> (or throwing_batch_signature<void>): one mtp::result<void> per id, in
/// order, errc::unknown_id for the ids that did not exist (as remove_batch).
template <class Pool, id_range Ids, class Token>
auto async_remove_batch(Pool& pool, Ids&& ids, Token&& token) {
  return impl::start<impl::remove_batch_kind, Token, batch_signature<void>, throwing_batch_signature<void>>(
      pool, mtp::to_vector<id_t>(std::forward<Ids>(ids)), std::forward<Token>(token));
}

}  // namespace mtp::asio

#include <mtp/asio/async_await.hpp>
