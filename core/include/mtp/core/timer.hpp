// SPDX-License-Identifier: MIT
// Timers that belong to items: the handle of a delayed or periodic message
// (thread_pool::post_after, post_at, post_every) and an item's own re-armable timeout
// (thread_pool::make_timeout).
//
// Every worker keeps its own timers and sleeps until the earliest one when it has nothing
// else to do: no timer thread, and a pool without timers pays nothing. A timer's message runs
// on its item's worker like a post (hooks, trace, statistics), in deadline order; equal
// deadlines keep the order the worker received them in.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>

#include <mtp/core/impl/std_parts.hpp>
#include <mtp/core/impl/timer_heap.hpp>
#include <mtp/core/impl/worker_base.hpp>

namespace mtp {

template <class Item, class Hooks>
class thread_pool;

/// A delayed or periodic message, as the pool scheduled it. Dropping the handle does not
/// cancel it. Any thread may cancel; cancelling twice, after it fired or after the pool
/// stopped is harmless.
class timer {
 public:
  timer() noexcept = default;
  timer(timer&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
  timer& operator=(timer&& other) noexcept {
    if (this != &other) {
      drop();
      node_ = std::exchange(other.node_, nullptr);
    }
    return *this;
  }
  timer(const timer&) = delete;
  timer& operator=(const timer&) = delete;
  ~timer() { drop(); }

  /// Stops it. True when its message will not start again: a one-shot timer whose message had
  /// not started (it never will), a periodic timer not yet cancelled (a tick running now
  /// finishes; no other starts). False otherwise: it ran, was cancelled before, or was
  /// dropped: by the pool's shutdown, or by the removal of its item (seen once its deadline
  /// has come: until then cancel() still says true, and the message never runs either way).
  bool cancel() noexcept { return node_ != nullptr && node_->cancel(); }
  /// Whether this handle refers to a timer (a default-constructed or moved-from one does not).
  [[nodiscard]] bool valid() const noexcept { return node_ != nullptr; }
  /// Whether its message may still start (a snapshot: it may fire or be dropped right after).
  /// A timer whose item was removed reads as pending until its deadline comes.
  [[nodiscard]] bool pending() const noexcept {
    if (node_ == nullptr) return false;
    // acquire: pairs with the worker's and cancel()'s transitions; a snapshot all the same.
    const std::uint8_t s = node_->state.load(std::memory_order_acquire);
    return s == impl::timer_node::k_armed || s == impl::timer_node::k_running;
  }

 private:
  template <class Item, class Hooks>
  friend class thread_pool;
  explicit timer(impl::timer_node* node) noexcept : node_(node) {}
  void drop() noexcept {
    if (node_ != nullptr) std::exchange(node_, nullptr)->release();
  }
  impl::timer_node* node_ = nullptr;
};

/// An item's own timeout, for the session pattern: re-armed on every message, it sends its
/// request to its item once that much time has passed without a re-arm. Made by
/// thread_pool::make_timeout on the item's worker, kept as a member of the item, used and
/// destroyed on that worker only (a member is). Re-arming to a later instant is O(1) and
/// allocation-free (one read of the clock); to an earlier one O(log n). Once it has fired it stays
/// disarmed until re-armed. Destroying it (with its item: remove, passivation, shutdown)
/// cancels it.
class timeout {
 public:
  timeout() noexcept = default;
  timeout(timeout&& other) noexcept
      : node_(std::exchange(other.node_, nullptr)), worker_(std::exchange(other.worker_, nullptr)) {}
  timeout& operator=(timeout&& other) noexcept {
    if (this != &other) {
      reset();
      node_ = std::exchange(other.node_, nullptr);
      worker_ = std::exchange(other.worker_, nullptr);
    }
    return *this;
  }
  timeout(const timeout&) = delete;
  timeout& operator=(const timeout&) = delete;
  ~timeout() { reset(); }

  /// Fires `after` from now (any duration type, saturated; zero or negative: at the next
  /// chance), replacing the previous deadline. Never early. (It reads steady_clock: the
  /// kernel's coarse clock, faster to read, can lag more than its resolution on a virtual
  /// machine whose timekeeping CPU is descheduled, which made timeouts fire early.) Throws
  /// std::logic_error off its worker or on an empty timeout; std::bad_alloc only when it was
  /// disarmed and the worker's timer heap must grow.
  template <class Rep, class Period>
  void rearm(std::chrono::duration<Rep, Period> after) {
    check_thread();
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
    constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();
    std::int64_t at = now;
    // Saturating, in floating-point nanoseconds: no count of any representation overflows.
    const std::chrono::duration<long double, std::nano> wanted = after;
    if (!(wanted.count() < static_cast<long double>(never - now))) at = never;  // NaN too
    else if (wanted.count() > 0) at = now + static_cast<std::int64_t>(wanted.count());
    place(at);
  }
  /// Fires at `when` instead (exact).
  void rearm_at(std::chrono::steady_clock::time_point when) {
    check_thread();
    place(std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count());
  }
  /// Disarms it (rearm() arms it again). Throws std::logic_error off its worker.
  void cancel() {
    check_thread();
    worker_->disarm_timer(*node_);
  }
  /// Whether it will fire (worker thread).
  [[nodiscard]] bool armed() const noexcept {
    return node_ != nullptr && node_->heap_index != impl::timer_node::k_not_in_heap;
  }

 private:
  template <class Item, class Hooks>
  friend class thread_pool;
  timeout(impl::timeout_node* node, impl::worker_base* worker) noexcept : node_(node), worker_(worker) {}
  void place(std::int64_t at) {
    node_->wanted = at;
    if (node_->heap_index == impl::timer_node::k_not_in_heap) {
      node_->deadline = at;
      worker_->arm_timer(*node_);
    } else if (at < node_->deadline) {
      node_->deadline = at;
      worker_->timer_moved_earlier(*node_);
    }  // later: its entry moves when the old deadline comes
  }
  void check_thread() const {
    if (node_ == nullptr) throw std::logic_error("mtp::timeout: this timeout is empty (default-constructed or moved from)");
    if (impl::tl_current_worker != worker_) {
      throw std::logic_error("mtp::timeout: used off the worker of the item that owns it");
    }
  }
  void reset() noexcept {
    if (node_ == nullptr) return;
    // On its worker (a member dies with its item there); at worst after the worker's loop
    // ended, when the heap no longer holds it.
    worker_->disarm_timer(*node_);
    node_->op(nullptr, *node_, impl::timer_node::action::free);
    node_ = nullptr;
  }
  impl::timeout_node* node_ = nullptr;
  impl::worker_base* worker_ = nullptr;
};

}  // namespace mtp
