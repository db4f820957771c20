// mtp::batch<T>: the handle of a batch submitted without waiting (thread_pool::submit_batch).
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include <mtp/core/impl/wait.hpp>
#include <mtp/core/result.hpp>

namespace mtp {

namespace impl {
/// What a submitted batch owns: its responses and completion; subclasses own the requests.
template <class T>
struct async_state {
  std::vector<result<T>> results;
  completion done;
  std::chrono::nanoseconds spin{};
  virtual ~async_state() = default;
};
}  // namespace impl

/// The responses of a submitted batch, in request order, once they have all arrived.
///
/// Threads: one owner at a time (movable, not copyable); workers fill it in the background.
/// Destroying a handle whose batch is still running waits for it: the workers write into the
/// handle's storage, so it must outlive them. That wait always ends: every queued request is
/// answered, also during shutdown.
template <class T>
class [[nodiscard]] batch {
 public:
  batch() = default;
  explicit batch(std::unique_ptr<impl::async_state<T>> state) noexcept : state_(std::move(state)) {}
  batch(batch&&) noexcept = default;
  batch& operator=(batch&& other) noexcept {
    if (this != &other) {
      finish();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  ~batch() { finish(); }

  /// Whether every response has arrived (never blocks).
  [[nodiscard]] bool ready() const noexcept { return state_ == nullptr || state_->done.done(); }

  /// Waits for every response; returns them in request order.
  std::span<result<T>> wait() {
    check();
    state_->done.wait(state_->spin);
    return state_->results;
  }

  /// Waits at most until `deadline`; returns ready().
  template <class Clock, class Duration>
  bool wait_until(std::chrono::time_point<Clock, Duration> deadline) {
    check();
    const auto steady = std::chrono::steady_clock::now() + (deadline - Clock::now());
    return state_->done.wait_until(state_->spin, std::chrono::time_point_cast<std::chrono::steady_clock::duration>(steady));
  }
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) {
    return wait_until(std::chrono::steady_clock::now() + timeout);
  }

  /// Waits, then moves the responses out; the handle is empty afterwards.
  std::vector<result<T>> take() {
    wait();
    std::vector<result<T>> out = std::move(state_->results);
    state_.reset();
    return out;
  }

  /// Number of requests in the batch.
  [[nodiscard]] std::size_t size() const noexcept { return state_ ? state_->results.size() : 0; }

 private:
  void check() const {
    if (state_ == nullptr) throw std::logic_error("mtp::batch: empty handle (moved from or taken)");
  }
  void finish() noexcept {
    if (state_ != nullptr) state_->done.wait(state_->spin);
  }

  std::unique_ptr<impl::async_state<T>> state_;
};

}  // namespace mtp
