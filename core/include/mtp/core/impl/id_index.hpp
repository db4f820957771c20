// SPDX-License-Identifier: MIT
// Internals: id_index, a worker's map from item id to the item's slot (an open-addressing hash
// table of (id, pointer) pairs). Do not include directly; use <mtp/mtp.hpp>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <utility>

#include <mtp/core/messages.hpp>

namespace mtp::impl {

/// Maps an id to a pointer to T (never null): Robin Hood linear probing over a table of
/// (id, pointer) pairs whose size is a prime, an id's home place its value modulo that prime
/// (as in std::unordered_map: consecutive ids sit side by side, so creating or visiting them in
/// order walks memory in order, and the strides the default routing gives a worker spread
/// evenly), removal by backward shift (no tombstones), at most 7/8 full. Robin Hood keeps each
/// run ordered by home, so a miss stops at the first entry nearer its own home than the probe
/// is to the id's, and a removal stops at the first entry at its home: long runs of
/// consecutive ids, each at its home, cost one step. The modulo is two or three
/// multiplications, not a division (fast_mod). The pointees live elsewhere and never move, so
/// that items keep their address while the table grows. Not thread-safe: one worker owns it.
/// find and erase never allocate; only reserve (and so insert) does.
template <class T>
class id_index {
 public:
  /// One position of the table: empty when `value` is null (any id, 0 included, is a key).
  /// Trivial, so that a table of them may come from calloc.
  struct entry {
    id_t id;
    T* value;
  };

  id_index() noexcept = default;
  id_index(const id_index&) = delete;
  id_index& operator=(const id_index&) = delete;
  ~id_index() = default;

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  /// Positions in the table (0 before the first insert); at(i) for i below it.
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] const entry& at(std::size_t i) const noexcept { return table_[i]; }

  /// The value for `id`, or nullptr.
  [[nodiscard]] T* find(id_t id) const noexcept {
    const std::size_t i = place(id);
    return i == k_absent ? nullptr : table_[i].value;
  }

  /// Makes room for `n` entries in all, so that inserts up to that size do not allocate.
  /// The size at least doubles each time, so reserving a little more each time costs
  /// amortised O(1). Throws std::bad_alloc (the index is then unchanged).
  void reserve(std::size_t n) {
    if (n <= limit()) return;
    for (const std::uint32_t p : k_sizes) {
      if (p - p / 8 >= n) {
        rehash(p);
        return;
      }
    }
    throw std::bad_alloc();  // over 3.7 * 10^9 items on one worker
  }

  /// Adds `id` -> `value` (not null). `id` must be absent and room reserved (size() <
  /// the size last reserved); then it neither allocates nor throws.
  void insert_reserved(id_t id, T* value) noexcept {
    put({id, value});
    ++size_;
  }

  /// Adds `id` -> `value` (not null); `id` must be absent. Throws std::bad_alloc (the index is
  /// then unchanged).
  void insert(id_t id, T* value) {
    reserve(size_ + 1);
    insert_reserved(id, value);
  }

  /// Removes `id`; returns its value, or nullptr when it was absent.
  T* erase(id_t id) noexcept {
    std::size_t hole = place(id);
    if (hole == k_absent) return nullptr;
    T* const found = table_[hole].value;
    // Backward shift: the rest of the run moves one place back, up to the first entry that is
    // at its home (or an empty place); the run stays ordered by home.
    for (std::size_t j = next(hole); table_[j].value != nullptr && home(table_[j].id) != j; j = next(j)) {
      table_[hole] = table_[j];
      hole = j;
    }
    table_[hole] = {0, nullptr};
    --size_;
    return found;
  }

  /// The table sizes reserve picks from: the largest prime below each power of two from 2^4
  /// to 2^32.
  static constexpr std::uint32_t k_sizes[] = {
      13U,        31U,        61U,        127U,        251U,        509U,        1021U,       2039U,
      4093U,      8191U,      16381U,     32749U,      65521U,      131071U,     262139U,     524287U,
      1048573U,   2097143U,   4194301U,   8388593U,    16777213U,   33554393U,   67108859U,   134217689U,
      268435399U, 536870909U, 1073741789U, 2147483647U, 4294967291U};

  /// An id in 32 bits: ids below 2^32 as they are; above, the high half mixed (MurmurHash3's
  /// finaliser, which leaves 0 at 0) and added, so ids that differ only there still land apart.
  static constexpr std::uint32_t fold(std::uint64_t id) noexcept {
    auto h = static_cast<std::uint32_t>(id >> 32);
    h ^= h >> 16;
    h *= 0x85EBCA6BU;
    h ^= h >> 13;
    h *= 0xC2B2AE35U;
    h ^= h >> 16;
    return static_cast<std::uint32_t>(id) + h;
  }

  /// `a` modulo `d` (d > 0) without a division: Lemire, Kaser and Kurz, "Faster remainder by
  /// direct computation" (2019), exact for every 32-bit `a` and `d`; `m` is 2^64 / d rounded
  /// up (mod 2^64). The 96-bit product is taken in 64-bit halves.
  static constexpr std::uint32_t fast_mod(std::uint32_t a, std::uint64_t m, std::uint32_t d) noexcept {
    const std::uint64_t low = m * a;  // the fraction a / d, in 64 bits
    const std::uint64_t t = (low >> 32) * d + (((low & 0xFFFFFFFFU) * d) >> 32);
    return static_cast<std::uint32_t>(t >> 32);
  }

 private:
  static constexpr std::size_t k_absent = ~std::size_t{0};

  // Where `id` sits, or k_absent.
  [[nodiscard]] std::size_t place(id_t id) const noexcept {
    if (size_ == 0) return k_absent;
    std::size_t i = home(id);
    for (std::size_t probe = 0;; i = next(i), ++probe) {
      const entry& e = table_[i];
      if (e.value == nullptr) return k_absent;
      if (e.id == id) return i;
      // An entry nearer its home than this probe is to the id's: the id would have taken its
      // place, so it is not in the table.
      if (distance(home(e.id), i) < probe) return k_absent;
    }
  }

  // Robin Hood insertion: an entry farther from its home takes the place of one nearer to
  // its own, which moves on. Room must be reserved.
  void put(entry e) noexcept {
    std::size_t i = home(e.id);
    for (std::size_t probe = 0;; i = next(i), ++probe) {
      entry& here = table_[i];
      if (here.value == nullptr) {
        here = e;
        return;
      }
      const std::size_t theirs = distance(home(here.id), i);
      if (theirs < probe) {
        std::swap(here, e);
        probe = theirs;
      }
    }
  }

  // The most entries the table takes before it grows: 7/8 of its positions (Robin Hood keeps
  // probes short that full; a growth needs less fresh memory, whose pages fault in one by one).
  [[nodiscard]] std::size_t limit() const noexcept { return capacity_ - capacity_ / 8; }

  [[nodiscard]] std::size_t home(id_t id) const noexcept {
    const auto v = static_cast<std::uint64_t>(id);
    return fast_mod(fold(v), m_, static_cast<std::uint32_t>(capacity_));
  }
  [[nodiscard]] std::size_t next(std::size_t i) const noexcept { return i + 1 == capacity_ ? 0 : i + 1; }
  // How far forward (wrapping) place `to` lies from place `from`.
  [[nodiscard]] std::size_t distance(std::size_t from, std::size_t to) const noexcept {
    return to >= from ? to - from : to + capacity_ - from;
  }

  void rehash(std::size_t cap) {
    // calloc: a large table comes zeroed from the kernel, each page on its first use, rather
    // than written through at once; all zero bytes are empty entries (id 0, null pointer).
    table_ptr fresh(static_cast<entry*>(std::calloc(cap, sizeof(entry))));
    if (!fresh) throw std::bad_alloc();  // nothing changed yet
    const table_ptr old = std::exchange(table_, std::move(fresh));
    const std::size_t old_cap = std::exchange(capacity_, cap);
    m_ = ~std::uint64_t{0} / cap + 1;
    for (std::size_t i = 0; i < old_cap; ++i) {
      if (old[i].value != nullptr) put(old[i]);
    }
  }

  struct release {
    void operator()(entry* p) const noexcept { std::free(p); }
  };
  using table_ptr = std::unique_ptr<entry[], release>;

  table_ptr table_;
  std::size_t capacity_ = 0;  // one of k_sizes, or 0 before the first insert
  std::uint64_t m_ = 0;       // fast_mod's multiplier for capacity_
  std::size_t size_ = 0;
};

}  // namespace mtp::impl
