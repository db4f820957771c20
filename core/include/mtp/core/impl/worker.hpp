// Internals: the envelope that travels a worker's queue, the untyped worker, and the untyped
// pool core (start, routing, shutdown). Do not include directly; use <mtp/mtp.hpp>.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>
#include <readerwriterqueue/readerwriterqueue.h>

#include <mtp/affinity/placement.hpp>
#include <mtp/core/options.hpp>
#include <mtp/core/result.hpp>

namespace mtp::impl {

/// Size of a cache line on the targets we tune for; an explicit constant rather than
/// std::hardware_destructive_interference_size, whose value may change with compiler flags.
inline constexpr std::size_t k_cache_line = 64;

class worker_base;
struct envelope;
using run_fn = void (*)(worker_base&, envelope&) noexcept;

/// What one queue slot carries: a function that knows the message's type, and 56 bytes for
/// it to read. A batch travels as one envelope per worker (a `chunk`: the batch's address and
/// which of its requests this worker owns); a posted request travels inline when it is small
/// and trivially copyable, otherwise as a pointer to a heap copy.
struct alignas(k_cache_line) envelope {  // aligned: one envelope never straddles two lines
  static constexpr std::size_t k_payload = 56;

  run_fn run = nullptr;
  alignas(8) unsigned char payload[k_payload];

  template <class T>
  static envelope make(run_fn fn, const T& data) noexcept {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= k_payload, "does not fit an envelope");
    envelope e;
    e.run = fn;
    std::memcpy(e.payload, &data, sizeof(T));
    return e;
  }
  template <class T>
  [[nodiscard]] T read() const noexcept {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= k_payload, "does not fit an envelope");
    union holder {
      holder() noexcept {}  // leaves `value` unconstructed: memcpy below creates it
      T value;
    } h;
    std::memcpy(&h.value, payload, sizeof(T));
    return h.value;
  }
};
static_assert(sizeof(envelope) == k_cache_line, "an envelope fills exactly one cache line");
static_assert(std::is_trivially_copyable_v<envelope>, "the queue moves envelopes by copying bytes");

/// A worker's share of a batch: requests [first, first+count) of the job, or, when `indices`
/// is set, requests indices[0..count).
struct chunk {
  void* job;
  const std::uint32_t* indices;
  std::uint32_t first;
  std::uint32_t count;

  /// The piece [from, from+n) of this chunk's requests.
  [[nodiscard]] chunk piece(std::uint32_t from, std::uint32_t n) const noexcept {
    return indices == nullptr ? chunk{job, nullptr, first + from, n} : chunk{job, indices + from, 0, n};
  }

  template <class F>
  void for_each(F&& f) const {
    if (indices == nullptr) {
      for (std::uint32_t i = first; i < first + count; ++i) f(i);
    } else {
      for (std::uint32_t k = 0; k < count; ++k) f(indices[k]);
    }
  }
};

class pool_core;

/// One worker thread and its queue. The typed subclass owns the items.
///
/// Threads: push() from any thread; everything else named "worker thread" runs only on the
/// worker's own thread; the statistics getters from any thread (they are snapshots).
class worker_base {
 public:
  worker_base(pool_core& pool, std::size_t index);
  worker_base(const worker_base&) = delete;
  worker_base& operator=(const worker_base&) = delete;
  virtual ~worker_base();

  /// Starts the thread; it pins itself to `where` first.
  void start(const worker_placement& where, bool bind_memory);
  /// Enqueues one envelope and wakes the worker if it sleeps. Any thread; lock-free. From a
  /// worker of the same pool it goes through that worker's SPSC lane, else the MPSC queue.
  void push(const envelope& e);
  /// push() in two steps, for a sender that enqueues to several workers before waking any:
  /// enqueue() may throw std::bad_alloc; every enqueue() must be followed by a wake().
  void enqueue(const envelope& e);
  void wake() noexcept;

  /// Worker thread: `n` messages of one envelope are done. Counts them, and gives their room
  /// back when they counted against a bounded queue (`counted`: not create/remove).
  void finish_messages(std::uint32_t n, bool counted) noexcept {
    add_processed(n);
    if (counted && pool_options_capacity() != 0) release_room(n);
  }
  /// Bounded queues: waits until `n` more requests fit under `capacity` (an empty queue always
  /// takes a piece), then counts them. Returns false if `deadline` passed first.
  bool reserve_room(std::uint32_t n, std::size_t capacity, std::chrono::steady_clock::time_point deadline) noexcept;
  /// As reserve_room, without waiting; false when they do not fit.
  bool try_reserve_room(std::uint32_t n, std::size_t capacity) noexcept;
  /// Worker thread: `n` counted requests are done; wakes senders waiting for room.
  void release_room(std::uint32_t n) noexcept;

  /// Asks the thread to finish: it answers everything queued, destroys its items, and exits.
  void push_stop();
  void join();

  [[nodiscard]] std::size_t index() const noexcept { return index_; }
  [[nodiscard]] pool_core& pool() const noexcept { return pool_; }
  /// The id whose message the worker is running now (worker thread).
  [[nodiscard]] id_t current_id() const noexcept { return current_id_; }

  [[nodiscard]] std::uint64_t messages_processed() const noexcept {
    return processed_.load(std::memory_order_relaxed);  // a statistic: no ordering needed
  }
  [[nodiscard]] std::size_t item_count() const noexcept {
    return items_.load(std::memory_order_relaxed);  // a statistic: no ordering needed
  }
  [[nodiscard]] std::size_t queue_depth() const noexcept;
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

 protected:
  virtual void on_start() noexcept = 0;  // worker thread: before the first message
  virtual void on_stop() noexcept = 0;   // worker thread: destroy items, after the last message
  /// Stops and joins the thread if it still runs; subclasses call it from their destructor so
  /// that the thread never calls on_stop() on a half-destroyed object.
  void stop_and_join() noexcept;

  void set_current_id(id_t id) noexcept { current_id_ = id; }
  void set_item_count(std::size_t n) noexcept {
    items_.store(n, std::memory_order_relaxed);  // single writer; a statistic only
  }

 private:
  [[nodiscard]] std::size_t pool_options_capacity() const noexcept;
  static void run_stop(worker_base& w, envelope&) noexcept;
  void main(const worker_placement& where, bool bind_memory) noexcept;
  void run_loop() noexcept;
  std::size_t drain(envelope* buffer, std::size_t capacity) noexcept;
  void sleep_until_work() noexcept;
  [[nodiscard]] bool has_work() const noexcept;
  std::size_t run_lanes(envelope& slot) noexcept;

  pool_core& pool_;
  const std::size_t index_;
  worker_placement where_;
  int sole_cpu_ = -1;  // the CPU when pinned to exactly one, else -1
  id_t current_id_ = 0;
  bool stop_seen_ = false;
  std::thread thread_;

  // MPSC: any thread outside this pool produces, only this worker consumes. moodycamel's
  // ConcurrentQueue keeps one sub-queue per producer, so each sender's messages stay in the
  // order it sent them, and bulk dequeue takes many at a time.
  moodycamel::ConcurrentQueue<envelope> queue_;

  // SPSC lanes from this pool's own workers: lane s carries what worker s's thread sends here
  // (posts and calls between sibling items). Exactly one producer and one consumer, so a
  // ReaderWriterQueue: no producer lookup, no CAS, and the MPSC queue keeps fewer producers.
  // Created by its sender on first use; the pointer is published with release, read with
  // acquire; freed with the worker.
  using lane = moodycamel::ReaderWriterQueue<envelope>;
  std::unique_ptr<std::atomic<lane*>[]> lanes_;
  std::size_t lane_count_ = 0;

  // Written by producers on every push (when the worker sleeps) and by the worker when it
  // dozes off: its own line so that it does not share one with the queue's consumer state.
  alignas(k_cache_line) std::atomic<std::uint32_t> sleeping_{0};
  // Statistics, written by the worker on every chunk: kept off the line producers touch.
  alignas(k_cache_line) std::atomic<std::uint64_t> processed_{0};
  std::atomic<std::size_t> items_{0};
  std::atomic<bool> pinned_{false};

  // Bounded queues only (untouched when the capacity is 0): requests counted in the queue,
  // senders waiting for room, and the futex word those senders sleep on. Producers and the
  // worker both write these, so they sit apart from the hot lines above.
  alignas(k_cache_line) std::atomic<std::uint64_t> queued_{0};
  std::atomic<std::uint32_t> room_waiters_{0};
  std::atomic<std::uint32_t> room_epoch_{0};
};

/// The CPU the calling thread runs on now (a vDSO read, no system call), or -1.
[[nodiscard]] int current_cpu() noexcept;

/// The calling thread's worker, if it is a pool worker (any pool).
extern constinit thread_local worker_base* tl_current_worker;

/// The untyped part of a pool: workers, routing, the sender gate, shutdown, diagnostics.
class pool_core {
 public:
  explicit pool_core(pool_options options);
  pool_core(const pool_core&) = delete;
  pool_core& operator=(const pool_core&) = delete;
  ~pool_core();

  using worker_factory = std::function<std::unique_ptr<worker_base>(pool_core&, std::size_t)>;
  void start(const worker_factory& make);

  [[nodiscard]] std::size_t worker_count() const noexcept { return workers_.size(); }
  [[nodiscard]] worker_base& worker(std::size_t k) const noexcept { return *workers_[k]; }
  [[nodiscard]] const mtp::placement& placement() const noexcept { return placement_; }
  [[nodiscard]] const pool_options& options() const noexcept { return options_; }

  static constexpr std::size_t k_bad_route = ~std::size_t{0};
  /// The worker index for `id`, or k_bad_route when a user router returned nonsense.
  [[nodiscard]] std::size_t route(id_t id) const noexcept {
    if (!has_router_) [[likely]] return mask_ != 0 ? (id & mask_) : id % workers_.size();
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

  /// Stops accepting messages, lets every worker answer what it already has, destroys every
  /// item on its own thread, joins the threads. Idempotent; concurrent calls all return once
  /// the pool has stopped. Throws pool_error(would_deadlock) on one of this pool's workers.
  void shutdown();
  [[nodiscard]] bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }

  void report(const diagnostic& d) const noexcept;
  /// Reports a worker that could not pin itself; once per pool, since all would say the same.
  void report_pinning_failure(std::size_t worker, const std::string& why) const noexcept;

 private:
  [[nodiscard]] std::size_t route_custom(id_t id) const noexcept;

  pool_options options_;
  mtp::placement placement_;
  std::vector<std::unique_ptr<worker_base>> workers_;
  std::size_t mask_ = 0;  // workers - 1 when the count is a power of two above 1, else 0
  bool has_router_ = false;

  std::mutex shutdown_mutex_;  // serialises shutdown(); never taken on a message path
  bool joined_ = false;        // written under shutdown_mutex_

  // The gate, on its own line: every send touches it, the workers never do.
  alignas(k_cache_line) std::atomic<bool> stopping_{false};
  std::atomic<std::uint32_t> active_senders_{0};
  mutable std::atomic<bool> pinning_reported_{false};
};

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

}  // namespace mtp::impl
