// SPDX-License-Identifier: MIT
// The control thread of a sharded pool whose local queues are bounded: serves, in arrival
// order, the shares that wait for room (call_wait_op, the one message that blocks on the
// local pool: creates and removes go to it asynchronously) and, behind each, the later
// messages from the same source rank, which keeps per-sender order.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <mtp/mpi/impl/registry.hpp>

namespace mtp::mpi::impl {

class control_thread {
 public:
  /// Starts the thread, which serves messages for `pool` from `ranks` source ranks.
  control_thread(sharded_base& pool, int ranks);
  /// stop().
  ~control_thread();
  control_thread(const control_thread&) = delete;
  control_thread& operator=(const control_thread&) = delete;

  /// Whether messages from `source` wait for the thread: a later one from there queues too.
  [[nodiscard]] bool holds(int source) const noexcept {
    return queued_[source].load(std::memory_order_acquire) > 0;
  }
  /// Queues a copy of the message `data` from `source`, for `serve` to serve on the thread.
  void push(int source, const char* data, std::size_t size, serve_fn serve);
  /// Serves what is queued, then ends the thread. Idempotent.
  void stop();

 private:
  struct queued {
    int source;
    std::vector<char> bytes;
    serve_fn serve;
  };
  void loop();

  sharded_base& pool_;
  std::unique_ptr<std::atomic<int>[]> queued_;  // per source: messages waiting for the thread
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<queued> q_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is ready
};

}  // namespace mtp::mpi::impl
