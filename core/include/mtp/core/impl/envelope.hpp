// SPDX-License-Identifier: MIT
// Internals: what travels through a worker's queue. Do not include directly; use <mtp/mtp.hpp>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace mtp::impl {

/// Size of a cache line on the targets we tune for; an explicit constant rather than
/// std::hardware_destructive_interference_size, whose value may change with compiler flags.
inline constexpr std::size_t k_cache_line = 64;

class worker_base;
struct envelope;
using run_fn = void (*)(worker_base&, envelope&) noexcept;

/// One message: a function that knows the message's type, and 48 bytes for it to read. A
/// batch travels as one envelope per worker (a `chunk`: the batch's address and which of its
/// requests this worker owns; with a bounded queue, one per piece of at most its capacity);
/// a round trip or a posted request travels inline when it is small and trivially copyable.
/// The queue adds an 8-byte link, so that a queued envelope fills exactly one cache line.
struct envelope {
  static constexpr std::size_t k_payload = 48;

  run_fn run = nullptr;
  alignas(8) unsigned char payload[k_payload];

  // T is often a pointer (a heap copy, a batch); its size is the one meant.
  // NOLINTBEGIN(bugprone-sizeof-expression)
  template <class T>
  static envelope make(run_fn fn, const T& data) noexcept {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= k_payload, "does not fit an envelope");
    envelope e;
    e.run = fn;
    std::memcpy(e.payload, &data, sizeof(T));
    return e;
  }
  template <class T>
  [[nodiscard]] T read() const noexcept {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= k_payload, "does not fit an envelope");
    union holder {
      holder() noexcept {}  // leaves `value` unconstructed: memcpy below creates it
      T value;
    } h;
    std::memcpy(&h.value, payload, sizeof(T));
    return h.value;
  }
  // NOLINTEND(bugprone-sizeof-expression)
};
static_assert(sizeof(envelope) == 56, "an envelope and the queue's link fill one cache line");
static_assert(std::is_trivially_copyable_v<envelope>, "the queue moves envelopes by copying bytes");

/// A worker's share of a batch: requests [first, first+count) of the job, or, when `indices`
/// is set, requests indices[0..count).
struct chunk {
  void* job;
  const std::uint32_t* indices;
  std::uint32_t first;
  std::uint32_t count;

  /// The piece [from, from+n) of this chunk's requests.
  [[nodiscard]] chunk piece(std::uint32_t from, std::uint32_t n) const noexcept {
    return indices == nullptr ? chunk{job, nullptr, first + from, n} : chunk{job, indices + from, 0, n};
  }

  template <class F>
  void for_each(F&& f) const {
    if (indices == nullptr) {
      for (std::uint32_t i = first; i < first + count; ++i) f(i);
    } else {
      for (std::uint32_t k = 0; k < count; ++k) f(indices[k]);
    }
  }
};

}  // namespace mtp::impl
