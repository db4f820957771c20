// SPDX-License-Identifier: MIT
// The caller's side of a call in flight: where its responses gather (call_state, one result per
// request; broadcast_state, every item's), the remote shares waiting for their replies, what
// cancelling an asynchronous call needs, and where a timed caller waits.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <mtp/core/batch.hpp>
#include <mtp/core/result.hpp>
#include <mtp/core/this_worker.hpp>
#include <mtp/mpi/environment.hpp>
#include <mtp/mpi/impl/protocol.hpp>
#include <mtp/mpi/wire.hpp>

namespace mtp::mpi::impl {

class sharded_base;

// What cancelling an asynchronous call needs: the local share's handle and the (rank, call
// number) of each remote share. Lives inside the call's state (the handle aliases it).
struct cancel_control {
  std::mutex m;            // orders cancel() and abandon() against the completion
  bool completed = false;  // the callback has been claimed (or abandoned): cancelling is too late
  bool cancelled = false;
  sharded_base* pool = nullptr;  // alive while not completed: the call holds the pool's gate
  mtp::async_handle local;
  std::vector<std::pair<int, std::uint64_t>> remote;
};

// A caller waiting for replies, until done() or `until`: polls, making MPI progress itself when
// no other thread is (so its replies reach it with no hand-off), and yielding after every
// fourth round that found nothing (so that the threads that will answer can run on a shared
// CPU); then leaves progress to the communication thread. Yielding after every idle round gave
// the CPU away so often that the round trip took longer (10.0 against 8.0 us, 8.3 against 5.8
// context switches per round trip, at 2 ranks on 2 vCPUs).
// A pool worker waiting inside a handler does not make progress: delivering there would run
// other calls' callbacks inside an item's handler, and could arm a timer on its own worker
// ahead of an earlier create still in its queue; it polls yielding, as every caller did before.
template <class Done>
void drive_until(Done done, std::chrono::steady_clock::time_point until) {
  if (mtp::this_worker::is_worker()) {
    for (int k = 0; !done(); ++k) {
      if ((k & 15) == 15 && std::chrono::steady_clock::now() >= until) return;
      std::this_thread::yield();
    }
    return;
  }
  start_driving();
  for (int k = 0; !done(); ++k) {
    if ((k & 15) == 15 && std::chrono::steady_clock::now() >= until) break;
    if (!drive_progress() && (k & 3) == 3) std::this_thread::yield();
  }
  stop_driving();
}

// The responses of one call: one result per request; completed by the last share to arrive.
template <class T>
struct call_state {
  std::vector<result<T>> results;
  std::atomic<std::uint32_t> remaining{1};  // one per share, plus the caller's while it launches
  std::atomic<std::uint32_t> finished{0};
  std::atomic<std::uint32_t> borrowing{0};  // messages sending from the caller's storage
  std::function<void(std::vector<result<T>>&&)> on_done;  // empty: a caller waits
  std::function<void()> after;                              // runs after on_done (leaves the gate)
  cancel_control control;                                   // async calls only

  void arrive() {
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (on_done) {
      bool abandoned = false;
      {
        std::lock_guard lock(control.m);
        abandoned = std::exchange(control.completed, true);  // set by abandon(): the caller completed it
      }
      if (!abandoned) {
        try {
          on_done(std::move(results));
        } catch (...) {
          std::fputs("mtp::mpi: a completion callback threw; ignored\n", stderr);
        }
      }
      if (after) after();
    } else {
      finished.store(1, std::memory_order_release);
      finished.notify_one();
    }
  }
  // Polls for up to `spin` (drive_until), then sleeps.
  void wait(std::chrono::nanoseconds spin) {
    // acquire: pairs with arrive()'s release; the results are visible once it reads 1.
    drive_until([&] { return finished.load(std::memory_order_acquire) != 0; }, std::chrono::steady_clock::now() + spin);
    while (finished.load(std::memory_order_acquire) == 0) finished.wait(0, std::memory_order_acquire);
  }
  // A message that sends from the caller's storage: queued, then sent.
  void borrow() noexcept {
    // relaxed: read later by this same thread (wait_sent), and the message whose sending
    // counts it down is queued after this, through the engine's mutex.
    borrowing.fetch_add(1, std::memory_order_relaxed);
  }
  void sent() noexcept {
    // release: MPI's reads of the caller's storage happen before the caller reuses it.
    if (borrowing.fetch_sub(1, std::memory_order_release) == 1) borrowing.notify_all();
  }
  // Until no message of the call reads the caller's storage any more.
  void wait_sent() noexcept {
    // acquire: pairs with sent()'s release.
    for (std::uint32_t n = borrowing.load(std::memory_order_acquire); n != 0; n = borrowing.load(std::memory_order_acquire)) {
      borrowing.wait(n, std::memory_order_acquire);
    }
  }
};

// A remote share waiting for its reply.
struct pending {
  virtual void on_reply(wire::reader& in, std::uint32_t n) = 0;
  virtual ~pending() = default;
};

template <class T>
struct remote_share final : pending {
  std::shared_ptr<call_state<T>> state;
  std::vector<std::uint32_t> index;  // where each response goes
  void on_reply(wire::reader& in, std::uint32_t n) override {
    for (std::uint32_t i = 0; i < n && i < index.size(); ++i) read_result(in, state->results[index[i]]);
    state->arrive();
  }
};

// The responses of a broadcast: every item's (id, result), gathered from every rank.
template <class T>
struct broadcast_state {
  std::mutex m;
  std::condition_variable cv;
  struct part {  // one rank's answer, in ascending id order (as local_ids() gives them)
    std::vector<id_t> ids;
    std::vector<result<T>> results;
  };
  int left = 0;  // ranks still to answer
  std::vector<part> parts;

  void add(std::vector<id_t>&& ids, std::vector<result<T>>&& results) {
    std::lock_guard lock(m);  // notify under the lock: the waiter may return at once
    parts.push_back({std::move(ids), std::move(results)});
    if (--left == 0) cv.notify_all();
  }
  // Waits for every rank, then merges their answers into every (id, result) in ascending id
  // order: a k-way merge over a heap of the parts' heads (each result moves once).
  std::vector<std::pair<id_t, result<T>>> take() {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return left == 0; });
    std::size_t total = 0;
    std::vector<std::pair<id_t, std::uint32_t>> heads;  // (next id, part), a min-heap
    std::vector<std::size_t> at(parts.size(), 0);
    for (std::uint32_t p = 0; p < parts.size(); ++p) {
      total += parts[p].ids.size();
      if (!parts[p].ids.empty()) heads.emplace_back(parts[p].ids[0], p);
    }
    const auto later = [](const auto& a, const auto& b) { return a > b; };
    std::make_heap(heads.begin(), heads.end(), later);
    std::vector<std::pair<id_t, result<T>>> out;
    out.reserve(total);
    while (!heads.empty()) {
      std::pop_heap(heads.begin(), heads.end(), later);
      const std::uint32_t p = heads.back().second;
      heads.pop_back();
      part& from = parts[p];
      out.emplace_back(from.ids[at[p]], std::move(from.results[at[p]]));
      if (++at[p] < from.ids.size()) {
        heads.emplace_back(from.ids[at[p]], p);
        std::push_heap(heads.begin(), heads.end(), later);
      }
    }
    return out;
  }
};
template <class T>
struct broadcast_share final : pending {
  std::shared_ptr<broadcast_state<T>> state;
  void on_reply(wire::reader& in, std::uint32_t n) override {
    std::vector<id_t> ids(n);
    std::vector<result<T>> part(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      ids[i] = in.pod<id_t>();
      read_result(in, part[i]);
    }
    state->add(std::move(ids), std::move(part));
  }
};

template <class T>
struct timed_box {  // where a timed caller waits for its asynchronous call
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::atomic<bool> ready{false};  // `done`, for the polling phase of wait_until
  std::vector<result<T>> results;

  void put(std::vector<result<T>>&& rs) {
    std::lock_guard lock(m);  // notify under the lock: the waiter may return at once
    results = std::move(rs);
    done = true;
    ready.store(true, std::memory_order_release);  // release: the results before the flag
    cv.notify_all();
  }
  // True when the results arrived by `deadline`: polls for up to `spin` (drive_until), then
  // sleeps.
  bool wait_until(std::chrono::steady_clock::time_point deadline, std::chrono::nanoseconds spin) {
    const auto now = std::chrono::steady_clock::now();
    // acquire: pairs with put()'s release (the lock below orders the rest).
    drive_until([&] { return ready.load(std::memory_order_acquire); }, deadline - now < spin ? deadline : now + spin);
    std::unique_lock lock(m);
    if (deadline == std::chrono::steady_clock::time_point::max()) {
      cv.wait(lock, [&] { return done; });
      return true;
    }
    return cv.wait_until(lock, deadline, [&] { return done; });
  }
};

}  // namespace mtp::mpi::impl
