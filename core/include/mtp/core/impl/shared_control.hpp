// SPDX-License-Identifier: MIT
// Internals: shared ownership of a batch or request whose caller may stop waiting, and who
// completes an operation with a callback. Do not include directly; use <mtp/mtp.hpp>.
#pragma once

#include <atomic>
#include <cstdint>

#include <mtp/core/result.hpp>

namespace mtp::impl {

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

}  // namespace mtp::impl
