#include <mtp/core/impl/worker.hpp>

#include <mtp/core/impl/wait.hpp>

#include <pthread.h>
#include <sched.h>

#include <cstdio>
#include <new>
#include <string>

namespace mtp::impl {

constinit thread_local worker_base* tl_current_worker = nullptr;

namespace {
// Envelopes taken per dequeue: one moodycamel block, so a bulk dequeue touches one block.
constexpr std::size_t k_bulk = 32;
// An idle worker yields more often than a waiting caller: a caller sharing its CPU may be
// waiting for that CPU to run, and an idle worker has nothing to lose by letting it.
constexpr unsigned k_idle_yield_every = 16;
}  // namespace

worker_base::worker_base(pool_core& pool, std::size_t index)
    : pool_(pool),
      index_(index),
      lanes_(std::make_unique<std::atomic<lane*>[]>(pool.placement().workers.size())),
      lane_count_(pool.placement().workers.size()) {}

worker_base::~worker_base() {
  stop_and_join();
  for (std::size_t s = 0; s < lane_count_; ++s) {
    delete lanes_[s].load(std::memory_order_acquire);  // acquire: pairs with the sender's publication
  }
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

std::size_t worker_base::pool_options_capacity() const noexcept { return pool_.options().queue_capacity; }

void worker_base::push(const envelope& e) {
  enqueue(e);
  wake();
}

void worker_base::enqueue(const envelope& e) {
  worker_base* const sender = tl_current_worker;
  if (sender != nullptr && &sender->pool_ == &pool_) {
    // Only `sender` ever produces into this lane, so creating it here races with nobody.
    std::atomic<lane*>& slot = lanes_[sender->index_];
    lane* l = slot.load(std::memory_order_relaxed);  // relaxed: we are the only writer
    if (l == nullptr) {
      auto fresh = std::make_unique<lane>();
      l = fresh.get();
      slot.store(fresh.release(), std::memory_order_release);  // release: the consumer sees a built queue
    }
    if (!l->enqueue(e)) throw std::bad_alloc();  // the lane could not grow
  } else if (!queue_.enqueue(e)) {
    throw std::bad_alloc();  // the queue could not grow
  }
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
  tl_current_worker = nullptr;
}

std::size_t worker_base::queue_depth() const noexcept {
  std::size_t depth = queue_.size_approx();
  for (std::size_t s = 0; s < lane_count_; ++s) {
    if (const lane* l = lanes_[s].load(std::memory_order_acquire)) depth += l->size_approx();
  }
  return depth;
}

bool worker_base::has_work() const noexcept {
  if (queue_.size_approx() != 0) return true;
  for (std::size_t s = 0; s < lane_count_; ++s) {
    // acquire: pairs with the sender's release when it created the lane.
    if (lane* l = lanes_[s].load(std::memory_order_acquire); l != nullptr && l->peek() != nullptr) return true;
  }
  return false;
}

// Runs what the sibling lanes hold, at most k_bulk per lane per round so that no lane (and
// not the MPSC queue) starves the others.
std::size_t worker_base::run_lanes(envelope& slot) noexcept {
  std::size_t ran = 0;
  for (std::size_t s = 0; s < lane_count_; ++s) {
    lane* l = lanes_[s].load(std::memory_order_acquire);  // acquire: see a fully built lane
    if (l == nullptr) continue;
    for (std::size_t k = 0; k < k_bulk && l->try_dequeue(slot); ++k, ++ran) slot.run(*this, slot);
  }
  return ran;
}

void worker_base::run_loop() noexcept {
  envelope buffer[k_bulk];
  for (;;) {
    const std::size_t n = queue_.try_dequeue_bulk(buffer, k_bulk);
    for (std::size_t i = 0; i < n; ++i) buffer[i].run(*this, buffer[i]);
    if (n + run_lanes(buffer[0]) != 0) continue;
    if (stop_seen_) {
      // Every sender left the gate before the stop marker was pushed, so what is still queued
      // was fully enqueued before it: no work now means nothing more can come.
      if (!has_work()) return;
      continue;
    }
    const bool work = spin_until([this] { return has_work(); }, pool_.options().worker_spin, k_idle_yield_every);
    if (!work) sleep_until_work();
  }
}

void worker_base::sleep_until_work() noexcept {
  sleeping_.store(1, std::memory_order_relaxed);  // ordered by the fence below
  // seq_cst fence: StoreLoad between announcing sleep and re-checking the queue; pairs with the
  // fence in push().
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (has_work()) {
    sleeping_.store(0, std::memory_order_relaxed);  // no one waits on it: we never slept
    return;
  }
  // acquire: pairs with nothing in particular (the queue carries its own ordering); the loop
  // only filters spurious wake-ups.
  while (sleeping_.load(std::memory_order_acquire) == 1) futex_wait(sleeping_, 1);
}

}  // namespace mtp::impl

namespace mtp::impl {

bool worker_base::try_reserve_room(std::uint32_t n, std::size_t capacity) noexcept {
  // seq_cst: the CAS is one side of a Dekker pair with release_room() (see reserve_room).
  std::uint64_t now = queued_.load(std::memory_order_seq_cst);
  for (;;) {
    if (now != 0 && now + n > capacity) return false;
    if (queued_.compare_exchange_weak(now, now + n, std::memory_order_seq_cst)) return true;
  }
}

bool worker_base::reserve_room(std::uint32_t n, std::size_t capacity,
                               std::chrono::steady_clock::time_point deadline) noexcept {
  if (try_reserve_room(n, capacity)) return true;
  const auto spin = pool_.options().caller_spin;
  if (spin_until([&] { return try_reserve_room(n, capacity); }, spin)) return true;
  for (;;) {
    // Announce ourselves, then re-check: release_room() decrements queued_ and then reads
    // room_waiters_ (both seq_cst), so either it sees us and bumps the epoch, or we see the room.
    room_waiters_.fetch_add(1, std::memory_order_seq_cst);
    const std::uint32_t epoch = room_epoch_.load(std::memory_order_seq_cst);
    const bool got = try_reserve_room(n, capacity);
    if (!got) {
      if (deadline == std::chrono::steady_clock::time_point::max()) futex_wait(room_epoch_, epoch);
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
