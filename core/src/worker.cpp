// SPDX-License-Identifier: MIT
#include <mtp/core/impl/worker.hpp>

#include <mtp/core/impl/wait.hpp>

#include <mtp/core/impl/type_name.hpp>

#include "trace_ring.hpp"
#include "threads.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

namespace mtp::impl {

constinit thread_local worker_base* tl_current_worker = nullptr;

namespace {
// Timers fired per pass between rounds of messages, so that many timers due at once do not
// hold up the queue; the rest fire after the next round.
constexpr std::size_t k_timers_per_round = 256;
// Below this many timers the heap is never swept for cancelled ones.
constexpr std::size_t k_timers_sweep_from = 1024;
// Envelopes run per round before the worker re-checks its stop flag and idle state.
constexpr std::size_t k_bulk = 64;
// An idle worker yields more often than a waiting caller: a caller sharing its CPU may be
// waiting for that CPU to run, and an idle worker has nothing to lose by letting it.
constexpr unsigned k_idle_yield_every = 16;
}  // namespace

worker_base::worker_base(pool_core& pool, std::size_t index)
    : pool_(pool), index_(index), bounded_(pool.options().queue_capacity != 0) {
  if (pool.tracing()) trace_ = make_trace_ring();
}

worker_base::~worker_base() {
  stop_and_join();
  // The thread is gone: the queue frees its nodes.
}

void worker_base::stop_and_join() noexcept {
  // The pool joins its workers before destroying them; a still-joinable thread here means the
  // pool failed half-way through start-up, and std::thread would terminate: stop it instead.
  if (thread_ == nullptr || !thread_->thread.joinable()) return;
  try {
    push_stop();
  } catch (...) {
    // No memory even for the stop marker: the thread cannot be told to stop, and joining would
    // hang; std::thread's destructor then terminates, which is the honest outcome.
    return;
  }
  thread_->thread.join();
}

void worker_base::start(const worker_placement& where, bool bind_memory) {
  where_ = where;
  sole_cpu_ = where.cpus.size() == 1 ? static_cast<int>(where.cpus.front()) : -1;
  auto t = std::make_unique<worker_thread>();
  t->thread = std::thread([this, where, bind_memory] { main(where, bind_memory); });
  thread_ = std::move(t);
}

int current_cpu() noexcept { return sched_getcpu(); }

void throw_not_this_pool(const std::type_info& wanted, const worker_base* worker) {
  const std::string name = type_name(wanted);
  if (worker == nullptr) {
    throw std::logic_error("mtp::this_pool() for a " + name + ": the calling thread is not a worker of any pool "
                           "(call it from a handler, an item's constructor or destructor, or a hook)");
  }
  throw std::logic_error("mtp::this_pool() for a " + name + ": the calling thread is a worker of another kind of pool (" +
                         type_name(typeid(*worker)) + "); name the item type and the hooks of the pool that runs it");
}

void throw_pool_object_gone() {
  throw pool_error(errc::pool_stopped, 0,
                   "mtp::this_pool(): the pool object is gone (one of its items destroyed it); the pool is "
                   "stopping (pool_stopped)");
}

void worker_base::push(const envelope& e) {
  enqueue(e);
  wake();
}

void worker_base::enqueue(const envelope& e) { queue_.push(e); }

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
  if (thread_ != nullptr && thread_->thread.joinable()) thread_->thread.join();
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
  drop_timers();
  on_stop();
  mark_idle();
  exited_.store(true, std::memory_order_relaxed);  // relaxed: a sample for the stall detector
  tl_current_worker = nullptr;
  // The pool was dropped by one of this worker's own items: we free it, and with it ourselves.
  // relaxed: see pool_core::destroy (only the finisher finds itself here, and it wrote it).
  if (pool_.finisher_.load(std::memory_order_relaxed) == this) pool_.finish_from(*this);
}

std::size_t worker_base::queue_depth() const noexcept { return queue_.depth(); }

bool worker_base::has_work() const noexcept {
  // A cut list reads as empty, and that sender's wake() after linking finds us.
  return !queue_.empty();
}

std::size_t worker_base::drain(std::size_t limit) noexcept {
  std::size_t ran = 0;
  while (ran < limit) {
    envelope* const e = queue_.pop();  // counted as taken before it runs: it no longer waits
    if (e == nullptr) break;
    e->run(*this, *e);
    ++ran;
  }
  return ran;
}

void worker_base::run_loop() noexcept {
  for (;;) {
    start_work();  // before anything is popped (quiescent_sample)
    if (drain(k_bulk) != 0) {
      queue_.hand_back_spare();  // senders that took the last batch of nodes get a kept one
      // Housekeeping is due under load too (one clock read per round, only while it is on).
      if (housekeeping_due_ != time_point::max()) [[unlikely]] housekeeping_if_due();
      if (close_when_senders_left_) [[unlikely]] close_if_senders_left();
      continue;
    }
    mark_idle();
    housekeeping_if_due();
    rest();  // the queue was empty, and the timers due have run
    if (close_when_senders_left_) [[unlikely]] close_if_senders_left();
    if (stop_seen_) {
      // Every sender left the gate before the stop marker was pushed, so what is still queued
      // was linked before it: no work now means nothing more can come.
      if (!has_work()) return;
      continue;
    }
    const bool work = spin_until([this] { return has_work(); }, pool_.options().worker_spin, k_idle_yield_every);
    if (!work) {
      // While senders are still inside a closing pool, look again soon: they leave without
      // waking us.
      sleep_until_work(close_when_senders_left_
                           ? std::min(housekeeping_due_, std::chrono::steady_clock::now() + std::chrono::milliseconds(1))
                           : housekeeping_due_);
    }
  }
}

void worker_base::close_if_senders_left() noexcept {
  if (pool_.senders_inside()) return;
  close_when_senders_left_ = false;
  pool_.push_stops();  // no memory for a stop marker's node: terminate (noexcept), as before
}

void worker_base::housekeeping_if_due() noexcept {
  if (housekeeping_due_ == time_point::max()) return;
  const time_point now = std::chrono::steady_clock::now();
  if (now < housekeeping_due_) return;
  if (now >= passivation_due_) passivation_due_ = housekeeping(now);
  if (!timers_.empty()) fire_due_timers(now);
  update_due();
  // Housekeeping runs messages (an item's destruction, a timer's message): no message runs
  // now, so that the stall detector does not take the idle worker for a stuck one.
  mark_idle();
}

void worker_base::update_due() noexcept {
  housekeeping_due_ = passivation_due_;
  if (!timers_.empty()) {
    housekeeping_due_ = std::min(housekeeping_due_, time_point(std::chrono::nanoseconds(timers_.top()->deadline)));
  }
}

// ---- Timers ------------------------------------------------------------------------------

void worker_base::arm_timer(timer_node& n) {
  if (timers_.size() >= timers_compact_at_ && timers_.size() >= k_timers_sweep_from) {
    // Cancelled timers stay in the heap until their deadline; once it has doubled since the
    // last sweep, sweep them out (amortised O(1) per arm), so that a pattern of schedule and
    // cancel far ahead does not grow it without bound.
    timers_.remove_if([](timer_node* t) {
      if (t->owned_by_item || t->state.load(std::memory_order_acquire) != timer_node::k_cancelled) return false;
      t->heap_index = timer_node::k_not_in_heap;
      t->release();
      return true;
    });
    timers_compact_at_ = 2 * timers_.size();
  }
  n.seq = timer_seq_++;
  timers_.push(&n);
  timers_pending_.store(timers_.size(), std::memory_order_relaxed);  // a statistic
  const time_point due{std::chrono::nanoseconds(n.deadline)};
  if (due < housekeeping_due_) housekeeping_due_ = due;
}

void worker_base::timer_moved_earlier(timer_node& n) noexcept {
  timers_.moved_earlier(&n);
  const time_point due{std::chrono::nanoseconds(n.deadline)};
  if (due < housekeeping_due_) housekeeping_due_ = due;
}

void worker_base::disarm_timer(timer_node& n) noexcept {
  if (n.heap_index == timer_node::k_not_in_heap) return;
  timers_.erase(&n);
  timers_pending_.store(timers_.size(), std::memory_order_relaxed);  // a statistic
  // housekeeping_due_ may now be early: the loop then finds nothing due and moves it on.
}

void worker_base::fire_due_timers(time_point now) noexcept {
  const std::int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  std::size_t fired = 0;
  while (fired < k_timers_per_round && !timers_.empty()) {
    timer_node* const n = timers_.top();
    if (n->deadline > now_ns) break;
    timers_.pop();
    if (n->owned_by_item) {
      auto* const t = static_cast<timeout_node*>(n);
      if (t->wanted > n->deadline) {
        // Re-armed later since it was placed: it moves now (the pop left room: no allocation).
        n->deadline = t->wanted;
        n->seq = timer_seq_++;
        timers_.push(n);
        continue;
      }
    }
    ++fired;
    n->op(this, *n, timer_node::action::fire);  // may arm timers, or free an item's timeout
  }
  timers_pending_.store(timers_.size(), std::memory_order_relaxed);  // a statistic
}

void worker_base::drop_timers() noexcept {
  std::uint64_t dropped = 0;
  for (timer_node* n : timers_.nodes()) {
    n->heap_index = timer_node::k_not_in_heap;
    if (n->owned_by_item) continue;  // its mtp::timeout frees it with its item
    std::uint8_t armed = timer_node::k_armed;
    // acq_rel: pairs with cancel() on a handle's thread; exactly one of the two wins.
    if (n->state.compare_exchange_strong(armed, timer_node::k_dropped, std::memory_order_acq_rel)) ++dropped;
    n->release();
  }
  timers_.clear();
  timers_pending_.store(0, std::memory_order_relaxed);  // a statistic
  timers_dropped_.store(timers_dropped_.load(std::memory_order_relaxed) + dropped, std::memory_order_relaxed);
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
