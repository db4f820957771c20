// SPDX-License-Identifier: MIT
#include <mtp/core/impl/worker.hpp>

#include <mtp/core/impl/wait.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstdio>
#include <exception>
#include <limits>
#include <optional>
#include <stdexcept>
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
    static stall_monitor* const monitor = new stall_monitor;
    return *monitor;
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
        if (!worker.in_message() || started != w.started || w.since == time_point{}) {
          w = watch{started, now, false, false};
          continue;
        }
        const std::chrono::nanoseconds running = now - w.since;
        const bool stopping = pool->stopping();
        if (running < threshold || (w.reported && (!stopping || w.reported_in_shutdown))) continue;
        w.reported = true;
        w.reported_in_shutdown = stopping;
        const id_t id = worker.current_id();
        std::string text = "a message for item " + std::to_string(id) + " has been running for at least " +
                           seconds_text(running) + " (stall_threshold " + seconds_text(threshold) + ")";
        if (stopping) text += "; shutdown is waiting for it to return";
        reporting_ = pool;
        lock.unlock();
        pool->report({diagnostic::kind::stalled, k, std::move(text), std::nullopt, id, running});
        lock.lock();
        reporting_ = nullptr;
        reported_.notify_all();
        // The hook may have removed pools (entries_ changed): restart the scan next tick.
        if (p >= entries_.size() || entries_[p].pool != pool) return;
      }
    }
  }

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

pool_core::pool_core(pool_options options)
    : options_(std::move(options)), trace_file_(trace_file_for(options_)), placement_(choose_placement(options_)) {
  const std::size_t n = placement_.workers.size();
  mask_ = (n > 1 && (n & (n - 1)) == 0) ? n - 1 : 0;
  has_router_ = static_cast<bool>(options_.router);
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
  // seq_cst, both: a Dekker pair with close_gate(), which stores stopping_ then reads
  // active_senders_. Either we see stopping_ or close_gate() sees us and waits for leave().
  active_senders_.fetch_add(1, std::memory_order_seq_cst);
  if (stopping_.load(std::memory_order_seq_cst)) {
    leave();
    return false;
  }
  return true;
}

void pool_core::leave() noexcept {
  // seq_cst: our enqueues happen-before close_gate()'s read of zero (hence before its stop
  // markers), and the Dekker pair below: either close_gate() sees our decrement or we see
  // stopping_ and wake it.
  if (active_senders_.fetch_sub(1, std::memory_order_seq_cst) == 1 && stopping_.load(std::memory_order_seq_cst)) {
    futex_wake_all(active_senders_);
  }
}

void pool_core::close_gate() noexcept {
  stopping_.store(true, std::memory_order_seq_cst);  // seq_cst: see enter()
  // Senders inside the gate only enqueue, or wait for room that the running workers free:
  // sleep until the last one leaves.
  for (;;) {
    const std::uint32_t inside = active_senders_.load(std::memory_order_seq_cst);
    if (inside == 0) return;
    futex_wait(active_senders_, inside);
  }
}

void pool_core::shutdown() {
  if (own_worker() != nullptr) {
    throw pool_error(errc::would_deadlock, 0,
                     "mtp: shutdown() called on a worker of the same pool would deadlock (would_deadlock)");
  }
  std::lock_guard lock(shutdown_mutex_);
  if (joined_) return;
  close_gate();
  for (auto& w : workers_) w->push_stop();
  for (auto& w : workers_) w->join();
  joined_ = true;
  if (tracing()) {
    try {
      std::vector<std::string> per_worker;
      for (auto& w : workers_) per_worker.push_back(w->trace_json_events());  // the threads are gone
      write_trace_file(trace_file_, per_worker);
    } catch (const std::exception& e) {
      report({diagnostic::kind::hook_failed, 0, std::string("the trace was not written: ") + e.what(), std::nullopt});
    }
  }
}

void pool_core::destroy(std::unique_ptr<pool_core> core) noexcept {
  if (core == nullptr) return;
  worker_base* const self = core->own_worker();
  if (self == nullptr) {
    core->shutdown();  // cannot throw: not on one of its workers (a stop marker's node: see below)
    return;
  }
  // An item is dropping the pool it lives in. Joining here would wait for ourselves, so the
  // pool stops without waiting and this worker frees it once it leaves its loop: it finishes
  // the current message, answers what is queued, destroys its items, joins the other workers.
  pool_core* const pool = core.release();
  pool->finisher_ = self;  // read by `self` after it ran its stop marker (the queue orders it)
  pool->close_gate();
  for (auto& w : pool->workers_) w->push_stop();  // no memory for a node: terminate (noexcept)
}

void pool_core::finish_from(worker_base& self) noexcept {
  for (auto& w : workers_) {
    if (w.get() != &self) w->join();
  }
  self.thread_.detach();  // we are that thread; it ends right after this call
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
                                  const send_policy& policy, std::vector<std::uint32_t>& order) {
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
        try {
          w.enqueue(envelope::make(run, piece));
          // A bounded queue drains only if its worker is awake: wake it before the next
          // reserve_room can wait. Unbounded: all wakes come after all enqueues, below.
          if (capacity != 0) w.wake();
          continue;
        } catch (...) {
          if (capacity != 0) w.release_room(piece.count);
          failed.emplace(errc::queue_full, std::current_exception());
        }
      }
      piece.for_each([&](std::uint32_t i) { job.fail(job, i, failed->first, failed->second); });
      job.arrive();
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
    std::fprintf(stderr, "mtp: worker %zu: %s\n", d.worker, d.text.c_str());
  } catch (...) {
    // A diagnostic hook that throws has nowhere to report to; the pool carries on.
  }
}

}  // namespace mtp::impl
