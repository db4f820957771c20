// SPDX-License-Identifier: MIT
// Collects what completion callbacks deliver: values put from any thread (a worker, or the
// sending thread when a request completes at once), kept in arrival order, and a bounded wait
// for as many as a test expects.
#pragma once

#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

#include "pool_test_util.hpp"

namespace mtp_test {

/// Values from callbacks, in the order they arrived, from whichever thread ran them. Declare it
/// so that it outlives every callback that may still put into it.
template <class T>
class collector {
 public:
  /// Adds a value, noting whether the calling thread is one of a pool's workers.
  void put(T value) {
    const bool on_worker = mtp::this_worker::is_worker();
    // Notify under the lock: the waiter may destroy the collector as soon as it has enough.
    std::lock_guard lock(m_);
    values_.push_back(std::move(value));
    on_workers_ += on_worker ? 1 : 0;
    cv_.notify_all();
  }
  /// Waits (bounded) until at least `n` values arrived, recording a failure if they did not;
  /// returns every value so far.
  std::vector<T> wait_for(std::size_t n, std::chrono::seconds limit = k_bound) {
    std::unique_lock lock(m_);
    EXPECT_TRUE(cv_.wait_for(lock, limit, [&] { return values_.size() >= n; })) << "callbacks missing";
    return values_;
  }
  /// How many of the values were put on a worker thread.
  std::size_t on_workers() {
    std::lock_guard lock(m_);
    return on_workers_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<T> values_;
  std::size_t on_workers_ = 0;
};

}  // namespace mtp_test
