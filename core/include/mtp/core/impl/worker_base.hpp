// SPDX-License-Identifier: MIT
// Internals: the untyped worker (its queue, timers and statistics) and the thread-local that
// names the calling thread's worker: what the handles (batch, timer, this_worker) need of a
// worker. The pool core, the sender gate and the send path are in worker.hpp. Do not include
// directly; use <mtp/mtp.hpp>.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include <mtp/affinity/placement.hpp>
#include <mtp/core/impl/envelope.hpp>
#include <mtp/core/impl/mpsc_queue.hpp>
#include <mtp/core/impl/std_parts.hpp>
#include <mtp/core/impl/timer_heap.hpp>
#include <mtp/core/result.hpp>

namespace mtp::impl {

class pool_core;
class trace_ring;   // a worker's trace events; defined in trace.cpp
struct worker_thread;  // a worker's std::thread; defined in threads.hpp (src)

using time_point = std::chrono::steady_clock::time_point;

/// One worker thread and its queue. The typed subclass owns the items.
///
/// The queue (mpsc_queue.hpp) keeps no state per sender, so a worker's poll and dequeue cost
/// the same however many threads have ever sent to it, and it is linearisable, so messages
/// reach the worker in happens-before order whatever thread sent them (causal order). The
/// worker adds the sleeping flag and the room of a bounded queue.
///
/// Threads: enqueue()/push()/wake() from any thread, lock-free (a sender pre-empted between
/// its exchange and its link delays the worker, never another sender); everything named
/// "worker thread" only on the worker's own thread; statistics getters from any thread.
class worker_base {
 public:
  worker_base(pool_core& pool, std::size_t index);
  worker_base(const worker_base&) = delete;
  worker_base& operator=(const worker_base&) = delete;
  virtual ~worker_base();

  /// Starts the thread; it pins itself to `where` first.
  void start(const worker_placement& where, bool bind_memory);
  /// Enqueues one envelope and wakes the worker if it sleeps. Any thread.
  void push(const envelope& e);
  /// push() in two steps, for a sender that enqueues to several workers before waking any:
  /// enqueue() may throw std::bad_alloc; every enqueue() must be followed by a wake().
  void enqueue(const envelope& e);
  void wake() noexcept;
  /// The worker's queue (its contract: mpsc_queue.hpp).
  [[nodiscard]] mpsc_queue& queue() noexcept { return queue_; }

  /// Worker thread: `n` messages of one envelope are done. Counts them, and gives their room
  /// back when they counted against a bounded queue (`counted`: not create/remove).
  void finish_messages(std::uint32_t n, bool counted) noexcept {
    add_processed(n);
    if (counted && bounded_) release_room(n);
  }
  /// Bounded queues: waits until `n` more requests fit under `capacity` (an empty queue always
  /// takes a piece), then counts them. Returns false if `deadline` passed first.
  bool reserve_room(std::uint32_t n, std::size_t capacity, time_point deadline) noexcept;
  /// As reserve_room, without waiting; false when they do not fit.
  bool try_reserve_room(std::uint32_t n, std::size_t capacity) noexcept;
  /// Worker thread: `n` counted requests are done; wakes senders waiting for room.
  void release_room(std::uint32_t n) noexcept;

  // ---- Timers (timer_heap.hpp). Worker thread only. ----
  /// Takes `n` (deadline set, not in the heap) into this worker's heap. May throw
  /// std::bad_alloc (the heap is then unchanged).
  void arm_timer(timer_node& n);
  /// An item's timeout in the heap got an earlier deadline (already written to `n`).
  void timer_moved_earlier(timer_node& n) noexcept;
  /// Takes an item's timeout out of the heap (when it is there).
  void disarm_timer(timer_node& n) noexcept;
  /// Timers waiting in this worker's heap (cancelled ones included until they are swept).
  [[nodiscard]] std::size_t timers_pending() const noexcept {
    return timers_pending_.load(std::memory_order_relaxed);  // a statistic: no ordering needed
  }
  /// Timers the shutdown dropped before they fired.
  [[nodiscard]] std::uint64_t timers_dropped() const noexcept {
    return timers_dropped_.load(std::memory_order_relaxed);  // a statistic: no ordering needed
  }

  /// Asks the thread to finish: it answers everything queued, destroys its items, and exits.
  void push_stop();
  void join();

  [[nodiscard]] std::size_t index() const noexcept { return index_; }
  [[nodiscard]] pool_core& pool() const noexcept { return pool_; }
  /// The id whose message the worker is running now (or ran last).
  [[nodiscard]] id_t current_id() const noexcept {
    return current_id_.load(std::memory_order_relaxed);  // single writer; read for reports only
  }
  /// Whether the worker is inside a message (handler, constructor, destructor, hook) now.
  [[nodiscard]] bool in_message() const noexcept {
    return !idle_.load(std::memory_order_relaxed);  // a sample for the stall detector
  }
  /// Whether the thread has left its loop (its items are destroyed): nothing more runs there.
  [[nodiscard]] bool exited() const noexcept {
    return exited_.load(std::memory_order_relaxed);  // a sample for the stall detector
  }
  /// A sample for pool_core::quiescent(): the worker's activity count, even when it rests
  /// (its queue found empty, no message running), odd when it works or its queue holds an
  /// envelope. The queue is read first, then the count (see mpsc_queue::pop()).
  [[nodiscard]] std::uint64_t quiescent_sample() const noexcept {
    if (!queue_.drained()) return 1;
    return activity_.load(std::memory_order_acquire);  // acquire: see what it did before resting
  }
  /// Messages started so far; the stall detector watches it move.
  [[nodiscard]] std::uint64_t messages_started() const noexcept {
    return started_.load(std::memory_order_relaxed);  // a sample for the stall detector
  }

  [[nodiscard]] std::uint64_t messages_processed() const noexcept {
    return processed_.load(std::memory_order_relaxed);  // a statistic: no ordering needed
  }
  [[nodiscard]] std::size_t item_count() const noexcept {
    return items_.load(std::memory_order_relaxed);  // a statistic: no ordering needed
  }
  /// Envelopes waiting (approximate: two counters read one after the other).
  [[nodiscard]] std::size_t queue_depth() const noexcept;
  /// Senders asleep in reserve_room() (those still spinning are not counted).
  [[nodiscard]] std::size_t senders_waiting() const noexcept {
    // acquire: pairs with the sender's seq_cst increment, so that whoever sees a sender asleep
    // also sees what that sender did before it (it read the pool object, say).
    return room_waiters_.load(std::memory_order_acquire);
  }
  [[nodiscard]] const worker_placement& where() const noexcept { return where_; }
  /// Whether this worker is pinned to exactly `cpu`: a caller running there that waits for
  /// this worker must yield its CPU at once rather than spin.
  [[nodiscard]] bool pinned_to(int cpu) const noexcept { return sole_cpu_ >= 0 && sole_cpu_ == cpu; }

  /// Whether the thread pinned itself; set before it runs its first message.
  [[nodiscard]] bool pinned() const noexcept { return pinned_.load(std::memory_order_acquire); }

  /// Counts processed messages (worker thread).
  void add_processed(std::uint64_t n) noexcept {
    // Single writer (this worker): a relaxed load+store is enough and cheaper than an RMW.
    processed_.store(processed_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  /// Tracing (pool_options::trace_file): one predictable branch per call when off.
  void trace_begin(id_t id, const char* what) noexcept {
    if (trace_ != nullptr) [[unlikely]] record_begin(id, what);
  }
  void trace_end() noexcept {
    if (trace_ != nullptr) [[unlikely]] record_end();
  }
  void trace_instant(const char* what, std::uint64_t count) noexcept {
    if (trace_ != nullptr) [[unlikely]] record_instant(what, count);
  }
  /// The trace recorded so far (worker thread, or after the thread ended), oldest first.
  [[nodiscard]] std::string trace_json_events() const;

  /// Worker thread: a message for `id` starts (handler, constructor, destructor, hooks).
  void begin_message(id_t id) noexcept {
    // relaxed, all three: single writer; only the stall detector samples them, and a stale
    // sample only delays a report by one tick.
    current_id_.store(id, std::memory_order_relaxed);
    started_.store(started_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (idle_.load(std::memory_order_relaxed)) idle_.store(false, std::memory_order_relaxed);
  }

 protected:
  virtual void on_start() noexcept = 0;  // worker thread: before the first message
  virtual void on_stop() noexcept = 0;   // worker thread: destroy items, after the last message
  /// Worker thread: periodic housekeeping (passivation), run once it is due, between rounds of
  /// messages under load as well as when the queue is empty. Returns when it is due next, so
  /// that a sleeping worker wakes up for it; time_point::max(): never.
  virtual time_point housekeeping(time_point /*now*/) noexcept { return time_point::max(); }
  /// Stops and joins the thread if it still runs; subclasses call it from their destructor so
  /// that the thread never calls on_stop() on a half-destroyed object.
  void stop_and_join() noexcept;

  void set_item_count(std::size_t n) noexcept {
    items_.store(n, std::memory_order_relaxed);  // single writer; a statistic only
  }
  /// Worker thread: about to look for messages (odd activity), or done with them (even).
  void start_work() noexcept {
    const std::uint64_t a = activity_.load(std::memory_order_relaxed);
    // release: a reader that sees the new count sees everything before it.
    if ((a & 1) == 0) activity_.store(a + 1, std::memory_order_release);
  }
  void rest() noexcept {
    const std::uint64_t a = activity_.load(std::memory_order_relaxed);
    // release: what the worker did (the messages it pushed) is seen by whoever sees it rest.
    if ((a & 1) != 0) activity_.store(a + 1, std::memory_order_release);
  }
  /// Worker thread: no message runs now.
  void mark_idle() noexcept {
    idle_.store(true, std::memory_order_relaxed);  // single writer; read by current_id() and the stall detector
  }

 private:
  friend class pool_core;
  static void run_stop(worker_base& w, envelope&) noexcept;
  void main(const worker_placement& where, bool bind_memory) noexcept;
  void run_loop() noexcept;
  std::size_t drain(std::size_t limit) noexcept;
  void sleep_until_work(time_point until) noexcept;
  void housekeeping_if_due() noexcept;
  /// Fires the timers due at `now` (at most k_timers_per_round), then sets housekeeping_due_.
  void fire_due_timers(time_point now) noexcept;
  /// At the end of the loop: drops the timers still pending (items' own ones leave the heap).
  void drop_timers() noexcept;
  void update_due() noexcept;
  void close_if_senders_left() noexcept;
  [[nodiscard]] bool has_work() const noexcept;
  std::unique_ptr<trace_ring> make_trace_ring();
  void record_begin(id_t id, const char* what) noexcept;
  void record_end() noexcept;
  void record_instant(const char* what, std::uint64_t count) noexcept;

  pool_core& pool_;
  const std::size_t index_;
  const bool bounded_;
  worker_placement where_;
  int sole_cpu_ = -1;  // the CPU when pinned to exactly one, else -1
  bool stop_seen_ = false;
  // Set (on this thread) when one of this worker's items dropped the pool: push the stop
  // markers once no sender is inside the gate, running messages meanwhile.
  bool close_when_senders_left_ = false;
  // When the loop next looks at the clock: the earlier of passivation_due_ and the first
  // timer; max (the common case: no passivation, no timers) costs one predictable branch.
  time_point housekeeping_due_ = time_point::min();
  time_point passivation_due_ = time_point::min();  // min: ask housekeeping() when it is due
  timer_heap timers_;
  std::uint64_t timer_seq_ = 0;        // arrival order of timers on this worker
  std::size_t timers_compact_at_ = 0;  // sweep cancelled timers out once the heap is this big
  std::unique_ptr<worker_thread> thread_;  // set by start()
  std::unique_ptr<trace_ring> trace_;  // null unless tracing

  mpsc_queue queue_;  // its lines are its own (see mpsc_queue)

  // Written by senders on every wake (when the worker sleeps) and by the worker when it
  // dozes off: its own line so that it does not share one with the queue's ends.
  alignas(k_cache_line) std::atomic<std::uint32_t> sleeping_{0};

  // The stall detector's samples and the statistics, written by the worker per message.
  alignas(k_cache_line) std::atomic<id_t> current_id_{0};
  // Even while the worker rests, odd while it works (quiescent_sample): it turns odd before
  // the worker pops anything and even once it has found its queue empty and run its
  // housekeeping. Single writer; release stores (a plain store on x86).
  std::atomic<std::uint64_t> activity_{0};
  std::atomic<std::uint64_t> started_{0};
  std::atomic<bool> idle_{true};
  std::atomic<bool> exited_{false};
  std::atomic<std::uint64_t> processed_{0};
  std::atomic<std::size_t> items_{0};
  std::atomic<bool> pinned_{false};
  std::atomic<std::size_t> timers_pending_{0};
  std::atomic<std::uint64_t> timers_dropped_{0};

  // Bounded queues only (untouched when the capacity is 0): requests counted in the queue,
  // senders waiting for room, and the futex word those senders sleep on. Senders and the
  // worker both write these, so they sit apart from the hot lines above.
  alignas(k_cache_line) std::atomic<std::uint64_t> queued_{0};
  std::atomic<std::uint32_t> room_waiters_{0};
  std::atomic<std::uint32_t> room_epoch_{0};
};

/// The CPU the calling thread runs on now (a vDSO read, no system call), or -1.
[[nodiscard]] int current_cpu() noexcept;


/// The calling thread's worker, if it is a pool worker (any pool).
extern constinit thread_local worker_base* tl_current_worker;

}  // namespace mtp::impl
