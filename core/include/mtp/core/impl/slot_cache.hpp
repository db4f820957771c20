// SPDX-License-Identifier: MIT
// Internals: slot_cache, where a worker's item slots get their memory, keeping freed slots
// for the next creates. Do not include directly; use <mtp/mtp.hpp>.
#pragma once

#include <cstddef>
#include <new>
#include <utility>

namespace mtp::impl {

/// Whether this build runs under AddressSanitizer (g++ defines __SANITIZE_ADDRESS__, clang
/// answers __has_feature).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool k_address_sanitizer = true;
#elif defined(__has_feature)
inline constexpr bool k_address_sanitizer = __has_feature(address_sanitizer);
#else
inline constexpr bool k_address_sanitizer = false;
#endif

/// Builds and destroys objects of type T, one heap block each, and keeps the blocks of
/// destroyed ones (up to k_max_kept, about k_kept_bytes) for the next objects: removing items
/// and creating others then costs no trip to the heap and no fresh pages per item. The kept
/// blocks are freed with the cache. Under AddressSanitizer nothing is kept, so that a use
/// after destruction is still caught. Not thread-safe: one worker owns it.
template <class T>
class slot_cache {
  struct node {
    node* next;
  };
  static constexpr std::size_t k_size = sizeof(T) > sizeof(node) ? sizeof(T) : sizeof(node);
  static constexpr std::size_t k_align = alignof(T) > alignof(node) ? alignof(T) : alignof(node);

 public:
  /// The most memory the kept blocks take, about.
  static constexpr std::size_t k_kept_bytes = std::size_t{4} << 20;
  static constexpr std::size_t k_max_kept =
      k_address_sanitizer ? 0 : (k_kept_bytes / k_size > 0 ? k_kept_bytes / k_size : 1);

  slot_cache() noexcept = default;
  slot_cache(const slot_cache&) = delete;
  slot_cache& operator=(const slot_cache&) = delete;
  ~slot_cache() {
    while (free_ != nullptr) release(pop());
  }

  /// A new T from `args`, in a kept block if there is one. Throws what the constructor throws
  /// (its block is kept) or std::bad_alloc.
  template <class... A>
  T* make(A&&... args) {
    void* const p = free_ != nullptr ? static_cast<void*>(pop()) : ::operator new(k_size, std::align_val_t{k_align});
    try {
      return ::new (p) T(std::forward<A>(args)...);
    } catch (...) {
      give(p);
      throw;
    }
  }

  /// Destroys `t` (if not null) and keeps its block, or frees it when enough are kept.
  void destroy(T* t) noexcept {
    if (t == nullptr) return;
    t->~T();
    give(t);
  }

  /// Blocks kept now.
  [[nodiscard]] std::size_t kept() const noexcept { return kept_; }

 private:
  node* pop() noexcept {
    node* const n = free_;
    free_ = n->next;
    --kept_;
    return n;
  }
  void give(void* p) noexcept {
    if (kept_ < k_max_kept) {
      free_ = ::new (p) node{free_};
      ++kept_;
    } else {
      release(p);
    }
  }
  // The unsized form: the sized one is declared only where sized deallocation is on (clang
  // before 19 leaves it off).
  static void release(void* p) noexcept { ::operator delete(p, std::align_val_t{k_align}); }

  node* free_ = nullptr;
  std::size_t kept_ = 0;
};

}  // namespace mtp::impl
