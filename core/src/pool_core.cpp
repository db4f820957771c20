// SPDX-License-Identifier: MIT
#include <mtp/core/impl/worker.hpp>

#include <mtp/core/impl/wait.hpp>

#include "threads.hpp"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstdio>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

namespace mtp::impl {

namespace {
// The most workers one pool may have: far above any machine's cores, far below what would
// exhaust memory or thread limits before the pool could say so.
constexpr std::size_t k_max_pool_workers = mtp::k_max_workers;

mtp::placement choose_placement(const pool_options& options) {
  if (options.workers > k_max_pool_workers) {
    throw std::invalid_argument("mtp: pool_options::workers = " + std::to_string(options.workers) +
                                " exceeds the limit of " + std::to_string(k_max_pool_workers) + " workers per pool");
  }
  mtp::placement p = options.placement ? *options.placement : default_placement(options.workers);
  std::size_t n = options.workers != 0 ? options.workers : p.workers.size();
  if (n == 0) n = 1;
  if (n > k_max_pool_workers) {
    throw std::invalid_argument("mtp: the placement has " + std::to_string(n) + " workers; the limit is " +
                                std::to_string(k_max_pool_workers) + " workers per pool");
  }
  if (p.workers.size() != n) {
    // An explicit placement with a different worker count: share its entries round-robin.
    std::vector<worker_placement> spread(n);
    if (!p.workers.empty()) {
      for (std::size_t i = 0; i < n; ++i) spread[i] = p.workers[i % p.workers.size()];
      p.notes.push_back(std::to_string(n) + " workers use the " + std::to_string(p.workers.size()) +
                        " placement entries round-robin");
    }
    p.workers = std::move(spread);
  }
  return p;
}

// Buffers kept per thread for the send path; above this many entries a buffer is released
// after the send (a 10^7-request batch must not pin 40 MB for the thread's life).
constexpr std::size_t k_scratch_keep = std::size_t{1} << 16;

struct placed_chunk {
  std::size_t worker;
  chunk c;
};

std::vector<std::uint32_t>& scratch_counts() {
  thread_local std::vector<std::uint32_t> counts;
  return counts;
}
std::vector<placed_chunk>& scratch_chunks() {
  thread_local std::vector<placed_chunk> chunks;
  return chunks;
}

std::string seconds_text(std::chrono::nanoseconds d) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3f s", std::chrono::duration<double>(d).count());
  return buffer;
}
}  // namespace

std::vector<std::uint32_t>& scratch_routes() {
  thread_local std::vector<std::uint32_t> routes;
  return routes;
}
std::vector<std::uint32_t>& scratch_order() {
  thread_local std::vector<std::uint32_t> order;
  return order;
}
void trim_scratch() noexcept {
  for (std::vector<std::uint32_t>* v : {&scratch_routes(), &scratch_order()}) {
    if (v->capacity() > k_scratch_keep) std::vector<std::uint32_t>().swap(*v);
  }
}

// ---- The stall monitor -------------------------------------------------------------------

/// One thread per process watches every pool that has a stall threshold: a worker that stays
/// inside one message (its started-messages count does not move and it is not idle) for
/// longer than the threshold is reported once, and once more if shutdown then waits for it.
/// The thread starts with the first such pool and sleeps while there is none.
class stall_monitor {
 public:
  static stall_monitor& instance() {
    // Never destroyed: pools with static storage may end after any static destructor.
    static const bool once = [] {
      current_.store(new stall_monitor, std::memory_order_release);  // release: see below
      // A child of fork() has none of the parent's threads, this monitor's included: it gets
      // a monitor of its own for the pools it creates (the parent's, whose lock another thread
      // may have held at the fork, is left alone).
      pthread_atfork(nullptr, nullptr, [] { current_.store(new stall_monitor, std::memory_order_release); });
      return true;
    }();
    (void)once;
    return *current_.load(std::memory_order_acquire);  // acquire: a fully built monitor
  }

  void add(pool_core* pool) {
    std::lock_guard lock(mutex_);
    entries_.push_back({pool, std::vector<watch>(pool->worker_count())});
    if (!started_) {
      std::thread([this] { run(); }).detach();  // lives as long as the process
      started_ = true;
    }
    wake_.notify_one();
  }

  void remove(pool_core* pool) noexcept {
    std::unique_lock lock(mutex_);
    // Never free a pool while its report is being delivered (unless the report's own hook is
    // the one dropping it, on this very thread).
    if (std::this_thread::get_id() != thread_id_) reported_.wait(lock, [&] { return reporting_ != pool; });
    std::erase_if(entries_, [pool](const entry& e) { return e.pool == pool; });
  }

 private:
  struct watch {
    std::uint64_t started = 0;
    time_point since{};
    bool reported = false;
    bool reported_in_shutdown = false;
    bool cut = false;  // watching a cut queue rather than a long message
  };
  struct entry {
    pool_core* pool;
    std::vector<watch> workers;
  };

  void run() {
    std::unique_lock lock(mutex_);
    thread_id_ = std::this_thread::get_id();
    for (;;) {
      if (entries_.empty()) {
        wake_.wait(lock);
        continue;
      }
      std::chrono::nanoseconds tick = std::chrono::milliseconds(250);
      for (const entry& e : entries_) tick = std::min(tick, e.pool->options().stall_threshold / 4);
      wake_.wait_for(lock, std::max<std::chrono::nanoseconds>(tick, std::chrono::milliseconds(1)));
      scan(lock);
    }
  }

  void scan(std::unique_lock<std::mutex>& lock) {
    const time_point now = std::chrono::steady_clock::now();
    for (std::size_t p = 0; p < entries_.size(); ++p) {
      pool_core* const pool = entries_[p].pool;
      const std::chrono::nanoseconds threshold = pool->options().stall_threshold;
      for (std::size_t k = 0; k < entries_[p].workers.size(); ++k) {
        watch& w = entries_[p].workers[k];
        const worker_base& worker = pool->worker(k);
        const std::uint64_t started = worker.messages_started();
        // An idle worker with messages queued that it cannot see: a sender stopped between
        // the exchange and the link of its enqueue has cut the queue (see worker_base).
        const bool busy = worker.in_message();
        // A worker that has left its loop may keep a stop marker it never needed: not a cut.
        const std::size_t queued = busy || worker.exited() ? 0 : worker.queue_depth();
        const bool cut = queued != 0;
        if ((!busy && !cut) || cut != w.cut || started != w.started || w.since == time_point{}) {
          w = watch{started, now, false, false, cut};
          continue;
        }
        const std::chrono::nanoseconds running = now - w.since;
        const bool stopping = pool->stopping();
        if (running < threshold || (w.reported && (!stopping || w.reported_in_shutdown))) continue;
        w.reported = true;
        w.reported_in_shutdown = stopping;
        std::optional<id_t> item;
        std::string text;
        if (cut) {
          text = "the worker has had " + std::to_string(queued) + " queued message(s) it cannot reach for at least " +
                 seconds_text(running) + " (stall_threshold " + seconds_text(threshold) +
                 "): a sender stopped between the two steps of its enqueue (pre-empted, or in a signal handler that "
                 "has not returned) cuts the queue until it resumes";
        } else {
          item = worker.current_id();
          text = "a message for item " + std::to_string(*item) + " has been running for at least " +
                 seconds_text(running) + " (stall_threshold " + seconds_text(threshold) + ")";
        }
        if (stopping) text += "; shutdown is waiting for it";
        reporting_ = pool;
        lock.unlock();
        pool->report({diagnostic::kind::stalled, k, std::move(text), std::nullopt, item, running});
        lock.lock();
        reporting_ = nullptr;
        reported_.notify_all();
        // The hook may have removed pools (entries_ changed): restart the scan next tick.
        if (p >= entries_.size() || entries_[p].pool != pool) return;
      }
    }
  }

  static inline std::atomic<stall_monitor*> current_{nullptr};

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable reported_;
  std::vector<entry> entries_;
  pool_core* reporting_ = nullptr;
  std::thread::id thread_id_{};
  bool started_ = false;
};

// ---- The pool ----------------------------------------------------------------------------

namespace {
// The trace file of a new pool: its option, else MTP_TRACE (PATH for the first pool of the
// process, PATH.1 for the second, ...).
std::string trace_file_for(const pool_options& options) {
  if (!options.trace_file.empty()) return options.trace_file;
  // getenv only races with a concurrent setenv, which this library never calls.
  const char* env = std::getenv("MTP_TRACE");  // NOLINT(concurrency-mt-unsafe)
  if (env == nullptr || *env == '\0') return {};
  static std::atomic<unsigned> pools{0};
  const unsigned n = pools.fetch_add(1, std::memory_order_relaxed);  // only a counter
  return n == 0 ? std::string(env) : std::string(env) + "." + std::to_string(n);
}
}  // namespace

namespace {
// The shortest passivation period: a worker sweeps its items a few times per period, so a
// shorter one would keep it sweeping rather than running messages.
constexpr std::chrono::nanoseconds k_min_passivate_after = std::chrono::milliseconds(1);

pool_options validated(pool_options options) {
  const std::chrono::nanoseconds d = options.passivate_after;
  if (d != std::chrono::nanoseconds::zero() && d < k_min_passivate_after) {
    throw std::invalid_argument("mtp: pool_options::passivate_after = " + std::to_string(d.count()) +
                                " ns is below the minimum of 1 ms (0 turns passivation off)");
  }
  return options;
}
}  // namespace

pool_core::pool_core(pool_options options)
    : options_(validated(std::move(options))), trace_file_(trace_file_for(options_)), placement_(choose_placement(options_)) {
  const std::size_t n = placement_.workers.size();
  mask_ = (n > 1 && (n & (n - 1)) == 0) ? n - 1 : 0;
  has_router_ = static_cast<bool>(options_.router);
  shutdown_mutex_ = std::make_unique<pool_mutex>();
}

pool_core::~pool_core() {
  if (monitored_) stall_monitor::instance().remove(this);
}

void pool_core::start(const worker_factory& make) {
  const std::size_t n = placement_.workers.size();
  workers_.reserve(n);
  for (std::size_t k = 0; k < n; ++k) workers_.push_back(make(*this, k));
  for (std::size_t k = 0; k < n; ++k) workers_[k]->start(placement_.workers[k], placement_.bind_memory);
  for (const std::string& note : placement_.notes) {
    report({diagnostic::kind::placement_note, 0, note, std::nullopt});
  }
  if (options_.stall_threshold > std::chrono::nanoseconds::zero()) {
    stall_monitor::instance().add(this);
    monitored_ = true;
  }
}

std::uint32_t pool_core::route_custom(id_t id) const noexcept {
  try {
    const std::size_t k = options_.router(id, workers_.size());
    return k < workers_.size() ? static_cast<std::uint32_t>(k) : k_bad_route;
  } catch (...) {
    return k_bad_route;
  }
}

bool pool_core::enter() noexcept {
  // seq_cst: one RMW of the word close_gate() sets the stop bit in; either our increment comes
  // first (close_gate() waits for our leave()) or we see the bit and turn back.
  if ((gate_.fetch_add(1, std::memory_order_seq_cst) & k_gate_closed) != 0) {
    leave();
    return false;
  }
  return true;
}

void pool_core::leave() noexcept {
  // seq_cst: our enqueues happen-before close_gate()'s read of zero (hence before its stop
  // markers). The value before our decrement says everything: nothing of the pool is read
  // after it, since the pool may be freed as soon as the count reaches zero. The wake below is
  // a system call on the word's address only: if the pool is gone it wakes nobody, or gives a
  // spurious wake-up to a waiter on reused memory, which every futex waiter tolerates.
  std::atomic<std::uint32_t>& word = gate_;
  if (word.fetch_sub(1, std::memory_order_seq_cst) == (k_gate_closed | 1)) futex_wake_all(word);
}

bool pool_core::begin_closing() noexcept {
  // seq_cst: see enter(). Returns whether this call closed the gate.
  return (gate_.fetch_or(k_gate_closed, std::memory_order_seq_cst) & k_gate_closed) == 0;
}

void pool_core::close_gate() noexcept {
  (void)begin_closing();
  // Senders inside the gate only enqueue, or wait for room that the running workers free:
  // sleep until the last one leaves.
  for (;;) {
    const std::uint32_t now = gate_.load(std::memory_order_seq_cst);
    if (now == k_gate_closed) return;
    futex_wait(gate_, now);
  }
}

void pool_core::shutdown() {
  if (own_worker() != nullptr) {
    throw pool_error(errc::would_deadlock, 0,
                     "mtp: shutdown() called on a worker of the same pool would deadlock (would_deadlock)");
  }
  bool free_after = false;
  {
    std::lock_guard lock(shutdown_mutex_->mutex);
    if (joined_) return;
    // relaxed: read back only by the worker that may finish the pool, after it ran its stop
    // marker, which we push below (the queue orders the two).
    ending_.fetch_or(k_shutdown_joining, std::memory_order_relaxed);
    close_gate();
    for (auto& w : workers_) w->push_stop();
    for (auto& w : workers_) w->join();
    joined_ = true;
    write_trace_at_end();
    // acquire (after the join, which already orders it): the pool was handed to us by its last
    // owner, an item destroyed during this shutdown; we free it once we have let go of it.
    free_after = (ending_.load(std::memory_order_acquire) & k_handed_over) != 0;
  }
  if (free_after) delete this;
}

void pool_core::write_trace_at_end() noexcept {
  if (!tracing()) return;
  try {
    std::vector<std::string> per_worker;
    for (auto& w : workers_) per_worker.push_back(w->trace_json_events());  // the threads are gone
    write_trace_file(trace_file_, per_worker);
  } catch (const std::exception& e) {
    report({diagnostic::kind::hook_failed, 0, std::string("the trace was not written: ") + e.what(), std::nullopt});
  }
}

void pool_core::destroy(std::unique_ptr<pool_core>& core) noexcept {
  if (core == nullptr) return;
  worker_base* const self = core->own_worker();
  if (self == nullptr) {
    // Shut down while the owner still holds the pool: an item destructor that sends to it
    // during the shutdown gets pool_stopped, not a null pool.
    core->shutdown();  // cannot throw: not on one of its workers (a stop marker's node: see below)
    core.reset();
    return;
  }
  // An item is dropping the pool it lives in. Joining here would wait for ourselves, so the
  // pool stops without waiting and this worker frees it once it leaves its loop: it finishes
  // the current message, answers what is queued, destroys its items, joins the other workers.
  // this_pool() on any of its threads says from now on that the object is gone.
  core->set_owner(nullptr);
  pool_core* const pool = core.release();
  // relaxed: only `self` acts on it, reading it later on this same thread; the other workers
  // compare it with themselves and find it is not them whatever they read.
  pool->finisher_.store(self, std::memory_order_relaxed);
  // Close the gate, but do not wait here for the senders inside: one may be waiting for room
  // in this very worker's queue. This worker keeps running messages and pushes the stop
  // markers once the last sender has left (worker_base::run_loop). When the gate was already
  // closed, a shutdown() on another thread pushes them (this is one of its item destructors).
  if (pool->begin_closing()) self->close_when_senders_left_ = true;
}

bool pool_core::quiescent() const noexcept {
  // Two passes. A worker is quiet in a pass when its queue is drained and it rests (an even
  // activity count); the pool is quiescent when every worker is quiet in both passes with the
  // same counts. Counts only grow, so equal sums mean that no worker changed between its two
  // samples. Nothing can hide: a message that one worker pushed to another before resting
  // shows in the second pass (its pushed count, or the other worker's count, has moved),
  // since that pass reads after the first saw the pusher rest.
  std::uint64_t sums[2] = {0, 0};
  for (std::uint64_t& sum : sums) {
    for (const auto& w : workers_) {
      const std::uint64_t sample = w->quiescent_sample();
      if ((sample & 1) != 0) return false;
      sum += sample;
    }
  }
  return sums[0] == sums[1];
}

bool pool_core::senders_inside() const noexcept {
  // seq_cst: pairs with leave(); once zero with the gate closed, no sender can enqueue again.
  return (gate_.load(std::memory_order_seq_cst) & ~k_gate_closed) != 0;
}

void pool_core::push_stops() {
  for (auto& w : workers_) w->push_stop();
}

void pool_core::finish_from(worker_base& self) noexcept {
  // A shutdown() on another thread that is joining us frees the pool instead (its item was
  // the last owner, destroyed during that shutdown): we only tell it so.
  // acq_rel: the release hands our writes to that thread; the acquire sees its bit.
  if ((ending_.fetch_or(k_handed_over, std::memory_order_acq_rel) & k_shutdown_joining) != 0) return;
  for (auto& w : workers_) {
    if (w.get() != &self) w->join();
  }
  write_trace_at_end();  // the workers are done: the same trace file as shutdown() writes
  self.thread_->thread.detach();  // we are that thread; it ends right after this call
  delete this;
}

// ---- The send path -----------------------------------------------------------------------

bool pool_core::send_one(std::size_t k, const envelope& e, const send_policy& policy) {
  worker_base& w = *workers_[k];
  if (policy.capacity != 0 && !w.reserve_room(1, policy.capacity, policy.deadline)) return false;
  try {
    w.push(e);
  } catch (...) {
    if (policy.capacity != 0) w.release_room(1);
    throw;
  }
  return true;
}

std::uint32_t pool_core::dispatch(job_base& job, const std::uint32_t* routes, std::size_t n, run_fn run,
                                  const send_policy& policy, std::vector<std::uint32_t>& order,
                                  std::uint32_t& unsent) {
  unsent = 0;
  const std::size_t workers = workers_.size();
  // Counting sort by worker: count, then place each request's index in its worker's run.
  std::vector<std::uint32_t>& counts = scratch_counts();
  counts.assign(workers, 0);
  std::size_t sent = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (routes[i] < workers) {
      ++counts[routes[i]];
      ++sent;
    }
  }
  std::vector<placed_chunk>& chunks = scratch_chunks();
  chunks.clear();
  const auto one_worker = std::find(counts.begin(), counts.end(), static_cast<std::uint32_t>(n));
  if (sent != 0 && sent == n && one_worker != counts.end()) {
    // One worker has it all: one contiguous chunk, no index list.
    chunks.push_back({static_cast<std::size_t>(one_worker - counts.begin()), chunk{&job, nullptr, 0, static_cast<std::uint32_t>(n)}});
  } else if (sent != 0) {
    order.resize(sent);
    std::uint32_t offset = 0;
    for (std::size_t k = 0; k < workers; ++k) {
      if (counts[k] != 0) chunks.push_back({k, chunk{&job, order.data() + offset, 0, counts[k]}});
      const std::uint32_t c = counts[k];
      counts[k] = offset;  // now the next free slot of worker k
      offset += c;
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (routes[i] < workers) order[counts[routes[i]]++] = static_cast<std::uint32_t>(i);
    }
  }

  // Pieces: one per chunk, or per `capacity` requests of it when queues are bounded. The
  // completion's count keeps its top bit for the sleeping flag, so a batch may have fewer
  // than 2^31 pieces.
  const std::size_t capacity = policy.capacity;
  std::uint64_t pieces = 0;
  for (const placed_chunk& p : chunks) pieces += capacity == 0 ? 1 : (p.c.count + capacity - 1) / capacity;
  if (pieces >= completion::k_sleeping) {
    throw std::length_error("mtp: a batch would travel in 2^31 pieces or more; raise pool_options::queue_capacity");
  }
  job.done->reset(static_cast<std::uint32_t>(pieces));  // before the first push: a worker may finish before we return

  std::optional<std::pair<errc, std::exception_ptr>> failed;  // once set, every later piece gets it
  for (const placed_chunk& p : chunks) {
    worker_base& w = *workers_[p.worker];
    const std::uint32_t step = capacity == 0 ? p.c.count : static_cast<std::uint32_t>(std::min<std::size_t>(capacity, p.c.count));
    for (std::uint32_t from = 0; from < p.c.count; from += step) {
      const chunk piece = p.c.piece(from, std::min(step, p.c.count - from));
      if (!failed && capacity != 0 && !w.reserve_room(piece.count, capacity, policy.deadline)) {
        failed.emplace(policy.no_room, nullptr);
      }
      if (!failed) {
        // relaxed: the enqueue below publishes it to the worker, which takes it back.
        if (job.shares != nullptr) job.shares[p.worker].fetch_add(1, std::memory_order_relaxed);
        try {
          w.enqueue(envelope::make(run, piece));
          // A bounded queue drains only if its worker is awake: wake it before the next
          // reserve_room can wait. Unbounded: all wakes come after all enqueues, below.
          if (capacity != 0) w.wake();
          continue;
        } catch (...) {
          if (job.shares != nullptr) job.shares[p.worker].fetch_sub(1, std::memory_order_relaxed);  // relaxed: as above
          if (capacity != 0) w.release_room(piece.count);
          failed.emplace(errc::queue_full, std::current_exception());
        }
      }
      // Answered here; its arrival is left to the caller, once it has left the gate and this
      // thread's scratch buffers: the last arrival may run a completion that sends again,
      // shuts the pool down or destroys it.
      piece.for_each([&](std::uint32_t i) { job.fail(job, i, failed->first, failed->second); });
      ++unsent;
    }
  }
  if (capacity == 0) {
    // Wake the workers that got chunks, the one pinned to the caller's own CPU last: waking it
    // may hand it the CPU at once (it slept, so the scheduler favours it), and the caller must
    // not be the one left waiting for that CPU with wake-ups still to send.
    const int cpu = current_cpu();
    const placed_chunk* near = nullptr;
    for (const placed_chunk& p : chunks) {
      if (near == nullptr && workers_[p.worker]->pinned_to(cpu)) near = &p;
      else workers_[p.worker]->wake();
    }
    if (near != nullptr) workers_[near->worker]->wake();
  }
  return static_cast<std::uint32_t>(pieces);
}

// ---- Diagnostics -------------------------------------------------------------------------

void pool_core::report_pinning_failure(std::size_t worker, const std::string& why) const noexcept {
  // Once per pool: every worker would say the same thing.
  if (pinning_reported_.exchange(true, std::memory_order_relaxed)) return;  // only a once-flag
  report({diagnostic::kind::pinning_failed, worker, "pinning failed: " + why, std::nullopt});
}

void pool_core::report(const diagnostic& d) const noexcept {
  try {
    if (options_.on_diagnostic) {
      options_.on_diagnostic(d);
      return;
    }
    if (d.what == diagnostic::kind::placement_note) return;  // shown by introspection instead
    if (d.what == diagnostic::kind::trace_limited) {
      // Once per process on stderr: with MTP_TRACE, every worker of every later pool says it.
      static std::atomic<bool> said{false};
      if (said.exchange(true, std::memory_order_relaxed)) return;  // relaxed: a once-flag
    }
    std::fprintf(stderr, "mtp: worker %zu: %s\n", d.worker, d.text.c_str());
  } catch (...) {
    // A diagnostic hook that throws has nowhere to report to; the pool carries on.
  }
}

}  // namespace mtp::impl
