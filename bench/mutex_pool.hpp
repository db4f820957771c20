// SPDX-License-Identifier: MIT
// Baseline: the usual way to share stateful objects with a thread pool. Worker threads take
// closures from one queue guarded by a mutex and a condition variable; each object carries its
// own std::mutex that every closure touching it locks. Callers wait for replies on a
// mutex + condition variable latch. Deliberately plain: this is what the pool replaces.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace bench {

class mutex_thread_pool {
 public:
  explicit mutex_thread_pool(std::size_t threads) {
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }
  ~mutex_thread_pool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
  }
  mutex_thread_pool(const mutex_thread_pool&) = delete;
  mutex_thread_pool& operator=(const mutex_thread_pool&) = delete;

  void submit(std::function<void()> job) {
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    ready_.notify_one();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

/// Counts down to zero; wait() blocks on a condition variable until then.
class latch {
 public:
  void reset(std::size_t n) {
    std::lock_guard lock(mutex_);
    left_ = n;
  }
  void arrive() {
    std::lock_guard lock(mutex_);
    if (--left_ == 0) done_.notify_one();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return left_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  std::size_t left_ = 0;
};

/// Objects of type T by id, each behind its own mutex, used from a mutex_thread_pool.
template <class T>
class locked_objects {
 public:
  struct slot {
    template <class... A>
    explicit slot(A&&... a) : value(std::forward<A>(a)...) {}
    std::mutex mutex;
    T value;
  };

  template <class... A>
  void create(std::uint64_t id, A&&... args) {
    auto s = std::make_unique<slot>(id, std::forward<A>(args)...);
    std::unique_lock lock(map_mutex_);
    map_.emplace(id, std::move(s));
  }
  void remove(std::uint64_t id) {
    std::unique_lock lock(map_mutex_);
    map_.erase(id);
  }
  /// Runs f(object) under the object's mutex; returns its result.
  template <class F>
  decltype(auto) with(std::uint64_t id, F&& f) {
    slot* s = nullptr;
    {
      std::shared_lock lock(map_mutex_);
      s = map_.at(id).get();
    }
    std::lock_guard lock(s->mutex);
    return f(s->value);
  }
  std::size_t size() {
    std::shared_lock lock(map_mutex_);
    return map_.size();
  }

 private:
  std::shared_mutex map_mutex_;
  std::unordered_map<std::uint64_t, std::unique_ptr<slot>> map_;
};

}  // namespace bench
