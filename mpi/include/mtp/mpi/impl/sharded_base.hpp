// SPDX-License-Identifier: MIT
// The part of a sharded pool that does not depend on its item type: what the communication
// thread sees of it (incoming messages dispatched to their operations, the counts that tell
// when it is quiescent), the gate that shutdown closes, calls waiting for their replies,
// replies, cancellation on the caller's and on the serving side, remote timers, and the
// control thread of pools with bounded queues. Its functions are in src/sharded_base.cpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <mtp/core/batch.hpp>
#include <mtp/core/options.hpp>
#include <mtp/core/result.hpp>
#include <mtp/core/timer.hpp>
#include <mtp/mpi/environment.hpp>
#include <mtp/mpi/impl/call_state.hpp>
#include <mtp/mpi/impl/control.hpp>
#include <mtp/mpi/impl/protocol.hpp>
#include <mtp/mpi/impl/registry.hpp>
#include <mtp/mpi/wire.hpp>

namespace mtp::mpi::impl {

// The part of the pool the communication thread sees.
class sharded_base : public channel_client {
 public:
  void on_message(int source, const char* data, std::size_t size) override;

  [[nodiscard]] bool quiescent() const override;
  [[nodiscard]] bool idle() const override;
  /// Whether the local pool is quiescent (thread_pool::quiescent()).
  [[nodiscard]] virtual bool local_quiescent() const noexcept = 0;

  /// What a remote timer's handle keeps of its pool: the pool, until it shuts down.
  struct timer_link {
    std::mutex m;
    sharded_base* pool = nullptr;
  };
  /// The caller side of a remote timer's cancel(): sends the cancellation to the owning rank;
  /// false when the pool has stopped (or is gone) or no message could be made.
  static bool cancel_remote_timer(const std::weak_ptr<timer_link>& link, int dest, std::uint64_t call) noexcept;

  // The caller side of cancellation: skips the local share's requests that have not started
  // and asks each remote rank to do the same with its share. Too late once the callback has
  // been claimed; until then the call holds the gate, so the pool and its channel are alive.
  static void cancel(cancel_control& c) noexcept;
  // cancel(), and takes the completion over if the callback has not been claimed: true when
  // it will never run (the call still finishes on every rank, holding the gate until then).
  static bool abandon(cancel_control& c) noexcept;

 protected:
  sharded_base();
  ~sharded_base();

  // The gate: calls in flight on this rank; closed by shutdown.
  bool enter() noexcept {
    inflight_.fetch_add(1, std::memory_order_seq_cst);
    if (stopping_.load(std::memory_order_seq_cst)) {
      inflight_.fetch_sub(1, std::memory_order_seq_cst);
      return false;
    }
    return true;
  }
  void leave() noexcept { inflight_.fetch_sub(1, std::memory_order_seq_cst); }
  [[nodiscard]] bool stopping() const noexcept { return stopping_.load(std::memory_order_seq_cst); }
  struct gate_guard {
    sharded_base* p;
    ~gate_guard() { if (p) p->leave(); }
  };

  // A call or post message with its header; the caller appends the entries.
  static wire::writer start_message(kind what, std::uint64_t op, std::uint32_t n, std::uint64_t call);
  // Registers `p` for the reply to call number `call`, then queues the message; `sent` runs
  // once the message's borrowed parts, if any, are no longer read.
  void send_call(int dest, std::uint64_t call, std::unique_ptr<pending> p, wire::writer&& w,
                 std::function<void()> sent = {});
  std::uint64_t next_call() noexcept { return calls_.fetch_add(1, std::memory_order_relaxed); }

  template <class T>
  void reply(int source, std::uint64_t call, const std::vector<result<T>>& rs) {
    wire::writer w = start_message(kind::reply, 0, static_cast<std::uint32_t>(rs.size()), call);
    w.reserve(sizeof(header) + rs.size() * (1 + sizeof(result<T>)));
    for (const auto& r : rs) put_result(w, r, rank_);
    send_bytes(channel_, source, std::move(w.bytes()));
    done_.fetch_add(1, std::memory_order_release);
  }
  /// Answers each of a share's `n` requests with errc::handler_failed and the exception being
  /// handled (a request that would not decode, or no memory): call it from a catch block.
  template <class T>
  void reply_failed(int source, std::uint64_t call, std::uint32_t n) {
    std::vector<result<T>> failed(n);
    for (auto& f : failed) f.set_error(error{errc::handler_failed, 0, std::current_exception()});
    reply(source, call, failed);
  }
  void served() noexcept { done_.fetch_add(1, std::memory_order_release); }
  // A broadcast's reply: each item's id, then its result.
  template <class T>
  void reply_items(int source, std::uint64_t call, const std::vector<id_t>& ids, const std::vector<result<T>>& rs) {
    wire::writer w = start_message(kind::reply, 0, static_cast<std::uint32_t>(rs.size()), call);
    for (std::size_t i = 0; i < rs.size(); ++i) {
      w.pod(ids[i]);
      put_result(w, rs[i], rank_);
    }
    send_bytes(channel_, source, std::move(w.bytes()));
    done_.fetch_add(1, std::memory_order_release);
  }

  // The serving side of cancellation: the local handle of each share being served, by (source
  // rank, call number), until it completes. A share that completes before it was remembered
  // leaves a mark, so that remembering it then keeps nothing.
  // Without memory for an entry, a share cannot be cancelled; it still runs and answers.
  void remember(int source, std::uint64_t call, mtp::async_handle h) noexcept;
  void forget(int source, std::uint64_t call) noexcept;
  /// Serves a share on an asynchronous form of the local pool, cancellable while it runs:
  /// `start(answer)` decodes the share, starts it with a callback that ends with
  /// `answer(results)` (which replies and forgets the share) and returns the local handle,
  /// remembered here. A share that would not decode (or no memory) fails whole.
  template <class T, class Start>
  void serve_async_share(int source, std::uint64_t call, std::uint32_t n, Start start) {
    mtp::async_handle h;
    try {
      h = start([this, source, call](const std::vector<result<T>>& rs) {
        reply(source, call, rs);
        forget(source, call);
      });
    } catch (...) {
      reply_failed<T>(source, call, n);
      return;
    }
    remember(source, call, std::move(h));
  }

  // Closes the gate, then (collective) closes the channel once every rank is done, and stops
  // the control thread.
  void close();

  // Starts the control thread; before the channel opens (the communication thread reads
  // control_ unguarded). Only pools with bounded queues need it (see control_).
  void start_control_thread() { control_ = std::make_unique<control_thread>(*this, ranks_); }

  channel* channel_ = nullptr;
  const int rank_;
  const int ranks_;

  // The serving side of remote timers: their handles by (source rank, timer number), so that
  // a cancellation can find them. Entries of timers that can no longer start are swept out
  // when the map has doubled since the last sweep. Without memory, a timer is not kept: it
  // still fires, and its cancellation finds nothing.
  void keep_remote_timer(int source, std::uint64_t call, mtp::timer t) noexcept;
  std::shared_ptr<timer_link> timer_link_ = std::make_shared<timer_link>();

 private:
  static void cancel_locked(cancel_control& c) noexcept;  // cancel(), under c.m
  // A caller gave up on call `call`: skip what has not started of the share being served (a
  // cancel queues behind its call like any message from that source; a share already
  // answered has nothing left to skip).
  struct cancel_tag;
  static void serve_cancel(sharded_base& self, int source, std::uint64_t call, wire::reader&, std::uint32_t);
  static const std::uint64_t cancel_key;

  // A remote timer's cancellation (after its arm: one pair of ranks keeps its order).
  struct timer_cancel_tag;
  static void serve_timer_cancel(sharded_base& self, int source, std::uint64_t call, wire::reader&, std::uint32_t);
  static const std::uint64_t timer_cancel_key;

  std::atomic<bool> stopping_{false};
  std::atomic<long long> inflight_{0};
  std::atomic<long long> started_{0};
  std::atomic<long long> done_{0};
  std::atomic<std::uint64_t> calls_{1};
  std::mutex pending_m_;
  std::unordered_map<std::uint64_t, pending*> pending_;
  std::mutex serving_m_;
  std::map<std::pair<int, std::uint64_t>, mtp::async_handle> serving_;
  std::set<std::pair<int, std::uint64_t>> finished_early_;
  std::mutex timers_m_;
  std::map<std::pair<int, std::uint64_t>, mtp::timer> remote_timers_;
  std::size_t timers_sweep_at_ = 64;
  // Serves the shares that wait for room in a bounded queue (call_wait_op), and behind each
  // the later messages from the same source, in arrival order. Waiting for room is the one
  // blocking step left in serving other ranks (create and remove go to the local pool with
  // create_batch_async / remove_batch_async by the thread that delivers them), and the local
  // pool has no asynchronous form of it, so a thread waits. It exists only when the local
  // pool's queues are bounded (start_control_thread): by default a rank has no such thread.
  std::unique_ptr<control_thread> control_;
};

// ---- Helpers of sharded_pool that do not depend on its item type ----------------------------

/// Pins the communication thread to `cpus`, the CPUs the local pool keeps for callers (none:
/// leaves it alone, returns 0). Returns the token for unpin_communication_thread; a failure
/// returns 0 and goes to `on_diagnostic` (pinning_failed), or to stderr without one.
std::uint64_t pin_for_callers(const std::vector<unsigned>& cpus,
                              const std::function<void(const diagnostic&)>& on_diagnostic);
/// A post from another rank failed: to `on_diagnostic` (post_failed), or to stderr without one.
void report_post(const std::function<void(const diagnostic&)>& on_diagnostic, const error& e);
/// Nanoseconds, saturated to what the wire carries (beyond it: never; negative: now).
[[nodiscard]] std::int64_t saturated_ns(std::chrono::duration<long double, std::nano> d) noexcept;

}  // namespace mtp::mpi::impl
