// SPDX-License-Identifier: MIT
#include <mtp/core/impl/worker.hpp>

#include <mtp/core/impl/wait.hpp>

#include "trace_ring.hpp"

#include <pthread.h>
#include <sched.h>

#include <new>
#include <string>

namespace mtp::impl {

constinit thread_local worker_base* tl_current_worker = nullptr;

/// An envelope with its queue link: exactly one cache line, so that a sender writes one line
/// per message and no two nodes share one.
struct alignas(k_cache_line) queue_node {
  std::atomic<queue_node*> next{nullptr};
  envelope e;

  // Counted, so that tests can check that memory for exited threads and drained bursts is
  // returned. Only the slow path allocates: nodes are recycled.
  static inline std::atomic<std::int64_t> alive{0};
  static void* operator new(std::size_t size) {
    void* p = ::operator new(size, std::align_val_t{k_cache_line});
    alive.fetch_add(1, std::memory_order_relaxed);  // a statistic
    return p;
  }
  static void operator delete(void* p) noexcept {
    alive.fetch_sub(1, std::memory_order_relaxed);  // a statistic
    ::operator delete(p, std::align_val_t{k_cache_line});
  }
};
static_assert(sizeof(queue_node) == k_cache_line, "a queue node fills exactly one cache line");

namespace {
// Envelopes run per round before the worker re-checks its stop flag and idle state.
constexpr std::size_t k_bulk = 64;
// An idle worker yields more often than a waiting caller: a caller sharing its CPU may be
// waiting for that CPU to run, and an idle worker has nothing to lose by letting it.
constexpr unsigned k_idle_yield_every = 16;
// Used nodes a worker hands back per batch, and the most it keeps besides (beyond that it
// frees them: a burst of a million posts must not pin a million nodes for the pool's life).
constexpr std::size_t k_free_batch = 64;
constexpr std::size_t k_stash_max = 1024;

void free_list(queue_node* n) noexcept {
  while (n != nullptr) {
    queue_node* next = n->next.load(std::memory_order_relaxed);  // a private list now
    delete n;
    n = next;
  }
}

/// Nodes this thread took from a worker's free list (one batch, at most k_free_batch), for its
/// next sends to any pool: nodes are plain memory. Freed when the thread exits, so nothing is
/// kept for threads that are gone.
struct node_cache {
  queue_node* head = nullptr;
  node_cache() = default;
  node_cache(const node_cache&) = delete;
  node_cache& operator=(const node_cache&) = delete;
  ~node_cache() { free_list(head); }
};
thread_local node_cache tl_nodes;
}  // namespace

worker_base::worker_base(pool_core& pool, std::size_t index)
    : pool_(pool), index_(index), bounded_(pool.options().queue_capacity != 0), tail_(new queue_node) {
  head_ = tail_.load(std::memory_order_relaxed);  // the dummy node: not yet shared
  if (pool.tracing()) trace_ = std::make_unique<trace_ring>(pool.options().trace_events, pool.started_at());
}

worker_base::~worker_base() {
  stop_and_join();
  // The thread is gone: the queue holds only the dummy (everything else ran).
  free_list(head_);
  free_list(stash_);
  free_list(free_.load(std::memory_order_acquire));  // acquire: pairs with the worker's store
}

void worker_base::stop_and_join() noexcept {
  // The pool joins its workers before destroying them; a still-joinable thread here means the
  // pool failed half-way through start-up, and std::thread would terminate: stop it instead.
  if (!thread_.joinable()) return;
  try {
    push_stop();
  } catch (...) {
    // No memory even for the stop marker: the thread cannot be told to stop, and joining would
    // hang; std::thread's destructor then terminates, which is the honest outcome.
    return;
  }
  thread_.join();
}

void worker_base::start(const worker_placement& where, bool bind_memory) {
  where_ = where;
  sole_cpu_ = where.cpus.size() == 1 ? static_cast<int>(where.cpus.front()) : -1;
  thread_ = std::thread([this, where, bind_memory] { main(where, bind_memory); });
}

int current_cpu() noexcept { return sched_getcpu(); }

std::int64_t queue_nodes_alive() noexcept {
  return queue_node::alive.load(std::memory_order_relaxed);  // a statistic
}

void worker_base::push(const envelope& e) {
  enqueue(e);
  wake();
}

queue_node* worker_base::take_free_nodes() noexcept {
  if (free_.load(std::memory_order_relaxed) == nullptr) return nullptr;  // relaxed: a hint only
  // acquire: pairs with the worker's release store, so the links inside the batch are visible.
  return free_.exchange(nullptr, std::memory_order_acquire);
}

void worker_base::enqueue(const envelope& e) {
  node_cache& cache = tl_nodes;
  if (cache.head == nullptr) cache.head = take_free_nodes();
  queue_node* n = cache.head;
  if (n != nullptr) {
    cache.head = n->next.load(std::memory_order_relaxed);  // a private list of this thread
    n->next.store(nullptr, std::memory_order_relaxed);  // published by the exchange below
  } else {
    n = new queue_node;  // throws std::bad_alloc: the caller answers the request with queue_full
  }
  n->e = e;
  // relaxed: a statistic on the line the exchange below takes anyway.
  enqueued_.fetch_add(1, std::memory_order_relaxed);
  // acq_rel: release publishes the node's contents to whoever links after us; acquire makes
  // the previous tail's node ours to link (its `next` write below must follow its creation).
  queue_node* prev = tail_.exchange(n, std::memory_order_acq_rel);
  // release: the worker's acquire load of `next` sees the envelope. Between the exchange and
  // this store the list is cut: the worker sees the queue as empty until it is linked.
  prev->next.store(n, std::memory_order_release);
}

void worker_base::wake() noexcept {
  // seq_cst fence: StoreLoad between the caller's enqueue (before this call) and the load of
  // sleeping_ below; pairs with the fence in sleep_until_work() so that either we see the
  // worker asleep and wake it, or it sees the envelope before it sleeps.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // relaxed: ordered by the fence above; the exchange makes exactly one producer do the wake.
  if (sleeping_.load(std::memory_order_relaxed) != 0 && sleeping_.exchange(0, std::memory_order_relaxed) == 1) {
    futex_wake_one(sleeping_);
  }
}

void worker_base::recycle(queue_node* n) noexcept {
  if (stash_count_ >= k_stash_max) {
    delete n;
    return;
  }
  n->next.store(stash_, std::memory_order_relaxed);  // the worker's private stash
  stash_ = n;
  ++stash_count_;
  // Hand a batch back when the shared list is empty. Only the worker stores a non-null list,
  // and senders only take it whole, so a null seen here stays null until our store.
  if (stash_count_ >= k_free_batch && free_.load(std::memory_order_relaxed) == nullptr) {  // relaxed: see above
    free_.store(stash_, std::memory_order_release);  // release: senders see the links
    stash_ = nullptr;
    stash_count_ = 0;
  }
}

void worker_base::run_stop(worker_base& w, envelope&) noexcept { w.stop_seen_ = true; }

void worker_base::push_stop() { push(envelope::make(&run_stop, nullptr)); }

void worker_base::join() {
  if (thread_.joinable()) thread_.join();
}

void worker_base::main(const worker_placement& where, bool bind_memory) noexcept {
  tl_current_worker = this;
  const std::string name = pool_.options().name.substr(0, 10) + "-" + std::to_string(index_);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());  // best effort; cosmetic
  if (!where.cpus.empty()) {
    const bind_result bound = bind_current_thread(where, bind_memory);
    // release: published before the first message runs; pinned() readers acquire.
    pinned_.store(bound.pinned, std::memory_order_release);
    if (!bound.error.empty()) pool_.report_pinning_failure(index_, bound.error);  // CPU or memory binding
  }
  on_start();
  run_loop();
  on_stop();
  mark_idle();
  tl_current_worker = nullptr;
  // The pool was dropped by one of this worker's own items: we free it, and with it ourselves.
  if (pool_.finisher_ == this) pool_.finish_from(*this);
}

std::size_t worker_base::queue_depth() const noexcept {
  // relaxed, both: two statistics read one after the other; clamp the race to zero.
  const std::uint64_t in = enqueued_.load(std::memory_order_relaxed);
  const std::uint64_t out = dequeued_.load(std::memory_order_relaxed);
  return in > out ? static_cast<std::size_t>(in - out) : 0;
}

bool worker_base::has_work() const noexcept {
  // acquire: pairs with the sender's release link; a cut list reads as empty, and that
  // sender's wake() after linking finds us.
  return head_->next.load(std::memory_order_acquire) != nullptr;
}

std::size_t worker_base::drain(std::size_t limit) noexcept {
  std::size_t ran = 0;
  while (ran < limit) {
    queue_node* const next = head_->next.load(std::memory_order_acquire);  // acquire: see has_work()
    if (next == nullptr) break;
    queue_node* const done = head_;
    head_ = next;  // `next` is the new dummy; its envelope runs in place
    recycle(done);
    // relaxed: a statistic; single writer. Counted before it runs: a running envelope is
    // no longer waiting.
    dequeued_.store(dequeued_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    next->e.run(*this, next->e);
    ++ran;
  }
  return ran;
}

void worker_base::run_loop() noexcept {
  for (;;) {
    if (drain(k_bulk) != 0) continue;
    mark_idle();
    const std::optional<time_point> again = on_idle();
    if (stop_seen_) {
      // Every sender left the gate before the stop marker was pushed, so what is still queued
      // was linked before it: no work now means nothing more can come.
      if (!has_work()) return;
      continue;
    }
    const bool work = spin_until([this] { return has_work(); }, pool_.options().worker_spin, k_idle_yield_every);
    if (!work) sleep_until_work(again.value_or(time_point::max()));
  }
}

void worker_base::sleep_until_work(time_point until) noexcept {
  trace_begin(0, "(asleep)");
  struct end_on_exit {
    worker_base& w;
    ~end_on_exit() { w.trace_end(); }
  } traced{*this};
  sleeping_.store(1, std::memory_order_relaxed);  // ordered by the fence below
  // seq_cst fence: StoreLoad between announcing sleep and re-checking the queue; pairs with the
  // fence in wake().
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (has_work()) {
    sleeping_.store(0, std::memory_order_relaxed);  // no one waits on it: we never slept
    return;
  }
  // acquire: pairs with nothing in particular (the queue carries its own ordering); the loop
  // only filters spurious wake-ups.
  while (sleeping_.load(std::memory_order_acquire) == 1) {
    if (until == time_point::max()) {
      futex_wait(sleeping_, 1);
    } else if (!futex_wait_until(sleeping_, 1, until)) {
      // Time for housekeeping: stop sleeping. If a sender takes the flag meanwhile, its wake
      // finds nobody, which is harmless.
      sleeping_.store(0, std::memory_order_relaxed);  // relaxed: a sender's exchange decides who wakes
      return;
    }
  }
}

bool worker_base::try_reserve_room(std::uint32_t n, std::size_t capacity) noexcept {
  // seq_cst: the CAS is one side of a Dekker pair with release_room() (see reserve_room).
  std::uint64_t now = queued_.load(std::memory_order_seq_cst);
  for (;;) {
    if (now != 0 && now + n > capacity) return false;
    if (queued_.compare_exchange_weak(now, now + n, std::memory_order_seq_cst)) return true;
  }
}

bool worker_base::reserve_room(std::uint32_t n, std::size_t capacity, time_point deadline) noexcept {
  if (try_reserve_room(n, capacity)) return true;
  if (std::chrono::steady_clock::now() >= deadline) return false;
  const auto spin = pool_.options().caller_spin;
  if (spin_until([&] { return try_reserve_room(n, capacity); }, spin)) return true;
  for (;;) {
    // Announce ourselves, then re-check: release_room() decrements queued_ and then reads
    // room_waiters_ (both seq_cst), so either it sees us and bumps the epoch, or we see the room.
    room_waiters_.fetch_add(1, std::memory_order_seq_cst);
    const std::uint32_t epoch = room_epoch_.load(std::memory_order_seq_cst);
    const bool got = try_reserve_room(n, capacity);
    if (!got) {
      if (deadline == time_point::max()) futex_wait(room_epoch_, epoch);
      else (void)futex_wait_until(room_epoch_, epoch, deadline);
    }
    room_waiters_.fetch_sub(1, std::memory_order_relaxed);  // a count only; ordering comes from queued_
    if (got || try_reserve_room(n, capacity)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

void worker_base::release_room(std::uint32_t n) noexcept {
  queued_.fetch_sub(n, std::memory_order_seq_cst);  // seq_cst: Dekker pair with reserve_room()
  if (room_waiters_.load(std::memory_order_seq_cst) != 0) {
    room_epoch_.fetch_add(1, std::memory_order_relaxed);  // the futex word; wakes carry no data
    futex_wake_all(room_epoch_);
  }
}

}  // namespace mtp::impl
