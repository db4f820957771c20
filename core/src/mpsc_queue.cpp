// SPDX-License-Identifier: MIT
#include <mtp/core/impl/mpsc_queue.hpp>

#include <new>

namespace mtp::impl {

namespace {
// Counted, so that tests can check that memory for exited threads and drained bursts is
// returned. Only the slow path allocates: nodes are recycled.
std::atomic<std::int64_t> g_nodes_alive{0};
}  // namespace

void* queue_node::operator new(std::size_t size) {
  void* p = ::operator new(size, std::align_val_t{k_cache_line});
  g_nodes_alive.fetch_add(1, std::memory_order_relaxed);  // a statistic
  return p;
}

void queue_node::operator delete(void* p) noexcept {
  g_nodes_alive.fetch_sub(1, std::memory_order_relaxed);  // a statistic
  ::operator delete(p, std::align_val_t{k_cache_line});
}

namespace {
void free_list(queue_node* n) noexcept {
  while (n != nullptr) {
    queue_node* next = n->next.load(std::memory_order_relaxed);  // a private list now
    delete n;
    n = next;
  }
}

/// Nodes this thread took from a queue's free slot (one batch, at most k_free_batch), for its
/// next pushes to any queue: nodes are plain memory. Plain data with a constant initialiser, so
/// it stays readable after the thread's destructors ran: a push from a later destructor (a
/// thread_local's, or a static pool's at process exit) sees `gone` and allocates plainly.
struct node_cache {
  queue_node* head = nullptr;
  bool owned = false;  // node_cache_owner below will free `head` when the thread exits
  bool gone = false;   // the thread is exiting: cache nothing more
};
constinit thread_local node_cache tl_nodes;

/// Frees the thread's cache when the thread exits, so nothing is kept for threads that are
/// gone. Registered on the thread's first cached batch (a thread that never caches registers
/// nothing).
struct node_cache_owner {
  node_cache_owner() = default;
  node_cache_owner(const node_cache_owner&) = delete;
  node_cache_owner& operator=(const node_cache_owner&) = delete;
  ~node_cache_owner() {
    free_list(tl_nodes.head);
    tl_nodes.head = nullptr;
    tl_nodes.gone = true;
  }
};
thread_local node_cache_owner tl_nodes_owner;

/// A batch of nodes for this thread's next pushes, or nullptr: the caller allocates.
queue_node* cache_batch(std::atomic<queue_node*>& free) noexcept {
  node_cache& cache = tl_nodes;
  if (cache.gone) return nullptr;
  if (free.load(std::memory_order_relaxed) == nullptr) return nullptr;  // relaxed: a hint only
  if (!cache.owned) {
    // The first use of the owner registers its destructor for this thread's exit.
    [[maybe_unused]] node_cache_owner& owner = tl_nodes_owner;
    cache.owned = true;
  }
  // acquire: pairs with the consumer's release store, so the links inside the batch are visible.
  return free.exchange(nullptr, std::memory_order_acquire);
}
}  // namespace

std::int64_t queue_nodes_alive() noexcept {
  return g_nodes_alive.load(std::memory_order_relaxed);  // a statistic
}

mpsc_queue::mpsc_queue() : tail_(new queue_node) {
  head_ = tail_.load(std::memory_order_relaxed);  // the dummy node: not yet shared
}

mpsc_queue::~mpsc_queue() {
  free_list(head_);  // the dummy, and whatever is still linked behind it
  free_list(batch_);
  for (std::size_t i = 0; i < spare_count_; ++i) free_list(spares_[i]);
  free_list(free_.load(std::memory_order_acquire));  // acquire: pairs with the consumer's store
}

queue_node* mpsc_queue::node_for(const envelope& e) {
  node_cache& cache = tl_nodes;
  if (cache.head == nullptr) cache.head = cache_batch(free_);
  queue_node* n = cache.head;
  if (n != nullptr) {
    cache.head = n->next.load(std::memory_order_relaxed);  // a private list of this thread
    n->next.store(nullptr, std::memory_order_relaxed);  // published by the exchange in push
  } else {
    n = new queue_node;  // throws std::bad_alloc: nothing was queued
  }
  n->e = e;
  // relaxed: a statistic on the line the exchange in push takes anyway.
  pushed_.fetch_add(1, std::memory_order_relaxed);
  return n;
}

void mpsc_queue::push(const envelope& e) {
  queue_node* const n = node_for(e);
  // acq_rel: release publishes the node's contents to whoever links after us; acquire makes
  // the previous tail's node ours to link (its `next` write below must follow its creation).
  queue_node* const prev = tail_.exchange(n, std::memory_order_acq_rel);
  // release: the consumer's acquire load of `next` sees the envelope. Between the exchange and
  // this store the list is cut: the consumer sees nothing past `prev` until it is linked.
  prev->next.store(n, std::memory_order_release);
}

void mpsc_queue::push_cut_for_test(const envelope& e, void (*between)(void*), void* arg) {
  queue_node* const n = node_for(e);
  queue_node* const prev = tail_.exchange(n, std::memory_order_acq_rel);  // acq_rel: as in push
  between(arg);
  prev->next.store(n, std::memory_order_release);  // release: as in push
}

std::size_t mpsc_queue::depth() const noexcept {
  // relaxed, both: two statistics read one after the other; clamp the race to zero.
  const std::uint64_t in = pushed_.load(std::memory_order_relaxed);
  const std::uint64_t out = popped_.load(std::memory_order_relaxed);
  return in > out ? static_cast<std::size_t>(in - out) : 0;
}

void mpsc_queue::batch_full() noexcept {
  // Producers get the batch if they took the last one; else it is kept spare, up to
  // k_spare_batches, else freed.
  queue_node* const full = batch_;
  batch_ = nullptr;
  batch_count_ = 0;
  if (hand_back(full)) return;
  if (spare_count_ < k_spare_batches) spares_[spare_count_++] = full;
  else free_list(full);
}

bool mpsc_queue::hand_back(queue_node* batch) noexcept {
  // Only the consumer stores a non-null list, and producers only take it whole, so a null seen
  // here stays null until our store.
  if (free_.load(std::memory_order_relaxed) != nullptr) return false;  // relaxed: see above
  free_.store(batch, std::memory_order_release);  // release: producers see the links
  return true;
}

void mpsc_queue::hand_back_spare() noexcept {
  if (spare_count_ != 0 && hand_back(spares_[spare_count_ - 1])) --spare_count_;
}

}  // namespace mtp::impl
