// SPDX-License-Identifier: MIT
#include <mtp/core/impl/timer_heap.hpp>

namespace mtp::impl {

namespace {
constexpr std::size_t k_arity = 4;  // shallower than binary: fewer cache misses per sift
}  // namespace

void timer_heap::push(timer_node* n) {
  heap_.push_back(n);  // may throw: nothing changed yet
  n->heap_index = static_cast<std::uint32_t>(heap_.size() - 1);
  sift_up(heap_.size() - 1);
}

void timer_heap::pop() noexcept { erase(heap_.front()); }

void timer_heap::erase(timer_node* n) noexcept {
  const std::size_t i = n->heap_index;
  n->heap_index = timer_node::k_not_in_heap;
  timer_node* const last = heap_.back();
  heap_.pop_back();
  if (last == n) return;
  place(i, last);
  sift_down(i);
  sift_up(last->heap_index);
}

void timer_heap::moved_earlier(timer_node* n) noexcept { sift_up(n->heap_index); }

void timer_heap::sift_up(std::size_t i) noexcept {
  timer_node* const n = heap_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / k_arity;
    if (!before(n, heap_[parent])) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, n);
}

void timer_heap::sift_down(std::size_t i) noexcept {
  timer_node* const n = heap_[i];
  const std::size_t size = heap_.size();
  for (;;) {
    const std::size_t first = i * k_arity + 1;
    if (first >= size) break;
    std::size_t best = first;
    const std::size_t end = first + k_arity < size ? first + k_arity : size;
    for (std::size_t c = first + 1; c < end; ++c) {
      if (before(heap_[c], heap_[best])) best = c;
    }
    if (!before(heap_[best], n)) break;
    place(i, heap_[best]);
    i = best;
  }
  place(i, n);
}

void timer_heap::rebuild() noexcept {
  for (std::size_t i = 0; i < heap_.size(); ++i) heap_[i]->heap_index = static_cast<std::uint32_t>(i);
  if (heap_.size() < 2) return;
  for (std::size_t i = (heap_.size() - 2) / k_arity + 1; i-- > 0;) sift_down(i);
}

}  // namespace mtp::impl
