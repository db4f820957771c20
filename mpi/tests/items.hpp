// SPDX-License-Identifier: MIT
// Items and requests shared by the MPI tests.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <mtp/core/result.hpp>

namespace mtp_mpi_test {

struct add {  // trivially copyable: travels as bytes
  mtp::id_t id;
  long amount;
  using response_type = long;
};
struct get {
  mtp::id_t id;
  using response_type = long;
};
struct boom {  // the handler throws std::invalid_argument
  mtp::id_t id;
  using response_type = int;
};
struct where {  // the rank the item lives on
  mtp::id_t id;
  using response_type = int;
};
struct note {  // through cereal: a string in, a vector of strings out
  mtp::id_t id;
  std::string text;
  using response_type = std::vector<std::string>;
  template <class A>
  void serialize(A& a) { a(id, text); }
};
struct append {  // the shadow model: (sender, seq) recorded in arrival order
  mtp::id_t id;
  std::uint32_t sender;
  std::uint32_t seq;
  using response_type = void;
};
struct history {
  mtp::id_t id;
  using response_type = std::vector<std::pair<std::uint32_t, std::uint32_t>>;
};
struct slow {  // sleeps, then answers
  mtp::id_t id;
  int micros;
  using response_type = int;
};

struct hold {  // waits until a release reaches the same rank (at most 30 s); answers 1 if released
  mtp::id_t id;
  using response_type = int;
};
struct release {  // lets every hold on this rank go on
  mtp::id_t id;
  using response_type = int;
};

struct forward {  // adds `amount` to item `to` through the pool that runs the handler; answers
                  // 1 when mtp::mpi::this_pool named the sharded pool the test expects
  mtp::id_t id;
  mtp::id_t to;
  long amount;
  using response_type = int;
};

struct relay {  // calls boom on item `to` through the pool that runs the handler: the error
                // passes through this rank on its way back
  mtp::id_t id;
  mtp::id_t to;
  using response_type = int;
};

struct hop {  // adds 1 to the item's total, then posts hop{id + 1 (mod `items`), left - 1}
  mtp::id_t id;
  mtp::id_t items;
  std::uint32_t left;
  using response_type = void;
};
struct weigh {  // answers total * scale / (id + 3): a double that depends on the item
  mtp::id_t id;
  double scale;
  using response_type = double;
};
struct quiesce_inside {  // the handler calls quiesce() on its own pool: answers the error code
  mtp::id_t id;
  using response_type = int;
};

// Larger than a thread's stack (8 MiB): trivially copyable, so it travels as its bytes.
inline constexpr std::size_t k_bulk_bytes = std::size_t{16} << 20;
struct bulk {  // the item answers a checksum of the bytes
  mtp::id_t id;
  std::array<std::uint8_t, k_bulk_bytes> bytes;
  using response_type = std::uint64_t;
};
struct bulk_block {  // 4 MiB: decoding more than one copy of it on a stack would not fit
  std::array<std::uint8_t, std::size_t{4} << 20> bytes;
};
struct bulk_reply {  // the item answers a block filled from `seed`
  mtp::id_t id;
  std::uint32_t seed;
  using response_type = bulk_block;
};
// Large enough to be sent from the caller's storage by the blocking forms (wire::k_borrow_min),
// small enough for batches of many.
inline constexpr std::size_t k_slab_bytes = std::size_t{96} << 10;
struct slab {  // the item answers a checksum of the bytes
  mtp::id_t id;
  std::array<std::uint8_t, k_slab_bytes> bytes;
  using response_type = std::uint64_t;
};
// Just over 2 GiB, more than one MPI message can count (int): travels in pieces.
inline constexpr std::size_t k_huge_words = ((std::size_t{1} << 31) + 4096) / 8;
struct huge {  // the item answers the sum of the words
  mtp::id_t id;
  std::array<std::uint64_t, k_huge_words> words;
  using response_type = std::uint64_t;
};
inline std::uint64_t huge_sum(const std::array<std::uint64_t, k_huge_words>& words) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < words.size(); ++i) sum += words[i] * (i | 1);  // order matters
  return sum;
}

// The pattern both ends compute, and its checksum (FNV-1a).
inline std::uint8_t bulk_byte(std::uint32_t seed, std::size_t i) {
  return static_cast<std::uint8_t>((i * 2654435761u + seed) >> 7);
}
template <std::size_t N>
std::uint64_t checksum(const std::array<std::uint8_t, N>& bytes) {
  std::uint64_t h = 14695981039346656037ull;
  for (const std::uint8_t b : bytes) h = (h ^ b) * 1099511628211ull;
  return h;
}

struct item {
  item(mtp::id_t id, long start, std::string name) : id_(id), total_(start), name_(std::move(name)) {
    if (start < 0) throw std::domain_error("negative start for " + name_);
  }
  item(mtp::id_t id, long start) : item(id, start, "item") {}
  // Waits, as handle(const hold&) does, until a release reaches the same rank; the total is
  // then 1 if released (0 if it waited 30 s).
  item(mtp::id_t id, const hold&);
  long handle(const add& a) { return total_ += a.amount; }
  long handle(const get&) const { return total_; }
  int handle(const boom& b) { throw std::invalid_argument("boom " + std::to_string(b.id)); }
  int handle(const where&) const;
  std::vector<std::string> handle(const note& n) {
    notes_.push_back(name_ + ":" + n.text);
    return notes_;
  }
  void handle(const append& a) { log_.emplace_back(a.sender, a.seq); }
  std::vector<std::pair<std::uint32_t, std::uint32_t>> handle(const history&) const { return log_; }
  int handle(const slow& s);
  int handle(const hold&);
  int handle(const release&);
  int handle(const forward&);
  int handle(const relay&);
  void handle(const hop&);
  int handle(const quiesce_inside&);
  [[nodiscard]] double handle(const weigh& w) const {
    return static_cast<double>(total_) * w.scale / (static_cast<double>(id_) + 3.0);
  }
  std::uint64_t handle(const bulk& b) const { return checksum(b.bytes); }
  std::uint64_t handle(const slab& b) const { return checksum(b.bytes); }
  std::uint64_t handle(const huge& h) const { return huge_sum(h.words); }
  bulk_block handle(const bulk_reply& r) const {
    bulk_block b;
    for (std::size_t i = 0; i < b.bytes.size(); ++i) b.bytes[i] = bulk_byte(r.seed, i);
    return b;
  }
  // Members for pool.call<&item::...>.
  [[nodiscard]] long scaled(long k) const { return total_ * k; }
  [[nodiscard]] std::string named(const std::string& suffix) const { return name_ + suffix; }
  void bump() { ++total_; }

  mtp::id_t id_;
  long total_;
  std::string name_;
  std::vector<std::string> notes_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> log_;
};

}  // namespace mtp_mpi_test
