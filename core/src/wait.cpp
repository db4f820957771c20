// SPDX-License-Identifier: MIT
#include <mtp/core/impl/wait.hpp>

#include <cerrno>
#include <climits>
#include <ctime>

#include <sched.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace mtp::impl {

void yield_thread() noexcept { sched_yield(); }

#if defined(__linux__)
namespace {
// std::atomic<uint32_t> is a plain 32-bit word on Linux targets: the futex operates on it.
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

long futex(std::atomic<std::uint32_t>& word, int op, std::uint32_t value, const timespec* timeout) noexcept {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op | FUTEX_PRIVATE_FLAG, value, timeout,
                 nullptr, 0);
}
}  // namespace

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
  futex(word, FUTEX_WAIT, expected, nullptr);  // EAGAIN / EINTR: the caller re-checks and loops
}

bool futex_wait_until(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                      std::chrono::steady_clock::time_point deadline) noexcept {
  const auto left = deadline - std::chrono::steady_clock::now();
  if (left <= std::chrono::nanoseconds::zero()) return false;
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  const timespec relative{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  futex(word, FUTEX_WAIT, expected, &relative);
  return std::chrono::steady_clock::now() < deadline;
}

void futex_wake_one(std::atomic<std::uint32_t>& word) noexcept { futex(word, FUTEX_WAKE, 1, nullptr); }
void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept { futex(word, FUTEX_WAKE, INT_MAX, nullptr); }

#else  // portable fallback: C++20 atomic wait

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept { word.wait(expected); }
bool futex_wait_until(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                      std::chrono::steady_clock::time_point deadline) noexcept {
  while (word.load() == expected) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    yield_thread();
  }
  return true;
}
void futex_wake_one(std::atomic<std::uint32_t>& word) noexcept { word.notify_one(); }
void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept { word.notify_all(); }
#endif

}  // namespace mtp::impl
