// SPDX-License-Identifier: MIT
// mtp::batch<T>: the handle of a batch submitted without waiting (thread_pool::submit_batch).
#pragma once

#include <atomic>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include <mtp/core/impl/shared_control.hpp>
#include <mtp/core/impl/std_parts.hpp>
#include <mtp/core/impl/wait.hpp>
#include <mtp/core/impl/worker_base.hpp>
#include <mtp/core/result.hpp>

namespace mtp {

namespace impl {
/// What a submitted batch owns: its responses and completion; subclasses own the requests.
/// Shared by the handle and the workers (shared_control): the last to let go frees it.
template <class T>
struct async_state : shared_control {
  std::vector<result<T>> results;
  completion done;
  std::chrono::nanoseconds spin{};
  /// The pool, and per worker of it the pieces of this batch not yet run: a worker must not
  /// wait for a batch while a piece of it is queued behind the message that waits.
  const pool_core* pool = nullptr;
  std::unique_ptr<std::atomic<std::uint32_t>[]> shares;

  /// Whether `w` has a piece of this batch queued that it has not run yet.
  [[nodiscard]] bool queued_on(const worker_base* w) const noexcept {
    // relaxed: the worker reads the count it updates itself; the submitter's increments reached
    // it along with the handle.
    return w != nullptr && &w->pool() == pool && shares != nullptr &&
           shares[w->index()].load(std::memory_order_relaxed) != 0;
  }
};
}  // namespace impl

/// The responses of a submitted batch, in request order, once they have all arrived.
///
/// Threads: one owner at a time (movable, not copyable); workers fill it in the background.
/// Destroying a handle does not wait: the requests still run (every queued request is
/// answered, also during shutdown), their responses are dropped, and the last worker frees
/// the batch's storage.
template <class T>
class [[nodiscard]] batch {
 public:
  batch() = default;
  /// Takes over the handle's reference to `state`.
  explicit batch(impl::async_state<T>* state) noexcept : state_(state) {}
  batch(batch&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  batch& operator=(batch&& other) noexcept {
    if (this != &other) {
      drop();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  batch(const batch&) = delete;
  batch& operator=(const batch&) = delete;
  ~batch() { drop(); }

  /// Whether every response has arrived (never blocks).
  [[nodiscard]] bool ready() const noexcept { return state_ == nullptr || state_->done.done(); }

  /// Waits for every response; returns them in request order. Throws
  /// pool_error(would_deadlock) on a worker that still has requests of this batch queued.
  std::span<result<T>> wait() {
    check_waitable();
    state_->done.wait(state_->spin);
    return state_->results;
  }

  /// Waits at most until `deadline` (any clock; a deadline beyond what the clock can
  /// represent waits as long as needed); returns ready().
  template <class Clock, class Duration>
  bool wait_until(std::chrono::time_point<Clock, Duration> deadline) {
    return wait_for(deadline - Clock::now());
  }
  /// Waits at most `timeout` (any duration type; saturates instead of overflowing); returns
  /// ready().
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) {
    check_waitable();
    return state_->done.wait_until(state_->spin, impl::deadline_after(timeout));
  }

  /// Waits, then moves the responses out; the handle is empty afterwards.
  std::vector<result<T>> take() {
    wait();
    std::vector<result<T>> out = std::move(state_->results);
    drop();
    return out;
  }

  /// Number of requests in the batch.
  [[nodiscard]] std::size_t size() const noexcept { return state_ ? state_->results.size() : 0; }

 private:
  void check_waitable() const {
    if (state_ == nullptr) throw std::logic_error("mtp::batch: empty handle (moved from or taken)");
    if (state_->queued_on(impl::tl_current_worker) && !state_->done.done()) {
      throw pool_error(errc::would_deadlock, 0,
                       "mtp: waiting for a batch whose requests are queued on the waiting worker itself would "
                       "deadlock (would_deadlock)");
    }
  }
  void drop() noexcept {
    if (state_ != nullptr) std::exchange(state_, nullptr)->release();
  }

  impl::async_state<T>* state_ = nullptr;
};

/// Refers to an asynchronous request or batch in flight (thread_pool::send_async,
/// send_batch_async). cancel() makes the requests that have not started complete with
/// errc::cancelled (one that has started finishes; the callback still runs exactly once).
/// Dropping the handle neither cancels nor waits, so a fire-and-forget call may ignore it
/// (hence no [[nodiscard]]: the callback is how the outcome arrives).
///
/// Threads: one owner at a time (movable, not copyable); cancel() may race with the workers.
class async_handle {
 public:
  async_handle() = default;
  /// Takes over the handle's reference to `state`.
  explicit async_handle(impl::shared_control* state) noexcept : state_(state) {}
  async_handle(async_handle&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  async_handle& operator=(async_handle&& other) noexcept {
    if (this != &other) {
      drop();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  async_handle(const async_handle&) = delete;
  async_handle& operator=(const async_handle&) = delete;
  ~async_handle() { drop(); }

  /// Skips what has not started yet; those requests complete with errc::cancelled.
  void cancel() noexcept {
    // relaxed: the workers only need to notice eventually; a request that slips past runs.
    if (state_ != nullptr) state_->cancelled.store(true, std::memory_order_relaxed);
  }

  /// Cancels, and takes the completion over if the callback has not started: returns true
  /// when the callback will never run (the caller completes the operation itself, at once;
  /// a request not yet started is skipped, one running finishes and its result is dropped),
  /// false when the callback has started or run (or the handle is empty).
  [[nodiscard]] bool abandon() noexcept {
    if (state_ == nullptr) return false;
    cancel();
    return state_->abandon();
  }

 private:
  void drop() noexcept {
    if (state_ != nullptr) std::exchange(state_, nullptr)->release();
  }
  impl::shared_control* state_ = nullptr;
};

}  // namespace mtp
