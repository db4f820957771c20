// SPDX-License-Identifier: MIT
// A worker's id index on its own: find, insert, erase (backward shift) and growth, checked
// against std::unordered_map over random operations, with ids that collide on purpose (runs
// that wrap around the end of the table), id 0 and the largest id; reserve's room; and the
// walk over the table's places.
#include <mtp/core/impl/id_index.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

namespace {

using mtp::id_t;
using mtp::impl::id_index;

struct value {
  id_t id;
};

// Every id the index holds, and only those, maps to its own value; the walk sees each once.
void expect_same(const id_index<value>& index, const std::unordered_map<id_t, std::unique_ptr<value>>& model) {
  ASSERT_EQ(index.size(), model.size());
  ASSERT_EQ(index.empty(), model.empty());
  for (const auto& [id, v] : model) {
    ASSERT_EQ(index.find(id), v.get()) << "id " << id;
  }
  std::size_t seen = 0;
  for (std::size_t i = 0; i < index.capacity(); ++i) {
    const auto& e = index.at(i);
    if (e.value == nullptr) continue;
    ++seen;
    ASSERT_EQ(e.value->id, e.id);
    ASSERT_TRUE(model.contains(e.id));
  }
  ASSERT_EQ(seen, model.size());
}

TEST(IdIndex, EmptyFindsNothingAndErasesNothing) {
  id_index<value> index;
  EXPECT_TRUE(index.empty());
  EXPECT_EQ(index.capacity(), 0u);
  EXPECT_EQ(index.find(0), nullptr);
  EXPECT_EQ(index.find(42), nullptr);
  EXPECT_EQ(index.erase(42), nullptr);
}

TEST(IdIndex, InsertFindEraseIncludingZeroAndTheLargestId) {
  id_index<value> index;
  value zero{0}, big{std::numeric_limits<id_t>::max()}, seven{7};
  index.insert(0, &zero);
  index.insert(big.id, &big);
  index.insert(7, &seven);
  EXPECT_EQ(index.size(), 3u);
  EXPECT_EQ(index.find(0), &zero);
  EXPECT_EQ(index.find(big.id), &big);
  EXPECT_EQ(index.find(7), &seven);
  EXPECT_EQ(index.find(8), nullptr);
  EXPECT_EQ(index.erase(0), &zero);
  EXPECT_EQ(index.find(0), nullptr);
  EXPECT_EQ(index.erase(0), nullptr);
  EXPECT_EQ(index.find(7), &seven);
  EXPECT_EQ(index.find(big.id), &big);
  EXPECT_EQ(index.size(), 2u);
}

TEST(IdIndex, ReserveMakesRoomThatInsertsUseWithoutGrowing) {
  id_index<value> index;
  index.reserve(1000);
  const std::size_t cap = index.capacity();
  EXPECT_GE(cap - cap / 8, 1000u);  // at most 7/8 full
  std::vector<value> values(1000);
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i].id = i * 3;
    index.insert_reserved(values[i].id, &values[i]);
  }
  EXPECT_EQ(index.capacity(), cap);
  // Reserving a little more each time grows by doubling, not by each step.
  std::size_t grows = 0;
  for (std::size_t n = 1000; n < 100000; n += 500) {
    const std::size_t before = index.capacity();
    index.reserve(n);
    grows += index.capacity() != before ? 1 : 0;
  }
  EXPECT_LE(grows, 8u);
  for (const value& v : values) EXPECT_EQ(index.find(v.id), &v);
}

// Ids whose homes fall on a few places of a small table, some near its end: long runs that
// wrap around, erased from the middle, the start and the end.
TEST(IdIndex, CollidingIdsSurviveErasureAnywhereInTheirRun) {
  id_index<value> index;
  index.reserve(20);  // 31 places: an id below 2^32 has its value modulo 31 as its home
  const std::size_t cap = index.capacity();
  ASSERT_EQ(cap, 31u);
  // Find ids with the same home at the end (so the run wraps) and some with home 0.
  std::vector<id_t> ids;
  auto home = [&](id_t id) { return static_cast<std::size_t>(id % cap); };
  for (id_t id = 0; ids.size() < 4; ++id) {
    if (home(id) == cap - 1) ids.push_back(id);
  }
  for (id_t id = 0; ids.size() < 7; ++id) {
    if (home(id) == 0) ids.push_back(id);
  }
  for (std::size_t order = 0; order < ids.size(); ++order) {
    std::unordered_map<id_t, std::unique_ptr<value>> model;
    for (const id_t id : ids) {
      auto v = std::make_unique<value>(value{id});
      index.insert_reserved(id, v.get());
      model.emplace(id, std::move(v));
    }
    ASSERT_EQ(index.capacity(), cap);
    expect_same(index, model);
    // Erase starting at a different member each round, then all the rest.
    for (std::size_t k = 0; k < ids.size(); ++k) {
      const id_t id = ids[(order + k) % ids.size()];
      ASSERT_EQ(index.erase(id), model.at(id).get());
      model.erase(id);
      expect_same(index, model);
    }
  }
}

TEST(IdIndex, SizesArePrimesThatNearlyDouble) {
  std::uint64_t last = 0;
  for (const std::uint32_t p : id_index<value>::k_sizes) {
    EXPECT_GE(p, last + last * 4 / 5);  // nearly doubles: reserving step by step stays amortised O(1)
    for (std::uint64_t d = 2; d * d <= p; ++d) ASSERT_NE(p % d, 0u) << p << " is divisible by " << d;
    last = p;
  }
}

TEST(IdIndex, FastModIsTheRemainder) {
  std::mt19937_64 rng(7);
  for (const std::uint32_t d : id_index<value>::k_sizes) {
    const std::uint64_t m = ~std::uint64_t{0} / d + 1;
    for (const std::uint32_t a : {0U, 1U, d - 1, d, d + 1, 0x7FFFFFFFU, 0x80000000U, 0xFFFFFFFEU, 0xFFFFFFFFU}) {
      ASSERT_EQ(id_index<value>::fast_mod(a, m, d), a % d) << a << " mod " << d;
    }
    for (int k = 0; k < 20000; ++k) {
      const auto a = static_cast<std::uint32_t>(rng());
      ASSERT_EQ(id_index<value>::fast_mod(a, m, d), a % d) << a << " mod " << d;
    }
  }
}

TEST(IdIndex, RandomOperationsMatchAMap) {
  std::mt19937_64 rng(12345);
  for (const id_t range : {id_t{64}, id_t{5000}, std::numeric_limits<id_t>::max()}) {
    id_index<value> index;
    std::unordered_map<id_t, std::unique_ptr<value>> model;
    std::uniform_int_distribution<id_t> pick(0, range);
    for (int step = 0; step < 40000; ++step) {
      const id_t id = pick(rng);
      const bool add = (rng() % 3) != 0;
      if (add && !model.contains(id)) {
        auto v = std::make_unique<value>(value{id});
        index.insert(id, v.get());
        model.emplace(id, std::move(v));
      } else if (!add) {
        value* const expected = model.contains(id) ? model.at(id).get() : nullptr;
        ASSERT_EQ(index.erase(id), expected);
        model.erase(id);
      }
      ASSERT_EQ(index.find(id), model.contains(id) ? model.at(id).get() : nullptr);
      if (step % 4000 == 0) expect_same(index, model);
    }
    expect_same(index, model);
    // Emptied one by one through the walk, as a worker's shutdown does.
    for (std::size_t i = 0; i < index.capacity();) {
      const auto& e = index.at(i);
      if (e.value == nullptr) {
        ++i;
        continue;
      }
      const id_t id = e.id;
      ASSERT_EQ(index.erase(id), model.at(id).get());
      model.erase(id);
    }
    EXPECT_TRUE(index.empty());
    EXPECT_TRUE(model.empty());
  }
}

// Consecutive and strided ids (the default routing hands a worker every k-th id), and ids that
// differ only in their high half, stay cheap:
// the longest run of occupied places stays short.
TEST(IdIndex, ConsecutiveAndStridedIdsSpreadEvenly) {
  for (const id_t stride : {id_t{1}, id_t{2}, id_t{3}, id_t{4}, id_t{16}, id_t{1000}, id_t{1024}, id_t{1} << 32}) {
    id_index<value> index;
    std::vector<value> values(50000);
    for (std::size_t i = 0; i < values.size(); ++i) {
      values[i].id = i * stride;
      index.insert(values[i].id, &values[i]);
    }
    // How far each entry sits from its home (the documented one: the folded id modulo the size).
    const std::size_t cap = index.capacity();
    std::size_t farthest = 0, total = 0;
    for (std::size_t i = 0; i < cap; ++i) {
      const auto& e = index.at(i);
      if (e.value == nullptr) continue;
      const std::size_t home = id_index<value>::fold(e.id) % cap;
      const std::size_t away = i >= home ? i - home : i + cap - home;
      farthest = std::max(farthest, away);
      total += away;
    }
    EXPECT_LE(farthest, 64u) << "stride " << stride;
    EXPECT_LE(total, 2 * values.size()) << "stride " << stride;  // under two steps on average
    for (std::size_t i = 0; i < values.size(); i += 2) ASSERT_EQ(index.erase(values[i].id), &values[i]);
    for (std::size_t i = 0; i < values.size(); ++i) ASSERT_EQ(index.find(values[i].id), i % 2 == 0 ? nullptr : &values[i]);
  }
}

}  // namespace
