// SPDX-License-Identifier: MIT
// Helpers shared by the pool tests: pool options, bounded waits, a one-shot gate, a diagnostic
// sink, and a registry that tracks item lifetimes and the threads they lived on.
#pragma once

#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

// MTP_TEST_TSAN: 1 under ThreadSanitizer (tests use smaller sizes there).
#if defined(__SANITIZE_THREAD__)
#define MTP_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MTP_TEST_TSAN 1
#endif
#endif
#ifndef MTP_TEST_TSAN
#define MTP_TEST_TSAN 0
#endif

namespace mtp_test {

/// Options for a test pool: `workers` unpinned workers (pinning is irrelevant to these tests).
inline mtp::pool_options options(std::size_t workers = 2) {
  mtp::pool_options o;
  o.workers = workers;
  o.placement = mtp::plan_placement("none", workers);
  return o;
}

/// How long a blocking step of a test may take before the test reports a hang. Generous: the
/// tests also run under ThreadSanitizer on one CPU.
inline constexpr std::chrono::seconds k_bound{30};

/// What the heavier tests divide their sizes by: 8 under ThreadSanitizer, 1 elsewhere.
inline constexpr int k_scale = MTP_TEST_TSAN ? 8 : 1;

/// Runs `f` on another thread and returns what it returns (or rethrows what it throws). If it
/// has not finished within `limit`, records a failure naming the call site and then waits on
/// (a true hang is ended by the CTest timeout; nothing is detached).
template <class F>
auto bounded_at(const char* file, int line, F&& f, std::chrono::seconds limit = k_bound) {
  auto fut = std::async(std::launch::async, std::forward<F>(f));
  if (fut.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE_AT(file, line) << "blocking step did not finish within " << limit.count()
                               << " s: a hang (the CTest timeout will end the test)";
    std::fprintf(stderr, "%s:%d: blocking step still running after %lld s\n", file, line,
                 static_cast<long long>(limit.count()));
    std::fflush(stderr);
  }
  return fut.get();
}
#define MTP_BOUNDED(...) ::mtp_test::bounded_at(__FILE__, __LINE__, __VA_ARGS__)

/// Polls `pred` (yielding between polls) until it holds or `limit` passes; returns whether it
/// held. Only for states that announce themselves through no event, such as a sender asleep
/// until a full queue has room.
template <class P>
bool poll_until(P&& pred, std::chrono::milliseconds limit = k_bound) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::yield();
  }
  return true;
}

/// A one-shot event: open() once, any number of waiters. Built on a mutex and a condition
/// variable so that every sanitizer understands it.
class gate {
 public:
  void open() {
    // Notify under the lock: a waiter may destroy the gate as soon as it sees it open.
    std::lock_guard lock(m_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return open_; });
  }
  /// Waits at most `limit`; returns whether the gate is open.
  bool wait_for(std::chrono::milliseconds limit) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, limit, [&] { return open_; });
  }
  [[nodiscard]] bool is_open() {
    std::lock_guard lock(m_);
    return open_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// Opens a gate when the scope ends, so that a worker blocked on it is released even when an
/// assertion returns early (declare it after the pool: it must open before the pool shuts down).
class open_on_exit {
 public:
  explicit open_on_exit(gate& g) : g_(g) {}
  open_on_exit(const open_on_exit&) = delete;
  open_on_exit& operator=(const open_on_exit&) = delete;
  ~open_on_exit() { g_.open(); }

 private:
  gate& g_;
};

/// Joins a thread when the scope ends, so that an assertion that returns early (or an
/// exception) reports a failure instead of ending the process with a joinable std::thread.
/// Declare it after whatever the thread waits for is released on exit (an open_on_exit
/// declared after it opens first).
class join_on_exit {
 public:
  explicit join_on_exit(std::thread& t) : t_(t) {}
  join_on_exit(const join_on_exit&) = delete;
  join_on_exit& operator=(const join_on_exit&) = delete;
  ~join_on_exit() {
    if (t_.joinable()) t_.join();
  }

 private:
  std::thread& t_;
};

/// Collects diagnostics from any thread; tests wait for the ones they expect.
class diagnostic_sink {
 public:
  /// The callback to put in pool_options::on_diagnostic (the sink must outlive the pool).
  std::function<void(const mtp::diagnostic&)> callback() {
    return [this](const mtp::diagnostic& d) {
      std::lock_guard lock(m_);
      seen_.push_back(d);
      cv_.notify_all();
    };
  }
  /// Waits (bounded) until at least `n` diagnostics of kind `what` arrived; returns them all.
  std::vector<mtp::diagnostic> wait_for(mtp::diagnostic::kind what, std::size_t n,
                                        std::chrono::seconds limit = k_bound) {
    std::unique_lock lock(m_);
    const bool ok = cv_.wait_for(lock, limit, [&] { return count_locked(what) >= n; });
    EXPECT_TRUE(ok) << "expected " << n << " diagnostics of kind " << static_cast<int>(what) << ", got "
                    << count_locked(what);
    return of_kind_locked(what);
  }
  /// Waits (bounded) until at least `n` diagnostics of kind `what` satisfy `match`; returns
  /// those, in arrival order.
  template <class Match>
  std::vector<mtp::diagnostic> wait_for_if(mtp::diagnostic::kind what, std::size_t n, Match match,
                                           std::chrono::seconds limit = k_bound) {
    std::unique_lock lock(m_);
    auto matching = [&] {
      std::vector<mtp::diagnostic> out;
      for (const auto& d : seen_) {
        if (d.what == what && match(d)) out.push_back(d);
      }
      return out;
    };
    const bool ok = cv_.wait_for(lock, limit, [&] { return matching().size() >= n; });
    auto out = matching();
    EXPECT_TRUE(ok) << "expected " << n << " matching diagnostics of kind " << static_cast<int>(what) << ", got "
                    << out.size() << " (" << count_locked(what) << " of that kind in all)";
    return out;
  }
  /// Waits `window` for a diagnostic of kind `what` that must not come; returns whether none
  /// came (those already seen count too).
  bool none_within(mtp::diagnostic::kind what, std::chrono::milliseconds window) {
    std::unique_lock lock(m_);
    return !cv_.wait_for(lock, window, [&] { return count_locked(what) != 0; });
  }
  std::vector<mtp::diagnostic> of_kind(mtp::diagnostic::kind what) {
    std::lock_guard lock(m_);
    return of_kind_locked(what);
  }

 private:
  std::size_t count_locked(mtp::diagnostic::kind what) const {
    std::size_t n = 0;
    for (const auto& d : seen_) n += d.what == what ? 1 : 0;
    return n;
  }
  std::vector<mtp::diagnostic> of_kind_locked(mtp::diagnostic::kind what) const {
    std::vector<mtp::diagnostic> out;
    for (const auto& d : seen_) {
      if (d.what == what) out.push_back(d);
    }
    return out;
  }

  std::mutex m_;
  std::condition_variable cv_;
  std::vector<mtp::diagnostic> seen_;
};

/// Tracks item lifetimes by id: each construction and destruction, and the thread of each.
/// An id may live several times (create after remove); each life must begin and end on one
/// thread, and no id may be constructed while alive or destroyed while dead.
class lifetime_registry {
 public:
  struct record {
    std::thread::id born_on{};
    std::thread::id died_on{};
    int constructed = 0;
    int destroyed = 0;
    bool alive = false;
  };

  void born(mtp::id_t id) {
    std::lock_guard lock(m_);
    record& r = items_[id];
    if (r.alive) errors_.push_back("id " + std::to_string(id) + " constructed while alive");
    r.alive = true;
    r.born_on = std::this_thread::get_id();
    ++r.constructed;
  }
  void died(mtp::id_t id) {
    std::lock_guard lock(m_);
    record& r = items_[id];
    if (!r.alive) errors_.push_back("id " + std::to_string(id) + " destroyed while not alive");
    if (r.born_on != std::this_thread::get_id()) {
      errors_.push_back("id " + std::to_string(id) + " destroyed on another thread than its constructor's");
    }
    r.alive = false;
    r.died_on = std::this_thread::get_id();
    ++r.destroyed;
  }
  void reset() {
    std::lock_guard lock(m_);
    items_.clear();
    errors_.clear();
  }
  [[nodiscard]] std::size_t alive() {
    std::lock_guard lock(m_);
    std::size_t n = 0;
    for (const auto& [id, r] : items_) n += r.alive ? 1 : 0;
    return n;
  }
  [[nodiscard]] std::optional<record> find(mtp::id_t id) {
    std::lock_guard lock(m_);
    const auto it = items_.find(id);
    if (it == items_.end()) return std::nullopt;
    return it->second;
  }
  [[nodiscard]] std::map<mtp::id_t, record> all() {
    std::lock_guard lock(m_);
    return {items_.begin(), items_.end()};
  }
  [[nodiscard]] std::vector<std::string> errors() {
    std::lock_guard lock(m_);
    return errors_;
  }
  /// Expects no errors, nothing alive, and every id constructed exactly as often as destroyed.
  void expect_all_died_once_on_own_thread() {
    const auto errs = errors();
    EXPECT_TRUE(errs.empty()) << errs.size() << " lifetime errors, first: " << (errs.empty() ? "" : errs.front());
    for (const auto& [id, r] : all()) {
      EXPECT_FALSE(r.alive) << "id " << id << " never destroyed";
      EXPECT_EQ(r.constructed, r.destroyed) << "id " << id;
    }
  }

 private:
  std::mutex m_;
  std::map<mtp::id_t, record> items_;
  std::vector<std::string> errors_;
};

/// A request that runs an arbitrary function inside the item's handler (std::function: the
/// request travels by heap copy when posted).
struct run_fn {
  mtp::id_t id;
  std::function<void()> fn;
  using response_type = void;
};

/// The message of the pool_error `f` throws, checking its code, or a failure if it throws no
/// pool_error.
template <class F>
std::optional<mtp::pool_error> pool_error_of(F&& f) {
  try {
    f();
  } catch (const mtp::pool_error& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected mtp::pool_error, got std::exception: " << e.what();
    return std::nullopt;
  } catch (...) {
    ADD_FAILURE() << "expected mtp::pool_error, got a non-standard exception";
    return std::nullopt;
  }
  ADD_FAILURE() << "expected mtp::pool_error, nothing was thrown";
  return std::nullopt;
}

#define MTP_EXPECT_POOL_ERROR(code_, ...)                                           \
  do {                                                                              \
    const auto mtp_err_ = ::mtp_test::pool_error_of([&] { (void)(__VA_ARGS__); }); \
    if (mtp_err_) {                                                                 \
      EXPECT_EQ(mtp_err_->code(), code_) << mtp_err_->what();                       \
    }                                                                               \
  } while (false)

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace mtp_test
