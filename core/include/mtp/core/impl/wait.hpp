// SPDX-License-Identifier: MIT
// Waiting: spin briefly with a pause instruction, yield now and then, then sleep on a futex.
//
// Why this shape: on the machines this pool targets a futex wake-up costs about 18 us while a
// cross-core cache-line handoff costs about 0.4 us, so a waiter that expects an answer soon
// spins first. A spinning thread shares its core with a worker whenever there are more
// threads than cores, so every spin loop yields every k_yield_every polls.
#pragma once

#include <atomic>
#include <cstdint>

#include <mtp/core/impl/std_parts.hpp>

namespace mtp::impl {

/// A pause instruction: tells the core this is a spin loop (saves power, frees the sibling
/// hyper-thread, avoids a memory-order mis-speculation on exit).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();  // _mm_pause() without <immintrin.h>, which costs every includer
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// Polls between two sched_yield calls while spinning.
inline constexpr unsigned k_yield_every = 64;
/// The same for a waiter that knows the thread it waits for needs its CPU: yield every poll.
inline constexpr unsigned k_yield_always = 1;

void yield_thread() noexcept;

/// Sleeps while `word` holds `expected` (a spurious return is possible; callers loop).
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept;
/// As futex_wait, but returns false once `deadline` has passed.
bool futex_wait_until(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                      std::chrono::steady_clock::time_point deadline) noexcept;
/// Wakes one thread sleeping on `word`. Safe to call on a word whose owner may already have
/// returned: a futex wake on unrelated memory is only a spurious wake-up for its sleepers.
void futex_wake_one(std::atomic<std::uint32_t>& word) noexcept;
void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept;

/// The steady-clock instant `timeout` from now, saturated: any duration type (int, long or
/// floating-point counts, any period) works, a timeout too large for the clock means "never"
/// (time_point::max()), and zero or negative ones mean "already passed".
template <class Rep, class Period>
[[nodiscard]] std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) noexcept {
  using clock = std::chrono::steady_clock;
  const clock::time_point now = clock::now();
  // Compare in floating-point nanoseconds: no conversion of the caller's count can overflow
  // or wrap, whatever its representation (a NaN compares false and means "never").
  const std::chrono::duration<long double, std::nano> wanted = timeout;
  const std::chrono::duration<long double, std::nano> room = clock::time_point::max() - now;
  if (!(wanted < room)) return clock::time_point::max();
  if (wanted <= wanted.zero()) return now;
  return now + std::chrono::duration_cast<clock::duration>(wanted);
}

/// A sched_yield that took longer than this let another thread run: the CPU is contended.
inline constexpr std::chrono::nanoseconds k_contended_yield = std::chrono::microseconds(3);

/// Spins until `ready()` holds or `budget` has passed; returns whether it holds.
///
/// Spinning pays only while the CPU has nothing better to do. Every k_yield_every polls the
/// spinner yields; if the yield took long, another thread needed this CPU (with one worker
/// per core, typically a caller or a worker sharing it), so the spinner stops and the caller
/// of spin_until goes to sleep instead of taking turns with that thread.
template <class Ready>
bool spin_until(Ready&& ready, std::chrono::nanoseconds budget, unsigned yield_every = k_yield_every) noexcept {
  if (ready()) return true;
  if (budget.count() <= 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (unsigned polls = 1;; ++polls) {
    if (ready()) return true;
    cpu_relax();
    if (polls % yield_every == 0) {
      // Read the clock only every k_yield_every polls: it is a vDSO call, not free.
      const auto before = std::chrono::steady_clock::now();
      if (before >= deadline) return ready();
      yield_thread();
      if (std::chrono::steady_clock::now() - before > k_contended_yield) return ready();
    }
  }
}

/// Completion of a batch: the count of outstanding chunks, and a flag saying the waiter sleeps.
///
/// Contract: any number of workers call arrive(); exactly one thread waits. The word holds the
/// outstanding count in its low 31 bits and k_sleeping in the top bit, so a worker learns from
/// its single fetch_sub whether it must issue a wake-up system call: a spinning caller costs
/// the workers no system call at all.
/// Memory ordering: everything a worker wrote before arrive() (the responses) is visible to the
/// waiter once wait() returns (release fetch_sub, acquire load in the waiter).
class completion {
 public:
  static constexpr std::uint32_t k_sleeping = 1u << 31;

  explicit completion(std::uint32_t outstanding = 0) noexcept : word_(outstanding) {}
  completion(const completion&) = delete;
  completion& operator=(const completion&) = delete;

  /// Sets the number of arrive() calls to expect; only before any worker can see it.
  void reset(std::uint32_t outstanding) noexcept {
    word_.store(outstanding, std::memory_order_relaxed);  // published by the queue's release
  }

  /// One chunk is answered; returns whether it was the last. The last arrival wakes a
  /// sleeping waiter.
  bool arrive() noexcept {
    // acq_rel: release publishes this worker's responses; acquire orders it after the other
    // workers' releases so the waiter, synchronising with the final value, sees them all.
    const std::uint32_t before = word_.fetch_sub(1, std::memory_order_acq_rel);
    if (before == (k_sleeping | 1u)) futex_wake_one(word_);
    return (before & ~k_sleeping) == 1;
  }

  [[nodiscard]] bool done() const noexcept {
    // acquire: pairs with the release in the last arrive(), making the responses visible.
    return (word_.load(std::memory_order_acquire) & ~k_sleeping) == 0;
  }

  /// Waits until every chunk arrived: spins for `spin` (yielding every `yield_every` polls),
  /// then sleeps.
  void wait(std::chrono::nanoseconds spin, unsigned yield_every = k_yield_every) noexcept {
    if (spin_until([this] { return done(); }, spin, yield_every)) return;
    while (!done()) {
      // seq_cst is not needed: the fetch_or is an RMW on the same word the workers decrement,
      // so either it sees the last arrival or that arrival sees k_sleeping.
      const std::uint32_t now = word_.fetch_or(k_sleeping, std::memory_order_acquire) | k_sleeping;
      if ((now & ~k_sleeping) == 0) break;
      futex_wait(word_, now);
    }
  }

  /// As wait(), but gives up at `deadline`; returns done().
  bool wait_until(std::chrono::nanoseconds spin, std::chrono::steady_clock::time_point deadline) noexcept {
    const auto left =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - std::chrono::steady_clock::now());
    const auto until = left < spin ? left : spin;  // std::min(spin, left) without <algorithm>
    if (spin_until([this] { return done(); }, until)) return true;
    while (!done()) {
      const std::uint32_t now = word_.fetch_or(k_sleeping, std::memory_order_acquire) | k_sleeping;
      if ((now & ~k_sleeping) == 0) break;
      if (!futex_wait_until(word_, now, deadline)) return done();
    }
    return true;
  }

 private:
  std::atomic<std::uint32_t> word_;
};

}  // namespace mtp::impl
