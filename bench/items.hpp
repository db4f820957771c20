// SPDX-License-Identifier: MIT
// The pool items and requests the benchmarks use.
#pragma once

#include <cstdint>

#include <mtp/mtp.hpp>

#include "common.hpp"

namespace bench {

/// A trivial request: the reply is x + the item's id, so every reply can be checked.
struct ping {
  mtp::id_t id;
  std::uint64_t x;
  using response_type = std::uint64_t;
};
/// How many pings the item answered.
struct calls_query {
  mtp::id_t id;
  using response_type = std::uint64_t;
};

/// A small stateful item with a trivial handler.
class echo_item {
 public:
  explicit echo_item(mtp::id_t id) : id_(id) {}
  std::uint64_t handle(const ping& p) noexcept {
    ++calls_;
    return p.x + id_;
  }
  std::uint64_t handle(const calls_query&) const noexcept { return calls_; }
  [[nodiscard]] std::uint64_t calls() const noexcept { return calls_; }

 private:
  std::uint64_t id_;
  std::uint64_t calls_ = 0;
};

/// A request that costs `iters` steps of calibrated work.
struct work {
  mtp::id_t id;
  std::uint64_t x;
  std::uint64_t iters;
  using response_type = std::uint64_t;
};
struct sum_query {
  mtp::id_t id;
  using response_type = std::uint64_t;
};

/// An item whose handler does calibrated work. The reply depends only on the request and the
/// item's id, and the item keeps a running sum of its replies: results can be checked against
/// a sequential run whatever order a baseline runs the requests in.
class work_item {
 public:
  explicit work_item(mtp::id_t id) : id_(id) {}
  std::uint64_t handle(const work& w) noexcept {
    const std::uint64_t r = spin_work(w.x ^ (id_ * 0x9E3779B97F4A7C15ull), w.iters);
    sum_ += r;
    return r;
  }
  std::uint64_t handle(const sum_query&) const noexcept { return sum_; }
  [[nodiscard]] std::uint64_t sum() const noexcept { return sum_; }

 private:
  std::uint64_t id_;
  std::uint64_t sum_ = 0;
};

}  // namespace bench
