// SPDX-License-Identifier: MIT
// Plain C++20 coroutines for tests, without a framework: a fire-and-forget task and a
// single-thread run loop to resume coroutines on (the scheduler given to mtp::async).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <deque>
#include <mutex>
#include <thread>

namespace mtp_test {

/// Exceptions that escaped a task; a test checks there were none.
inline std::atomic<int> g_escaped{0};

/// A fire-and-forget coroutine: starts at once, frees itself at the end; an escaping exception
/// is counted in g_escaped.
struct task {
  struct promise_type {
    task get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { g_escaped.fetch_add(1); }
  };
};

/// A single-thread run loop: post() from any thread, run_until() on the loop's thread.
class run_loop {
 public:
  void post(std::coroutine_handle<> h) {
    std::lock_guard lock(m_);
    queue_.push_back(h);
    cv_.notify_one();
  }
  /// Resumes posted coroutines on this thread until done() holds; false when `limit` passed
  /// first.
  template <class Done>
  bool run_until(Done done, std::chrono::seconds limit = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    owner_ = std::this_thread::get_id();
    while (!done()) {
      std::unique_lock lock(m_);
      if (!cv_.wait_until(lock, deadline, [&] { return !queue_.empty(); })) return done();
      const std::coroutine_handle<> h = queue_.front();
      queue_.pop_front();
      lock.unlock();
      h.resume();
    }
    return true;
  }
  [[nodiscard]] std::thread::id owner() const { return owner_; }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::coroutine_handle<>> queue_;
  std::thread::id owner_ = std::this_thread::get_id();
};

/// The scheduler that resumes a coroutine on `loop`.
struct on_loop {
  run_loop* loop;
  void operator()(std::coroutine_handle<> h) const { loop->post(h); }
};

}  // namespace mtp_test
