// SPDX-License-Identifier: MIT
// Internals: the queue into a worker. Do not include directly; use <mtp/mtp.hpp>.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include <mtp/core/impl/envelope.hpp>

namespace mtp::impl {

/// An envelope with its queue link: exactly one cache line, so that a producer writes one line
/// per message and no two nodes share one.
struct alignas(k_cache_line) queue_node {
  std::atomic<queue_node*> next{nullptr};
  envelope e;

  // Counted (queue_nodes_alive), and aligned to a cache line; defined in mpsc_queue.cpp.
  static void* operator new(std::size_t size);
  static void operator delete(void* p) noexcept;
};
static_assert(sizeof(queue_node) == k_cache_line, "a queue node fills exactly one cache line");

/// The queue into one worker: an unbounded multi-producer, single-consumer linked list of
/// envelopes (Vyukov's intrusive MPSC queue) whose nodes are recycled.
///
/// Contract
/// - push() from any thread, lock-free: one atomic exchange of the tail, then one store that
///   links the node behind the previous tail. It never waits for another producer.
/// - Linearisable at the exchange: envelopes reach the consumer in the order of their
///   exchanges, so if one push happens-before another, the first is consumed first (FIFO per
///   producer, and causal order across producers). The queue keeps no state per producer.
/// - The exchange-to-link window: between a producer's exchange and its link the list is cut,
///   and the consumer sees nothing past the cut (pop() returns null, empty() is true) until
///   that producer links. A producer pre-empted there delays the consumer, never another
///   producer; one that never resumes wedges the queue. depth() still counts what waits
///   behind a cut, which is how the stall detector tells a cut queue from an empty one.
/// - pop(), empty(), hand_back_spare() on the consumer's thread only; depth() from any thread.
/// - Memory: a node is one cache line. Used nodes go back to producers in batches of 64
///   through one shared slot; each producing thread caches at most one batch, freed when the
///   thread exits (a thread that pushes after that, from a later thread_local or static
///   destructor, allocates and the consumer frees); the consumer keeps at most 16 spare
///   batches and frees the rest, so a drained burst gives its memory back.
class mpsc_queue {
 public:
  mpsc_queue();
  mpsc_queue(const mpsc_queue&) = delete;
  mpsc_queue& operator=(const mpsc_queue&) = delete;
  /// Frees every node. No producer or consumer may be running.
  ~mpsc_queue();

  /// Any thread. Throws std::bad_alloc when no node could be had (nothing was queued).
  void push(const envelope& e);
  /// Tests of the exchange-to-link window only: push() that calls `between(arg)` after its
  /// exchange and before its link, as a producer pre-empted there would.
  void push_cut_for_test(const envelope& e, void (*between)(void*), void* arg);

  /// Consumer: the next envelope, or nullptr when nothing is linked past the head. The
  /// envelope stays valid, and may be run in place, until the next pop().
  [[nodiscard]] envelope* pop() noexcept {
    queue_node* const next = head_->next.load(std::memory_order_acquire);  // acquire: see empty()
    if (next == nullptr) return nullptr;
    queue_node* const done = head_;
    head_ = next;  // `next` is the new dummy; its envelope stays in place until the next pop
    recycle(done);
    // release: whoever reads this count (acquire) also sees the worker's turn to work, stored
    // before the pop (worker_base::quiescent_sample). Single writer: load + store.
    popped_.store(popped_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    return &next->e;
  }
  /// Consumer: whether nothing is linked past the head (a cut list reads as empty).
  [[nodiscard]] bool empty() const noexcept {
    // acquire: pairs with the producer's release link, so a node seen here is complete.
    return head_->next.load(std::memory_order_acquire) == nullptr;
  }
  /// Consumer: when producers took the last batch of used nodes, hands them a kept one.
  void hand_back_spare() noexcept;

  /// Envelopes pushed and not yet popped (approximate: two counters read one after the other).
  [[nodiscard]] std::size_t depth() const noexcept;
  /// Whether every envelope pushed so far has been popped, read popped-then-pushed: popped
  /// with acquire (see pop()).
  [[nodiscard]] bool drained() const noexcept {
    const std::uint64_t out = popped_.load(std::memory_order_acquire);
    return pushed_.load(std::memory_order_relaxed) == out;  // relaxed: ordered by the caller's reads
  }

 private:
  static constexpr std::size_t k_free_batch = 64;  // used nodes handed back per batch

  queue_node* node_for(const envelope& e);
  void recycle(queue_node* n) noexcept {
    n->next.store(batch_, std::memory_order_relaxed);  // the consumer's private list
    batch_ = n;
    if (++batch_count_ == k_free_batch) batch_full();
  }
  void batch_full() noexcept;
  bool hand_back(queue_node* batch) noexcept;

  // Producers' line: every push exchanges the tail and bumps the count, nothing else here, so
  // one producer's push touches one line it may already own.
  alignas(k_cache_line) std::atomic<queue_node*> tail_;
  std::atomic<std::uint64_t> pushed_{0};

  // Used nodes handed back to producers: the consumer stores a batch when the slot is empty, a
  // producer exchanges the whole list out. Both sides write it, so it has its own line.
  alignas(k_cache_line) std::atomic<queue_node*> free_{nullptr};

  // Consumer-only: the head, the batch of used nodes being gathered, and full batches kept to
  // hand back later (at most k_spare_batches: about 1,088 nodes in all).
  static constexpr std::size_t k_spare_batches = 16;
  alignas(k_cache_line) queue_node* head_;
  queue_node* batch_ = nullptr;
  std::size_t batch_count_ = 0;
  std::size_t spare_count_ = 0;
  std::atomic<std::uint64_t> popped_{0};  // written by the consumer, read by depth()
  queue_node* spares_[k_spare_batches] = {};
};

/// Queue nodes allocated and not yet freed, in the whole process (for tests: memory held for
/// exited threads and drained bursts must be returned).
[[nodiscard]] std::int64_t queue_nodes_alive() noexcept;

}  // namespace mtp::impl
