// SPDX-License-Identifier: MIT
// Where a worker's item slots get their memory, on its own: a destroyed object's block serves
// the next one, a throwing constructor leaves its block kept and nothing built, over-aligned
// types keep their alignment, and no more than k_max_kept blocks are kept.
#include <mtp/core/impl/slot_cache.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace {

using mtp::impl::slot_cache;

int g_alive = 0;

struct counted {
  explicit counted(int v, bool fail = false) : value(v) {
    if (fail) throw std::runtime_error("constructor failed");
    ++g_alive;
  }
  counted(const counted&) = delete;
  counted& operator=(const counted&) = delete;
  ~counted() { --g_alive; }
  int value;
};

struct alignas(64) wide {
  explicit wide(int v) : value(v) {}
  int value;
};

struct big {
  explicit big(int) {}
  std::array<std::uint8_t, (std::size_t{1} << 20)> bytes{};  // 1 MiB: only a few are kept
};

TEST(SlotCache, BuildsAndDestroys) {
  {
    slot_cache<counted> cache;
    counted* a = cache.make(1);
    counted* b = cache.make(2);
    EXPECT_EQ(a->value, 1);
    EXPECT_EQ(b->value, 2);
    EXPECT_NE(a, b);
    EXPECT_EQ(g_alive, 2);
    cache.destroy(a);
    cache.destroy(nullptr);  // nothing
    EXPECT_EQ(g_alive, 1);
    cache.destroy(b);
    EXPECT_EQ(g_alive, 0);
  }
  EXPECT_EQ(g_alive, 0);
}

TEST(SlotCache, ADestroyedObjectsBlockServesTheNext) {
  if constexpr (slot_cache<counted>::k_max_kept == 0) GTEST_SKIP() << "nothing is kept under AddressSanitizer";
  slot_cache<counted> cache;
  counted* a = cache.make(1);
  cache.destroy(a);
  EXPECT_EQ(cache.kept(), 1u);
  counted* b = cache.make(2);
  EXPECT_EQ(static_cast<void*>(b), static_cast<void*>(a));
  EXPECT_EQ(b->value, 2);
  EXPECT_EQ(cache.kept(), 0u);
  cache.destroy(b);
}

TEST(SlotCache, AThrowingConstructorBuildsNothingAndKeepsItsBlock) {
  slot_cache<counted> cache;
  EXPECT_THROW((void)cache.make(1, true), std::runtime_error);
  EXPECT_EQ(g_alive, 0);
  EXPECT_EQ(cache.kept(), slot_cache<counted>::k_max_kept == 0 ? 0u : 1u);
  counted* a = cache.make(3);
  EXPECT_EQ(a->value, 3);
  EXPECT_EQ(g_alive, 1);
  cache.destroy(a);
  EXPECT_EQ(g_alive, 0);
}

TEST(SlotCache, OverAlignedTypesKeepTheirAlignment) {
  slot_cache<wide> cache;
  std::vector<wide*> all;
  for (int i = 0; i < 100; ++i) all.push_back(cache.make(i));
  for (wide* w : all) EXPECT_EQ(reinterpret_cast<std::uintptr_t>(w) % 64, 0u);
  for (wide* w : all) cache.destroy(w);
  for (int i = 0; i < 100; ++i) {
    wide* w = cache.make(i);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(w) % 64, 0u);
    EXPECT_EQ(w->value, i);
    cache.destroy(w);
  }
}

TEST(SlotCache, KeepsNoMoreThanItsLimit) {
  constexpr std::size_t limit = slot_cache<big>::k_max_kept;
  static_assert(limit <= 4, "about 4 MiB of 1 MiB objects");
  slot_cache<big> cache;
  std::vector<big*> all;
  for (int i = 0; i < 6; ++i) all.push_back(cache.make(i));
  for (big* b : all) cache.destroy(b);
  EXPECT_EQ(cache.kept(), limit);
  for (int i = 0; i < 6; ++i) all[static_cast<std::size_t>(i)] = cache.make(i);
  EXPECT_EQ(cache.kept(), 0u);
  for (big* b : all) cache.destroy(b);
}

}  // namespace
