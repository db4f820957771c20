// SPDX-License-Identifier: MIT
// Internals: a worker's timers. Do not include directly; use <mtp/mtp.hpp>.
//
// Each worker keeps its own timers in a 4-ary min-heap ordered by (deadline, arrival), so
// equal deadlines keep the order in which the worker received them. Only the worker's thread
// touches the heap; other threads reach a timer through its state word (cancel()).
//
// Costs: arming O(log n); cancelling from any thread O(1) (the entry stays until its
// deadline or until the heap is compacted, which happens when it has doubled since the last
// compaction: amortised O(1) per arm); re-arming a timeout to a later deadline O(1) (the
// entry moves only when its old deadline comes), to an earlier one O(log n); firing O(log n).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace mtp::impl {

class worker_base;

/// One timer. Scheduled from the pool (post_after, post_at, post_every) it is shared by the
/// worker and the caller's mtp::timer handle (`refs`); owned by an item (mtp::timeout) it
/// belongs to that object and the worker never frees it.
struct timer_node {
  enum class action : std::uint8_t { fire, free };
  /// fire: runs the message as a post on worker `*w` (and re-arms a periodic timer, or drops
  /// the worker's reference); free: deletes the node (`w` may be null: the last reference may
  /// be a handle's, on any thread).
  using op_fn = void (*)(worker_base* w, timer_node& n, action a) noexcept;

  static constexpr std::uint8_t k_armed = 0;      // pending (periodic: between ticks)
  static constexpr std::uint8_t k_running = 1;    // a periodic tick runs now
  static constexpr std::uint8_t k_done = 2;       // a one-shot timer started its message
  static constexpr std::uint8_t k_cancelled = 3;  // cancel() won: its message never starts again
  static constexpr std::uint8_t k_dropped = 4;    // the pool stopped before it fired
  static constexpr std::uint32_t k_not_in_heap = std::numeric_limits<std::uint32_t>::max();

  std::int64_t deadline = 0;  // steady_clock nanoseconds since its epoch
  std::uint64_t seq = 0;      // arrival on the worker: equal deadlines fire in this order
  op_fn op = nullptr;
  std::uint32_t heap_index = k_not_in_heap;
  std::atomic<std::uint8_t> state{k_armed};
  std::atomic<std::uint8_t> refs{1};  // the worker's and, when scheduled through the pool, a handle's
  bool owned_by_item = false;         // an mtp::timeout: the worker never frees it

  /// Drops one reference; the last frees the node.
  void release() noexcept {
    // acq_rel: the last owner sees everything the other did to the node before it frees it.
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) op(nullptr, *this, action::free);
  }
  /// Any thread: stops it; true when its message will not start again (a one-shot timer that
  /// had not started, a periodic one not yet cancelled).
  bool cancel() noexcept {
    std::uint8_t s = state.load(std::memory_order_relaxed);
    while (s == k_armed || s == k_running) {
      // acq_rel: the worker's CAS before each message sees the cancel (and we its last tick).
      if (state.compare_exchange_weak(s, k_cancelled, std::memory_order_acq_rel, std::memory_order_relaxed)) return true;
    }
    return false;
  }
};

/// An item's own timer (mtp::timeout): re-armed in O(1) to a later deadline by moving only
/// `wanted`; the heap entry follows when its old deadline comes.
struct timeout_node : timer_node {
  std::int64_t wanted = 0;
};

/// The heap itself (worker thread only).
class timer_heap {
 public:
  [[nodiscard]] bool empty() const noexcept { return heap_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return heap_.size(); }
  [[nodiscard]] timer_node* top() const noexcept { return heap_.front(); }

  /// Adds `n` (not in the heap). May throw std::bad_alloc; the heap is then unchanged.
  void push(timer_node* n);
  /// Removes the earliest timer.
  void pop() noexcept;
  /// Removes `n`, wherever it is.
  void erase(timer_node* n) noexcept;
  /// `n`'s deadline became earlier: moves it up.
  void moved_earlier(timer_node* n) noexcept;
  /// Removes every node for which `gone(n)` holds (calling it once per node), in O(n).
  template <class Gone>
  void remove_if(Gone&& gone) noexcept {
    std::size_t kept = 0;
    for (timer_node* n : heap_) {
      if (gone(n)) continue;
      heap_[kept++] = n;
    }
    heap_.resize(kept);
    rebuild();
  }
  /// The nodes, in heap order (for a sweep at shutdown).
  [[nodiscard]] const std::vector<timer_node*>& nodes() const noexcept { return heap_; }
  void clear() noexcept { heap_.clear(); }

 private:
  static bool before(const timer_node* a, const timer_node* b) noexcept {
    return a->deadline != b->deadline ? a->deadline < b->deadline : a->seq < b->seq;
  }
  void place(std::size_t i, timer_node* n) noexcept {
    heap_[i] = n;
    n->heap_index = static_cast<std::uint32_t>(i);
  }
  void sift_up(std::size_t i) noexcept;
  void sift_down(std::size_t i) noexcept;
  void rebuild() noexcept;

  std::vector<timer_node*> heap_;
};

}  // namespace mtp::impl
