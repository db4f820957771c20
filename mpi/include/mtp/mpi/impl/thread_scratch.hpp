// SPDX-License-Identifier: MIT
// Vectors that a calling thread keeps from one call of a sharded pool to the next.
//
// A batch split over ranks needs temporaries the size of the batch (the route of each request,
// this rank's share, its results). Allocated afresh on every call, the megabytes of a large
// batch go back to the system when freed together (glibc trims the top of the heap, or maps a
// large block on its own) and come back as fresh pages the next time: one page fault per
// 4 KiB, 400 to 1,000 per batch of 100,000 on the calling rank, costing more than the batch's
// own work (BENCHMARKS.md, "A batch of 100,000 from one caller: page faults, and the vectors a
// caller keeps"). Kept per thread, they are reused with their capacity.
#pragma once

#include <cstddef>
#include <vector>

namespace mtp::mpi::impl {

/// Lends this thread's kept std::vector<V>, empty, for the lifetime of the object. A second
/// lender on the same thread while the first is alive (a callback that calls the pool again
/// from inside a call) gets a vector of its own instead. At most k_keep_bytes of capacity is
/// kept past a use; a larger vector is freed.
template <class V>
class thread_scratch {
 public:
  static constexpr std::size_t k_keep_bytes = std::size_t{16} << 20;

  thread_scratch() noexcept : lent_(!kept().lent) {
    if (lent_) kept().lent = true;
  }
  ~thread_scratch() {
    if (!lent_) return;
    slot& s = kept();
    s.v.clear();
    if (s.v.capacity() > k_keep_bytes / sizeof(V)) std::vector<V>().swap(s.v);
    s.lent = false;
  }
  thread_scratch(const thread_scratch&) = delete;
  thread_scratch& operator=(const thread_scratch&) = delete;
  thread_scratch(thread_scratch&&) = delete;
  thread_scratch& operator=(thread_scratch&&) = delete;

  [[nodiscard]] std::vector<V>& get() noexcept { return lent_ ? kept().v : own_; }

 private:
  struct slot {
    std::vector<V> v;
    bool lent = false;
  };
  static slot& kept() noexcept {
    thread_local slot s;
    return s;
  }

  std::vector<V> own_;  // used when this thread's vector is already lent
  bool lent_;
};

}  // namespace mtp::mpi::impl
