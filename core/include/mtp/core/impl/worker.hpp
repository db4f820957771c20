// SPDX-License-Identifier: MIT
// Internals: the untyped worker (its thread and queue), the untyped pool core (start, routing,
// the one send path, shutdown, stall detection) and the sender gate. Do not include directly;
// use <mtp/mtp.hpp>.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include <mtp/affinity/placement.hpp>
#include <mtp/core/impl/envelope.hpp>
#include <mtp/core/impl/mpsc_queue.hpp>
#include <mtp/core/impl/timer_heap.hpp>
#include <mtp/core/impl/wait.hpp>
#include <mtp/core/options.hpp>
#include <mtp/core/result.hpp>

namespace mtp::impl {

class pool_core;
class trace_ring;   // a worker's trace events; defined in trace.cpp

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
  std::thread thread_;
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

/// Shared ownership of a batch whose caller may stop waiting (timed and submitted batches):
/// the caller's handle and the last arriving worker each drop one reference; the second one
/// frees it.
struct shared_control {
  std::atomic<bool> cancelled{false};  // set by a caller that gave up: skip what has not started
  errc cancelled_as = errc::timed_out;  // what a skipped request gets
  std::atomic<std::uint32_t> refs{2};
  void (*destroy)(shared_control*) noexcept = nullptr;
  /// Who completes an operation with a callback: k_open until the side that runs the callback
  /// takes it (k_taken) or the caller abandons it (k_abandoned: the callback never runs).
  static constexpr std::uint8_t k_open = 0, k_taken = 1, k_abandoned = 2;
  std::atomic<std::uint8_t> turn{k_open};

  /// The callback's side: whether it may run the callback (false once abandoned).
  bool take_turn() noexcept {
    // acq_rel: pairs with abandon(); the winner alone touches the caller's state after this.
    return turn.exchange(k_taken, std::memory_order_acq_rel) != k_abandoned;
  }
  /// The caller's side: true if the callback has not started and now never will.
  bool abandon() noexcept {
    std::uint8_t open = k_open;
    // acq_rel: pairs with take_turn().
    return turn.compare_exchange_strong(open, k_abandoned, std::memory_order_acq_rel);
  }

  void release() noexcept {
    // acq_rel: the freeing side must see every write the other side made to the batch.
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(this);
  }
};

/// The untyped face of a batch in flight: what the send path needs to fail a request it could
/// not deliver, and to count the pieces.
struct job_base {
  completion* done = nullptr;
  shared_control* control = nullptr;  // set when the batch is shared (timed, submitted)
  /// Answers request `i` with `e` (its id filled in by the typed side).
  void (*fail)(job_base& job, std::uint32_t i, errc code, std::exception_ptr ex) noexcept = nullptr;
  /// Set for a batch with a completion callback (always shared): run by the last arrival.
  void (*on_complete)(job_base& job) noexcept = nullptr;
  /// Set for a submitted batch: per worker of the pool, its pieces not yet run, so that
  /// batch::wait() on a worker can tell that its own share is still queued behind it.
  std::atomic<std::uint32_t>* shares = nullptr;

  /// One piece of the batch is answered; the last one runs the completion callback, if any,
  /// and frees a shared batch when it held the last reference. The last arrival may free an
  /// unshared job at once (its caller returns), so everything is read before it.
  void arrive() noexcept {
    shared_control* const shared = control;
    const auto complete = on_complete;
    if (!done->arrive()) return;
    if (complete != nullptr) complete(*this);  // shared: our reference keeps the job alive
    if (shared != nullptr) shared->release();
  }
};

/// How one send treats bounded queues.
struct send_policy {
  std::size_t capacity = 0;             ///< 0: do not count (unbounded, or create/remove)
  time_point deadline = time_point::max();  ///< waiting for room gives up then
  errc no_room = errc::timed_out;       ///< what a request that found no room gets
};

/// The untyped part of a pool: workers, routing, the sender gate, the send path, shutdown,
/// diagnostics.
class pool_core {
 public:
  explicit pool_core(pool_options options);
  pool_core(const pool_core&) = delete;
  pool_core& operator=(const pool_core&) = delete;
  ~pool_core();

  using worker_factory = std::function<std::unique_ptr<worker_base>(pool_core&, std::size_t)>;
  void start(const worker_factory& make);

  /// Ends a pool: shutdown() and then free it (`core` stays set during the shutdown, so that an
  /// item destructor sending to the pool gets pool_stopped), or, called on one of its own
  /// workers (an item dropping the pool it lives in), stop it without waiting and let that
  /// worker free it once it has finished its current message and destroyed its items. Either
  /// way `core` is null afterwards.
  static void destroy(std::unique_ptr<pool_core>& core) noexcept;

  /// Whether no worker runs a message or has one queued, over two passes (see pool_core.cpp).
  [[nodiscard]] bool quiescent() const noexcept;
  [[nodiscard]] std::size_t worker_count() const noexcept { return workers_.size(); }
  [[nodiscard]] worker_base& worker(std::size_t k) const noexcept { return *workers_[k]; }
  [[nodiscard]] const mtp::placement& placement() const noexcept { return placement_; }
  [[nodiscard]] const pool_options& options() const noexcept { return options_; }

  /// The mtp::thread_pool object that owns this core, for mtp::this_pool(): set by its
  /// constructor and its moves, null once an item of the pool has dropped it.
  // release/acquire: a handler that reads the new address also sees the object moved into it.
  void set_owner(void* owner) noexcept { owner_.store(owner, std::memory_order_release); }
  [[nodiscard]] void* owner() const noexcept { return owner_.load(std::memory_order_acquire); }

  static constexpr std::uint32_t k_bad_route = ~std::uint32_t{0};
  /// A route meaning "already answered by the sender": not sent to any worker.
  static constexpr std::uint32_t k_answered = k_bad_route - 1;
  /// The worker index for `id`, or k_bad_route when a user router threw or returned an index
  /// out of range.
  [[nodiscard]] std::uint32_t route(id_t id) const noexcept {
    if (!has_router_) [[likely]] {
      return static_cast<std::uint32_t>(mask_ != 0 ? (id & mask_) : id % workers_.size());
    }
    return route_custom(id);
  }

  /// The calling thread's worker when it belongs to this pool, else nullptr.
  [[nodiscard]] worker_base* own_worker() const noexcept {
    worker_base* w = tl_current_worker;
    return (w != nullptr && &w->pool() == this) ? w : nullptr;
  }

  /// Sender gate: every enqueue happens between enter() (true = the pool accepts messages) and
  /// leave(). Shutdown closes the gate, then waits for the senders inside to leave, so no
  /// message can be enqueued after a worker's stop marker.
  [[nodiscard]] bool enter() noexcept;
  void leave() noexcept;

  /// The one send path of every batch form: groups the routed requests by worker (counting
  /// sort into `order`, which must live until the batch completes), sends one chunk per worker
  /// (in pieces of at most the capacity when queues are bounded), then wakes each worker once,
  /// the one on the caller's CPU last. `routes[i]` is the worker of request i, or k_answered.
  /// A piece that cannot be sent (no room, no memory) is answered through job.fail, as is
  /// every piece after it; their number goes to `unsent`, and the caller calls job.arrive()
  /// that many times once it has left the gate (a completion must not run inside it). Sets
  /// the completion's count before the first push and returns it. The caller holds the gate.
  std::uint32_t dispatch(job_base& job, const std::uint32_t* routes, std::size_t n, run_fn run,
                         const send_policy& policy, std::vector<std::uint32_t>& order, std::uint32_t& unsent);
  /// Sends one envelope that carries its whole request; false (nothing sent) when there was no
  /// room before the deadline; throws std::bad_alloc when no node could be had.
  bool send_one(std::size_t k, const envelope& e, const send_policy& policy);

  /// Stops accepting messages, lets every worker answer what it already has, destroys every
  /// item on its own thread, joins the threads, and writes the trace file if tracing.
  /// Idempotent; concurrent calls all return once the pool has stopped. Throws
  /// pool_error(would_deadlock) on one of this pool's workers.
  void shutdown();
  /// Writes the trace recorded so far as Chrome trace-event JSON (each worker copies its own
  /// events on its thread, so this waits for every worker to reach the request). Throws
  /// std::logic_error when tracing is off, pool_error(would_deadlock) on one of its workers,
  /// std::runtime_error when the file cannot be written.
  void write_trace(const std::string& path);
  [[nodiscard]] bool tracing() const noexcept { return !trace_file_.empty(); }
  [[nodiscard]] std::chrono::steady_clock::time_point started_at() const noexcept { return started_at_; }
  [[nodiscard]] bool stopping() const noexcept {
    return (gate_.load(std::memory_order_acquire) & k_gate_closed) != 0;  // acquire: a reader acts on it
  }

  void report(const diagnostic& d) const noexcept;
  /// Reports a worker that could not pin itself; once per pool, since all would say the same.
  void report_pinning_failure(std::size_t worker, const std::string& why) const noexcept;

 private:
  friend class worker_base;
  friend class stall_monitor;
  [[nodiscard]] std::uint32_t route_custom(id_t id) const noexcept;
  /// Closes the gate without waiting for the senders inside; true when this call closed it.
  bool begin_closing() noexcept;
  /// Closes the gate and waits until no sender is inside.
  void close_gate() noexcept;
  [[nodiscard]] bool senders_inside() const noexcept;
  void push_stops();
  /// Worker thread of the worker that dropped its own pool: joins the others, writes the trace
  /// and frees the pool, or leaves that to a shutdown() on another thread that joins it.
  void finish_from(worker_base& self) noexcept;
  /// Writes the trace file once the workers are joined (tracing only); a failure is reported.
  void write_trace_at_end() noexcept;

  void write_trace_file(const std::string& path, const std::vector<std::string>& per_worker) const;

  pool_options options_;
  std::string trace_file_;  // where the trace goes at shutdown; empty: not tracing
  std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
  mtp::placement placement_;
  std::vector<std::unique_ptr<worker_base>> workers_;
  std::size_t mask_ = 0;  // workers - 1 when the count is a power of two above 1, else 0
  bool has_router_ = false;
  bool monitored_ = false;  // registered with the stall monitor

  std::mutex shutdown_mutex_;  // serialises shutdown(); never taken on a message path
  bool joined_ = false;        // written under shutdown_mutex_
  // The worker that dropped its own pool and will free it; set before its stop marker is
  // pushed, read by that worker after it ran the marker (the queue orders the two).
  // Every worker reads it when it leaves its loop, also those stopped by a shutdown() that
  // runs while an item drops the pool, so it is atomic.
  std::atomic<worker_base*> finisher_{nullptr};
  // Who frees a pool whose last owner was one of its items: a shutdown() on another thread
  // that is joining the workers (k_shutdown_joining) frees it when the finishing worker handed
  // it over (k_handed_over); otherwise that worker frees it.
  static constexpr std::uint8_t k_shutdown_joining = 1;
  static constexpr std::uint8_t k_handed_over = 2;
  std::atomic<std::uint8_t> ending_{0};
  std::atomic<void*> owner_{nullptr};  // see set_owner()

  // The gate, on its own line: every send touches it, the workers never do. One word: the
  // senders inside, and the top bit once the gate is closed, so that a sender's leave() learns
  // everything from its own decrement. Also the futex word shutdown sleeps on.
  static constexpr std::uint32_t k_gate_closed = std::uint32_t{1} << 31;
  alignas(k_cache_line) std::atomic<std::uint32_t> gate_{0};
  mutable std::atomic<bool> pinning_reported_{false};
};

/// Throws what mtp::this_pool() throws when the calling thread is not a worker of the pool
/// type it names (`wanted`: that thread_pool type; `worker`: the calling worker, or null).
[[noreturn]] void throw_not_this_pool(const std::type_info& wanted, const worker_base* worker);
/// Throws pool_error(pool_stopped): the pool object was destroyed by one of its items.
[[noreturn]] void throw_pool_object_gone();

/// RAII form of the sender gate.
class send_gate {
 public:
  explicit send_gate(pool_core& core) noexcept : core_(core), open_(core.enter()) {}
  send_gate(const send_gate&) = delete;
  send_gate& operator=(const send_gate&) = delete;
  ~send_gate() {
    if (open_) core_.leave();
  }
  [[nodiscard]] bool open() const noexcept { return open_; }

 private:
  pool_core& core_;
  bool open_;
};

/// Per-thread scratch for the send path (one send at a time per thread). Buffers that grew
/// past a high-water mark are released after the send instead of being kept for the thread's
/// life.
std::vector<std::uint32_t>& scratch_routes();
std::vector<std::uint32_t>& scratch_order();
void trim_scratch() noexcept;

}  // namespace mtp::impl
