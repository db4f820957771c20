// SPDX-License-Identifier: MIT
// Internals: timers that carry a typed request, and how a worker runs them. Do not include
// directly; use <mtp/mtp.hpp>.
#pragma once

#include <cstdint>
#include <limits>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include <mtp/core/impl/jobs.hpp>
#include <mtp/core/impl/std_parts.hpp>
#include <mtp/core/impl/timer_heap.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/result.hpp>

namespace mtp::impl {

/// A steady_clock instant as the timers keep it: nanoseconds since the clock's epoch.
[[nodiscard]] inline std::int64_t timer_ticks(std::chrono::steady_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline constexpr std::int64_t k_never = std::numeric_limits<std::int64_t>::max();

/// Any steady_clock time point, saturated to the timers' range (beyond it: never).
template <class Duration>
[[nodiscard]] std::int64_t timer_ticks_saturated(std::chrono::time_point<std::chrono::steady_clock, Duration> t) noexcept {
  // Compare in floating-point nanoseconds: no conversion of the caller's count can overflow.
  const std::chrono::duration<long double, std::nano> wanted = t.time_since_epoch();
  if (!(wanted < std::chrono::duration<long double, std::nano>(static_cast<long double>(k_never)))) return k_never;
  if (!(wanted > std::chrono::duration<long double, std::nano>(0))) return 0;
  return static_cast<std::int64_t>(wanted.count());
}

/// A period for post_every: positive, in nanoseconds (at least 1), saturated; false when it
/// is zero, negative or not a number.
template <class Rep, class Period>
[[nodiscard]] bool timer_period(std::chrono::duration<Rep, Period> period, std::int64_t& out) noexcept {
  const std::chrono::duration<long double, std::nano> ns = period;
  if (!(ns > ns.zero())) return false;
  out = ns < std::chrono::duration<long double, std::nano>(static_cast<long double>(k_never))
            ? (ns.count() < 1 ? std::int64_t{1} : static_cast<std::int64_t>(ns.count()))
            : k_never;
  return true;
}

/// A timer scheduled through the pool (post_after, post_at, post_every). `Periodic`: it fires
/// every `period`, skipping the ticks it could not keep (no burst after a stall).
template <class W, class R, bool Periodic>
struct pool_timer final : timer_node {
  pool_timer(R r, std::int64_t at, std::int64_t every) : request(std::move(r)) {
    deadline = at;
    op = &run;
    refs.store(2, std::memory_order_relaxed);  // the worker's and the handle's; published by the send
    if constexpr (Periodic) period = every;
  }

  R request;
  std::uint64_t generation = 0;  // the item's life when armed (0: it did not exist)
  // Only periodic timers keep a period: a one-shot node stays 8 bytes smaller (one malloc
  // size class down for small requests; see BENCHMARKS.md, "Timers").
  struct no_period {};
  [[no_unique_address]] std::conditional_t<Periodic, std::int64_t, no_period> period{};

  /// The arm message (through the worker's queue), or the direct arm on the item's own worker.
  static void arm(W& w, pool_timer* t) noexcept {
    t->generation = w.generation_of(static_cast<id_t>(t->request.id));
    try {
      w.arm_timer(*t);
    } catch (...) {  // no memory for the heap's slot: the timer cannot be kept
      t->state.store(k_dropped, std::memory_order_release);  // release: a handle's cancel() reads it
      w.report(diagnostic::kind::post_failed, "a timer could not be armed: out of memory",
               error{errc::out_of_memory, static_cast<id_t>(t->request.id), {}});
      t->release();
    }
  }
  static void run_arm(worker_base& base, envelope& e) noexcept {
    auto& w = static_cast<W&>(base);
    arm(w, e.read<pool_timer*>());
    w.finish_messages(1, true);  // the arm counted against a bounded queue, as a post does
  }

  static void run(worker_base* base, timer_node& n, action a) noexcept {
    auto& t = static_cast<pool_timer&>(n);
    if (a == action::free) {
      delete &t;
      return;
    }
    auto& w = static_cast<W&>(*base);
    const id_t id = static_cast<id_t>(t.request.id);
    // The item it was armed for was removed (or passivated) since: removal cancelled it.
    const bool outlived = t.generation != 0 && w.generation_of(id) != t.generation;
    std::uint8_t armed = k_armed;
    // acq_rel: pairs with cancel(): exactly one of the two wins.
    if (!t.state.compare_exchange_strong(armed, outlived ? k_dropped : (Periodic ? k_running : k_done),
                                         std::memory_order_acq_rel) ||
        outlived) {
      t.release();
      return;
    }
    serve_as_post(w, t.request);
    w.finish_messages(1, false);  // not counted against a bounded queue: it never was
    if constexpr (Periodic) {
      const std::int64_t now = timer_ticks(std::chrono::steady_clock::now());
      if (__builtin_add_overflow(t.deadline, t.period, &t.deadline)) {
        t.deadline = k_never;  // past the clock's range: it never fires again
      } else if (t.deadline <= now) {
        t.deadline = now + t.period - (now - t.deadline) % t.period;  // skip the missed ticks
      }
      std::uint8_t running = k_running;
      if (t.state.compare_exchange_strong(running, k_armed, std::memory_order_acq_rel)) {
        arm_again(w, t);
        return;
      }
    }
    t.release();  // done, or cancelled while its tick ran
  }

  static void arm_again(W& w, pool_timer& t) noexcept {
    try {
      w.arm_timer(t);
    } catch (...) {
      t.state.store(k_dropped, std::memory_order_release);
      w.report(diagnostic::kind::post_failed, "a periodic timer could not be re-armed: out of memory",
               error{errc::out_of_memory, static_cast<id_t>(t.request.id), {}});
      t.release();
    }
  }
};

/// An item's own timeout (mtp::timeout): fires `request` at the item when it expires.
template <class W, class R>
struct item_timeout final : timeout_node {
  explicit item_timeout(R r) : request(std::move(r)) {
    op = &run;
    owned_by_item = true;
  }
  R request;

  static void run(worker_base* base, timer_node& n, action a) noexcept {
    auto& t = static_cast<item_timeout&>(n);
    if (a == action::free) {
      delete &t;
      return;
    }
    // The handler may destroy the timeout (and so this node): it runs on a copy, and nothing
    // touches the node afterwards.
    const R request = t.request;
    auto& w = static_cast<W&>(*base);
    serve_as_post(w, request);
    w.finish_messages(1, false);
  }
};

}  // namespace mtp::impl
