// SPDX-License-Identifier: MIT
// Counts every heap allocation of the test binary that includes this header (exactly one
// translation unit per binary may): the global operator new and delete are replaced, and
// mtp_test::g_allocations counts the calls to new on every thread (a message that allocates on
// the worker counts as much as one that allocates on the caller). Such binaries are built
// only where MTP_TESTS_REPLACE_NEW is on (tests/CMakeLists.txt).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace mtp_test {
inline std::atomic<std::uint64_t> g_allocations{0};

inline void* counted_new(std::size_t size, std::size_t align) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);  // a counter only
  if (size == 0) size = 1;
  void* p = align <= alignof(std::max_align_t) ? std::malloc(size) : std::aligned_alloc(align, (size + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace mtp_test

void* operator new(std::size_t size) { return mtp_test::counted_new(size, alignof(std::max_align_t)); }
void* operator new[](std::size_t size) { return mtp_test::counted_new(size, alignof(std::max_align_t)); }
void* operator new(std::size_t size, std::align_val_t a) { return mtp_test::counted_new(size, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t size, std::align_val_t a) { return mtp_test::counted_new(size, static_cast<std::size_t>(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
