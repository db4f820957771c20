// SPDX-License-Identifier: MIT
// Internals: the untyped pool core (start, routing, the one send path, shutdown, stall
// detection) and the sender gate; the untyped worker is in worker_base.hpp. Do not include
// directly; use <mtp/mtp.hpp>.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <typeinfo>
#include <vector>

#include <mtp/affinity/placement.hpp>
#include <mtp/core/impl/envelope.hpp>
#include <mtp/core/impl/shared_control.hpp>
#include <mtp/core/impl/std_parts.hpp>
#include <mtp/core/impl/wait.hpp>
#include <mtp/core/impl/worker_base.hpp>
#include <mtp/core/options.hpp>
#include <mtp/core/result.hpp>

namespace mtp::impl {

struct pool_mutex;  // a std::mutex; defined in threads.hpp (src)

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

  std::unique_ptr<pool_mutex> shutdown_mutex_;  // serialises shutdown(); never taken on a message path
  bool joined_ = false;                         // written under shutdown_mutex_
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
