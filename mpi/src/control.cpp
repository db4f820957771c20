// SPDX-License-Identifier: MIT
// The control thread of a sharded pool with bounded queues (impl/control.hpp).
#include <mtp/mpi/impl/control.hpp>

#include <cstddef>
#include <utility>

#include <mtp/mpi/impl/protocol.hpp>

namespace mtp::mpi::impl {

control_thread::control_thread(sharded_base& pool, int ranks)
    : pool_(pool), queued_(std::make_unique<std::atomic<int>[]>(static_cast<std::size_t>(ranks))) {
  for (int r = 0; r < ranks; ++r) queued_[r].store(0);
  thread_ = std::thread([this] { loop(); });
}

control_thread::~control_thread() { stop(); }

void control_thread::push(int source, const char* data, std::size_t size, serve_fn serve) {
  queued_[source].fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(m_);
    q_.push_back({source, std::vector<char>(data, data + size), serve});
  }
  cv_.notify_one();
}

void control_thread::stop() {
  {
    std::lock_guard lock(m_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void control_thread::loop() {
  for (;;) {
    queued q;
    {
      std::unique_lock lock(m_);
      cv_.wait(lock, [&] { return !q_.empty() || stop_; });
      if (q_.empty()) return;
      q = std::move(q_.front());
      q_.pop_front();
    }
    wire::reader in(q.bytes.data(), q.bytes.size());
    const auto h = in.pod<header>();
    q.serve(pool_, q.source, h.call, in, h.count);
    queued_[q.source].fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace mtp::mpi::impl
