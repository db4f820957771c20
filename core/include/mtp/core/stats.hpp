// SPDX-License-Identifier: MIT
// Introspection: a snapshot of each worker, taken without stopping the pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <mtp/affinity/placement.hpp>

namespace mtp {

/// One worker, as seen at the moment of the call (each field is read separately).
struct worker_stats {
  std::size_t index = 0;
  std::size_t items = 0;                    ///< Items living on this worker.
  std::uint64_t messages_processed = 0;     ///< Requests, creates, removes and posts run so far.
  std::size_t queue_depth = 0;              ///< Envelopes waiting (a batch counts once per worker).
  worker_placement placement;               ///< Where it was asked to run.
  bool pinned = false;                      ///< Whether pinning it there succeeded.
  std::size_t senders_waiting = 0;          ///< Senders blocked until its bounded queue has room.
  std::size_t timers_pending = 0;           ///< Timers waiting to fire (cancelled ones until swept).
  std::uint64_t timers_dropped = 0;         ///< Timers the shutdown dropped before they fired.
};

/// All workers of a pool.
struct pool_stats {
  std::vector<worker_stats> workers;

  [[nodiscard]] std::size_t total_items() const noexcept {
    std::size_t n = 0;
    for (const auto& w : workers) n += w.items;
    return n;
  }
  [[nodiscard]] std::uint64_t total_messages() const noexcept {
    std::uint64_t n = 0;
    for (const auto& w : workers) n += w.messages_processed;
    return n;
  }
};

}  // namespace mtp
