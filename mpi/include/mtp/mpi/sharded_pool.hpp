// SPDX-License-Identifier: MIT
// mtp::mpi::sharded_pool<Item>: one mtp::thread_pool<Item> per MPI rank, one id space.
//
// Every rank runs the same program (SPMD) and builds the sharded pool collectively. An id
// belongs to one rank: `id % ranks` by default, or sharded_options::router (a pure function
// of the id, the same on every rank). Any thread on any rank may create, remove, send, post
// for any id; the local share of a call goes straight to the local pool, each remote share
// travels as one MPI message per destination rank and is answered by one message.
//
// Guarantees (those of the local pool, across ranks)
//  - Messages from one sending thread to one item run in the order sent (create, requests,
//    post, remove alike), whatever rank the item lives on. Causal order holds through
//    answers: a message sent after the reply to (or the callback of) an earlier one runs after
//    it. It does not hold through a third rank: MPI orders messages per pair of ranks only, so
//    a post from rank 0 to an item on rank 1, then a request from rank 0 to rank 2 whose
//    handler sends to the same item, may reach it first.
//  - Batch responses come back in request order, one mtp::result per request.
//  - Errors keep their codes: unknown_id, duplicate_id, constructor_failed, handler_failed,
//    hook_failed, invalid_route (from the local router of the owning rank). A handler's or
//    constructor's exception thrown on another rank arrives as mtp::mpi::remote_error (its
//    type name and what()), in result::error().exception; result::value() throws it.
//  - Shutdown is collective: every rank calls shutdown() (or destroys the pool). From its
//    call on, calls made on that rank, from any thread including its items' handlers, fail
//    with errc::pool_stopped; the rank keeps answering other ranks until every rank has
//    called shutdown and every message has been answered (counting termination on the
//    communication thread); then each rank shuts its local pool down (items destroyed on
//    their threads) and shutdown() returns.
//  - A rank that dies (crash, abort, uncaught exception) ends the job: MPI's default error
//    handler (MPI_ERRORS_ARE_FATAL) aborts every rank, and mpirun reports the rank that
//    failed. No call returns an error for it.
//
// Requests, responses and constructor arguments cross ranks as bytes when trivially copyable,
// through cereal otherwise (see wire.hpp). Method messages (make_call) hold a member function
// pointer, an address that differs between processes: they are refused at compile time; use
// pool.call<&Item::member>(id, args...), which names the member as a template argument.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include <mtp/core/batch.hpp>
#include <mtp/core/forwarding.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/options.hpp>
#include <mtp/core/result.hpp>
#include <mtp/core/this_worker.hpp>
#include <mtp/core/thread_pool.hpp>
#include <mtp/mpi/environment.hpp>
#include <mtp/mpi/wire.hpp>

namespace mtp::mpi {

/// How a sharded pool is built.
struct sharded_options {
  /// The local pool on each rank (workers, placement, ...). Its on_diagnostic also receives
  /// failures of posts that came from other ranks.
  mtp::pool_options local{};
  /// Maps an id to its rank in [0, ranks). Unset: id % ranks. It must be a pure function of
  /// the id, the same on every rank.
  std::function<int(id_t id, int ranks)> router{};
};

namespace impl {

enum class kind : std::uint8_t { call = 1, post = 2, reply = 3 };

struct header {
  kind what;
  std::uint8_t pad[3];
  std::uint32_t count;
  std::uint64_t op;    // the registered operation (call and post)
  std::uint64_t call;  // the caller's call number, echoed by the reply
};

class sharded_base;
using serve_fn = void (*)(sharded_base& pool, int source, std::uint64_t call, wire::reader& in, std::uint32_t n);
struct op_entry {
  serve_fn serve;
  bool control;  // create or remove: blocking on the local pool, run by the control thread
};

inline std::unordered_map<std::uint64_t, op_entry>& op_registry() {
  static std::unordered_map<std::uint64_t, op_entry> map;
  return map;
}
inline std::uint64_t fnv1a(const char* s) {
  std::uint64_t h = 1469598103934665603ull;
  for (; *s != 0; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ull;
  return h;
}
// Runs during static initialisation, so every rank (one program) knows every operation any
// rank can send before main starts, whatever code path each rank takes.
template <class Tag>
std::uint64_t register_op(serve_fn serve, bool control) {
  const std::uint64_t key = fnv1a(typeid(Tag).name());
  auto [it, fresh] = op_registry().emplace(key, op_entry{serve, control});
  if (!fresh && it->second.serve != serve) {
    std::fprintf(stderr, "mtp::mpi: two operations share the key %llu\n", static_cast<unsigned long long>(key));
    std::abort();
  }
  return key;
}

// What cancelling an asynchronous call needs: the local share's handle and the (rank, call
// number) of each remote share. Lives inside the call's state (the handle aliases it).
struct cancel_control {
  std::mutex m;            // orders cancel() against the completion
  bool completed = false;  // the callback has been claimed: cancelling is too late
  bool cancelled = false;
  sharded_base* pool = nullptr;  // alive while not completed: the call holds the pool's gate
  mtp::async_handle local;
  std::vector<std::pair<int, std::uint64_t>> remote;
};

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
      {
        std::lock_guard lock(control.m);
        control.completed = true;
      }
      try {
        on_done(std::move(results));
      } catch (...) {
        std::fputs("mtp::mpi: a completion callback threw; ignored\n", stderr);
      }
      if (after) after();
    } else {
      finished.store(1, std::memory_order_release);
      finished.notify_one();
    }
  }
  // Polls (yielding, so that the threads that will answer can run on a shared CPU) for up to
  // `spin`, then sleeps.
  void wait(std::chrono::nanoseconds spin) {
    const auto until = std::chrono::steady_clock::now() + spin;
    for (int k = 0; finished.load(std::memory_order_acquire) == 0; ++k) {
      if ((k & 15) == 15 && std::chrono::steady_clock::now() >= until) break;
      std::this_thread::yield();
    }
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

// A result on the wire: [u8 0][value], or [u8 1][u8 code][u64 id][u8 has exception]
// then [i32 rank thrown on][type][what].
template <class T>
void put_result(wire::writer& w, const result<T>& r, int here) {
  if (r.has_value()) {
    w.pod(std::uint8_t{0});
    if constexpr (!std::is_void_v<T>) wire::put(w, r.value());
    return;
  }
  const error& e = r.error();
  w.pod(std::uint8_t{1});
  w.pod(static_cast<std::uint8_t>(e.code));
  w.pod(static_cast<std::uint64_t>(e.id));
  w.pod(static_cast<std::uint8_t>(e.exception ? 1 : 0));
  if (e.exception) {
    std::string type, what;
    w.pod(static_cast<std::int32_t>(describe(e.exception, here, type, what)));
    w.str(type);
    w.str(what);
  }
}

// Reads a result into `slot`; a large value goes through the heap, not the stack.
template <class T>
void read_result(wire::reader& in, result<T>& slot) {
  if (in.pod<std::uint8_t>() == 0) {
    if constexpr (std::is_void_v<T>) {
      slot.emplace();
    } else if constexpr (std::is_trivially_copyable_v<T> && sizeof(T) > wire::k_stack_max) {
      const wire::decoded<T> v(in, 1);  // in the message where aligned: one copy, into the slot
      slot.emplace(*v.begin());
    } else {
      slot.emplace(wire::get<T>(in));
    }
    return;
  }
  error e;
  e.code = static_cast<errc>(in.pod<std::uint8_t>());
  e.id = in.pod<std::uint64_t>();
  if (in.pod<std::uint8_t>() != 0) {
    const int thrown_on = in.pod<std::int32_t>();
    std::string type = in.str();
    std::string what = in.str();
    e.exception = std::make_exception_ptr(remote_error(thrown_on, std::move(type), std::move(what)));
  }
  slot.set_error(std::move(e));
}

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

// The part of the pool the communication thread sees.
class sharded_base : public channel_client {
 public:
  void on_message(int source, const char* data, std::size_t size) override {
    wire::reader in(data, size);
    const auto h = in.pod<header>();
    if (h.what == kind::reply) {
      std::unique_ptr<pending> p;
      {
        std::lock_guard lock(pending_m_);
        auto it = pending_.find(h.call);
        if (it == pending_.end()) return;
        p.reset(it->second);
        pending_.erase(it);
      }
      p->on_reply(in, h.count);
      return;
    }
    const auto entry = op_registry().find(h.op);
    if (entry == op_registry().end()) {
      std::fprintf(stderr, "mtp::mpi: rank %d sent an unknown operation; ignored\n", source);
      return;
    }
    started_.fetch_add(1, std::memory_order_relaxed);
    // Messages of one source stay in order: once one waits for the control thread, those
    // behind it from the same source queue behind it.
    if (entry->second.control || queued_[source].load(std::memory_order_acquire) > 0) {
      queued_[source].fetch_add(1, std::memory_order_relaxed);
      {
        std::lock_guard lock(control_m_);
        control_q_.push_back({source, std::vector<char>(data, data + size), entry->second.serve});
      }
      control_cv_.notify_one();
      return;
    }
    serve_now(entry->second.serve, source, h, in);
  }

  [[nodiscard]] bool quiescent() const override {
    return stopping_.load(std::memory_order_seq_cst) && inflight_.load(std::memory_order_seq_cst) == 0 &&
           done_.load(std::memory_order_acquire) == started_.load(std::memory_order_acquire);
  }
  // seq_cst / acquire: as in quiescent(); the local pool is asked last, so that a message its
  // items sent before it went quiet is already counted above.
  [[nodiscard]] bool idle() const override {
    return inflight_.load(std::memory_order_seq_cst) == 0 &&
           done_.load(std::memory_order_acquire) == started_.load(std::memory_order_acquire) && local_quiescent();
  }
  /// Whether the local pool is quiescent (thread_pool::quiescent()).
  [[nodiscard]] virtual bool local_quiescent() const noexcept = 0;

  /// What a remote timer's handle keeps of its pool: the pool, until it shuts down.
  struct timer_link {
    std::mutex m;
    sharded_base* pool = nullptr;
  };
  /// The caller side of a remote timer's cancel(): sends the cancellation to the owning rank;
  /// false when the pool has stopped (or is gone) or no message could be made.
  static bool cancel_remote_timer(const std::weak_ptr<timer_link>& link, int dest, std::uint64_t call) noexcept {
    const std::shared_ptr<timer_link> l = link.lock();
    if (l == nullptr) return false;
    std::lock_guard lock(l->m);  // the pool cannot shut down past close() meanwhile
    if (l->pool == nullptr || !l->pool->enter()) return false;
    gate_guard g{l->pool};
    try {
      wire::writer w = start_message(kind::post, timer_cancel_key, 0, call);
      send_bytes(l->pool->channel_, dest, std::move(w.bytes()));
      return true;
    } catch (...) {  // no memory for the message
      return false;
    }
  }

  // The caller side of cancellation: skips the local share's requests that have not started
  // and asks each remote rank to do the same with its share. Too late once the callback has
  // been claimed; until then the call holds the gate, so the pool and its channel are alive.
  static void cancel(cancel_control& c) noexcept {
    std::lock_guard lock(c.m);
    if (c.completed || c.cancelled) return;
    c.cancelled = true;
    c.local.cancel();
    for (const auto& [dest, call] : c.remote) {
      try {
        wire::writer w = start_message(kind::post, cancel_key, 0, call);
        send_bytes(c.pool->channel_, dest, std::move(w.bytes()));
      } catch (...) {  // no memory for the message: that share runs in full, as if too late
      }
    }
  }

 protected:
  sharded_base() : rank_(environment::current().rank()), ranks_(environment::current().size()),
                   queued_(std::make_unique<std::atomic<int>[]>(static_cast<std::size_t>(ranks_))) {
    for (int r = 0; r < ranks_; ++r) queued_[r].store(0);
    timer_link_->pool = this;
    control_ = std::thread([this] { control_loop(); });
  }
  ~sharded_base() { stop_control(); }

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
  static wire::writer start_message(kind what, std::uint64_t op, std::uint32_t n, std::uint64_t call) {
    wire::writer w(take_buffer());
    header h{};
    h.what = what;
    h.count = n;
    h.op = op;
    h.call = call;
    w.pod(h);
    return w;
  }
  // Registers `p` for the reply to call number `call`, then queues the message; `sent` runs
  // once the message's borrowed parts, if any, are no longer read.
  void send_call(int dest, std::uint64_t call, std::unique_ptr<pending> p, wire::writer&& w,
                 std::function<void()> sent = {}) {
    {
      std::lock_guard lock(pending_m_);
      pending_.emplace(call, p.release());
    }
    if (w.borrowed_parts().empty()) send_bytes(channel_, dest, std::move(w.bytes()));
    else send_borrowing(channel_, dest, std::move(w.bytes()), std::move(w.borrowed_parts()), std::move(sent));
  }
  std::uint64_t next_call() noexcept { return calls_.fetch_add(1, std::memory_order_relaxed); }

  template <class T>
  void reply(int source, std::uint64_t call, const std::vector<result<T>>& rs) {
    wire::writer w = start_message(kind::reply, 0, static_cast<std::uint32_t>(rs.size()), call);
    w.reserve(sizeof(header) + rs.size() * (1 + sizeof(result<T>)));
    for (const auto& r : rs) put_result(w, r, rank_);
    send_bytes(channel_, source, std::move(w.bytes()));
    done_.fetch_add(1, std::memory_order_release);
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
  void remember(int source, std::uint64_t call, mtp::async_handle h) noexcept {
    std::lock_guard lock(serving_m_);
    if (finished_early_.erase({source, call}) != 0) return;
    try {
      serving_.emplace(std::pair{source, call}, std::move(h));
    } catch (...) {
    }
  }
  void forget(int source, std::uint64_t call) noexcept {
    std::lock_guard lock(serving_m_);
    if (serving_.erase({source, call}) != 0) return;
    try {
      finished_early_.emplace(source, call);
    } catch (...) {
    }
  }

  void close() {
    {
      std::lock_guard lock(timer_link_->m);  // remote timers' handles stop sending from here on
      timer_link_->pool = nullptr;
    }
    stopping_.store(true, std::memory_order_seq_cst);
    close_channel(channel_);  // collective; returns once every rank is done
    channel_ = nullptr;
    stop_control();
  }

  channel* channel_ = nullptr;
  const int rank_;
  const int ranks_;

 private:
  struct queued {
    int source;
    std::vector<char> bytes;
    serve_fn serve;
  };
  void serve_now(serve_fn serve, int source, const header& h, wire::reader& in) { serve(*this, source, h.call, in, h.count); }

  // A caller gave up on call `call`: skip what has not started of the share being served (a
  // cancel queues behind its call like any message from that source; a share already
  // answered has nothing left to skip).
  struct cancel_tag {};
  static void serve_cancel(sharded_base& self, int source, std::uint64_t call, wire::reader&, std::uint32_t) {
    {
      std::lock_guard lock(self.serving_m_);
      const auto it = self.serving_.find({source, call});
      if (it != self.serving_.end()) it->second.cancel();
    }
    self.served();
  }
  static inline const std::uint64_t cancel_key = register_op<cancel_tag>(&serve_cancel, false);

  // A remote timer's cancellation (after its arm: one pair of ranks keeps its order).
  struct timer_cancel_tag {};
  static void serve_timer_cancel(sharded_base& self, int source, std::uint64_t call, wire::reader&, std::uint32_t) {
    {
      std::lock_guard lock(self.timers_m_);
      const auto it = self.remote_timers_.find({source, call});
      if (it != self.remote_timers_.end()) {
        it->second.cancel();
        self.remote_timers_.erase(it);
      }
    }
    self.served();
  }
  static inline const std::uint64_t timer_cancel_key = register_op<timer_cancel_tag>(&serve_timer_cancel, false);

 protected:
  // The serving side of remote timers: their handles by (source rank, timer number), so that
  // a cancellation can find them. Entries of timers that can no longer start are swept out
  // when the map has doubled since the last sweep. Without memory, a timer is not kept: it
  // still fires, and its cancellation finds nothing.
  void keep_remote_timer(int source, std::uint64_t call, mtp::timer t) noexcept {
    std::lock_guard lock(timers_m_);
    if (remote_timers_.size() >= timers_sweep_at_) {
      std::erase_if(remote_timers_, [](const auto& e) { return !e.second.pending(); });
      timers_sweep_at_ = std::max<std::size_t>(64, 2 * remote_timers_.size());
    }
    try {
      remote_timers_.insert_or_assign(std::pair{source, call}, std::move(t));
    } catch (...) {
    }
  }
  std::shared_ptr<timer_link> timer_link_ = std::make_shared<timer_link>();

 private:

  void control_loop() {
    for (;;) {
      queued q;
      {
        std::unique_lock lock(control_m_);
        control_cv_.wait(lock, [&] { return !control_q_.empty() || control_stop_; });
        if (control_q_.empty()) return;
        q = std::move(control_q_.front());
        control_q_.pop_front();
      }
      wire::reader in(q.bytes.data(), q.bytes.size());
      const auto h = in.pod<header>();
      serve_now(q.serve, q.source, h, in);
      queued_[q.source].fetch_sub(1, std::memory_order_release);
    }
  }
  void stop_control() {
    {
      std::lock_guard lock(control_m_);
      if (control_stop_) return;
      control_stop_ = true;
    }
    control_cv_.notify_one();
    if (control_.joinable()) control_.join();
  }

  std::atomic<bool> stopping_{false};
  std::atomic<long long> inflight_{0};
  std::atomic<long long> started_{0};
  std::atomic<long long> done_{0};
  std::atomic<std::uint64_t> calls_{1};
  std::mutex pending_m_;
  std::unordered_map<std::uint64_t, pending*> pending_;
  std::unique_ptr<std::atomic<int>[]> queued_;  // per source: messages waiting for the control thread
  std::mutex control_m_;
  std::condition_variable control_cv_;
  std::deque<queued> control_q_;
  bool control_stop_ = false;
  std::thread control_;  // runs create and remove (blocking on the local pool) in arrival order
  std::mutex serving_m_;
  std::map<std::pair<int, std::uint64_t>, mtp::async_handle> serving_;
  std::set<std::pair<int, std::uint64_t>> finished_early_;
  std::mutex timers_m_;
  std::map<std::pair<int, std::uint64_t>, mtp::timer> remote_timers_;
  std::size_t timers_sweep_at_ = 64;
};

template <class Tuple>
inline constexpr bool no_pointers = true;
template <class... S>
inline constexpr bool no_pointers<std::tuple<S...>> = (!std::is_pointer_v<S> && ...);

template <class R>
constexpr void check_remote_request() {
  static_assert(!mtp::is_method_call_v<R>,
                "mtp::mpi: method messages (make_call) hold a member function pointer, which differs between "
                "processes; use pool.call<&Item::member>(id, args...) or an explicit message struct");
  if constexpr (mtp::is_member_call_v<R>) {
    static_assert(no_pointers<typename R::traits::args>,
                  "mtp::mpi: this member function takes a pointer, which would cross ranks as an address; take a "
                  "value (std::string, ...) instead");
  }
  static_assert(wire::cannot_cross_ranks<R>::ok);
  if constexpr (!std::is_void_v<response_t<R>>) static_assert(wire::cannot_cross_ranks<response_t<R>>::ok);
}

template <class T>
struct timed_box {  // where a timed caller waits for its asynchronous call
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::vector<result<T>> results;

  void put(std::vector<result<T>>&& rs) {
    std::lock_guard lock(m);  // notify under the lock: the waiter may return at once
    results = std::move(rs);
    done = true;
    cv.notify_all();
  }
  // True when the results arrived by `deadline`.
  bool wait_until(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(m);
    if (deadline == std::chrono::steady_clock::time_point::max()) {
      cv.wait(lock, [&] { return done; });
      return true;
    }
    return cv.wait_until(lock, deadline, [&] { return done; });
  }
};

}  // namespace impl

/// A delayed or periodic message scheduled through a sharded pool (post_after, post_at,
/// post_every). Dropping it does not cancel it; it may outlive the pool.
class sharded_timer {
 public:
  sharded_timer() = default;
  sharded_timer(sharded_timer&&) noexcept = default;
  sharded_timer& operator=(sharded_timer&&) noexcept = default;
  sharded_timer(const sharded_timer&) = delete;
  sharded_timer& operator=(const sharded_timer&) = delete;
  ~sharded_timer() = default;

  /// For an item on this rank: mtp::timer::cancel() (true when its message will not start
  /// again). For an item on another rank: sends the cancellation there and returns true when
  /// it was sent; it takes effect when it arrives (a message that started by then runs). False
  /// after this rank's shutdown. Harmless twice or after the timer fired.
  bool cancel() noexcept {
    if (local_.valid()) return local_.cancel();
    return impl::sharded_base::cancel_remote_timer(link_, dest_, call_);
  }

 private:
  template <class Item>
  friend class sharded_pool;
  mtp::timer local_;
  std::weak_ptr<impl::sharded_base::timer_link> link_;
  int dest_ = -1;
  std::uint64_t call_ = 0;
};

/// Refers to an asynchronous call of a sharded pool in flight (send_async, send_batch_async).
/// cancel() makes the requests that have not started, on every rank, complete with
/// errc::cancelled: one that has started finishes, and a share that its rank has already
/// answered keeps its responses. The callback still runs exactly once. Dropping the handle
/// neither cancels nor waits; it may outlive the pool.
///
/// Threads: one owner at a time (movable, not copyable); cancel() may race with the call.
class [[nodiscard]] async_handle {
 public:
  async_handle() = default;
  explicit async_handle(std::shared_ptr<impl::cancel_control> control) noexcept : control_(std::move(control)) {}
  async_handle(async_handle&&) noexcept = default;
  async_handle& operator=(async_handle&&) noexcept = default;
  async_handle(const async_handle&) = delete;
  async_handle& operator=(const async_handle&) = delete;
  ~async_handle() = default;

  /// Skips what has not started yet; those requests complete with errc::cancelled.
  void cancel() noexcept {
    if (control_) impl::sharded_base::cancel(*control_);
  }

 private:
  std::shared_ptr<impl::cancel_control> control_;
};

template <class Item>
class sharded_pool final : private impl::sharded_base {
 public:
  using item_type = Item;

  /// Collective: every rank builds its sharded pools in the same order.
  explicit sharded_pool(sharded_options options = {})
      : router_(std::move(options.router)),
        on_diag_(options.local.on_diagnostic),
        spin_(options.local.caller_spin),
        bounded_(options.local.queue_capacity > 0),
        pool_(std::move(options.local)) {
    {
      std::lock_guard lock(registry_m_);  // before the channel opens: other ranks may send at once
      registry_.emplace_back(&pool_, this);
    }
    impl::open_channel(*this, channel_);
    if (const auto& kept = pool_.placement().caller_cpus; !kept.empty()) {
      std::string why;
      pin_token_ = impl::pin_communication_thread(kept, why);
      if (pin_token_ == 0) {
        const std::string text = "mtp::mpi: the communication thread could not be pinned to the CPUs kept for callers: " + why;
        if (on_diag_) on_diag_(diagnostic{diagnostic::kind::pinning_failed, 0, text, std::nullopt});
        else std::fprintf(stderr, "%s\n", text.c_str());
      }
    }
  }
  /// Collective: shutdown().
  ~sharded_pool() {
    shutdown();
    std::lock_guard lock(registry_m_);  // no handler runs any more: the local pool has stopped
    std::erase(registry_, std::pair<const mtp::thread_pool<Item>*, sharded_pool*>(&pool_, this));
  }
  sharded_pool(const sharded_pool&) = delete;
  sharded_pool& operator=(const sharded_pool&) = delete;

  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] int ranks() const noexcept { return ranks_; }
  /// The rank an id belongs to; throws pool_error(invalid_route) for a bad route.
  [[nodiscard]] int rank_of(id_t id) const {
    const int r = route(id);
    if (r < 0) error{errc::invalid_route, id, {}}.raise();
    return r;
  }
  /// This rank's pool (its items are those whose ids route here).
  [[nodiscard]] mtp::thread_pool<Item>& local() noexcept { return pool_; }

  // ---- Items -------------------------------------------------------------------------------

  /// Constructs Item(id, args...) on the rank and worker the id routes to. Throws
  /// pool_error(duplicate_id), the constructor's exception (remote_error from another rank),
  /// or pool_error(pool_stopped, invalid_route, would_deadlock).
  template <class... A>
  void create(id_t id, A&&... args) {
    check_arguments<A...>();
    if (serves_here(id)) {
      return locally(id, [&] {
        pool_.create(id, std::forward<A>(args)...);
        note_created(id);
      });
    }
    std::vector<result<void>> out = create_remote_one<std::decay_t<A>...>(id, std::forward<A>(args)...);
    out[0].value();
  }

  /// Creates one item per id, each Item(id, args...): one result per id, in order.
  template <mtp::id_range Ids, class... A>
  std::vector<result<void>> create_batch(Ids&& ids, const A&... args) {
    check_arguments<A...>();
    std::vector<id_t> storage;
    const std::span<const id_t> all = mtp::gather<id_t>(std::forward<Ids>(ids), storage);
    using Op = create_op<std::decay_t<A>...>;
    const std::tuple<std::decay_t<A>...> copy(args...);
    return run<void>(all, [](id_t id) { return id; },
                     [&](std::span<const id_t> local) { return note_created(local, pool_.create_batch(local, args...)); },
                     Op::key, [&](wire::writer& w, id_t id) {
                       w.pod(id);
                       wire::put_tuple(w, copy);
                     });
  }

  /// Destroys the item on its rank, after what was sent to it before. False if it did not
  /// exist.
  bool remove(id_t id) {
    const id_t one[1] = {id};
    result<void> r = std::move(remove_batch(std::span<const id_t>(one))[0]);
    if (r.has_error() && r.error().code == errc::unknown_id) return false;
    r.value();
    return true;
  }
  template <mtp::id_range Ids>
  std::vector<result<void>> remove_batch(Ids&& ids) {
    std::vector<id_t> storage;
    const std::span<const id_t> all = mtp::gather<id_t>(std::forward<Ids>(ids), storage);
    return run<void>(all, [](id_t id) { return id; },
                     [&](std::span<const id_t> local) { return note_removed(local, pool_.remove_batch(local)); },
                     remove_op::key,
                     [](wire::writer& w, id_t id) { w.pod(id); });
  }

  // ---- Requests ----------------------------------------------------------------------------

  /// One round trip to the item `r.id`, wherever it lives. Throws what the handler threw
  /// (remote_error from another rank) or pool_error.
  template <request R>
  response_t<R> send(const R& r) {
    mtp::require_handles<Item, R>();
    impl::check_remote_request<R>();
    const id_t id = static_cast<id_t>(r.id);
    if (serves_here(id)) return locally(id, [&] { return pool_.send(r); });
    return send_batch(std::span<const R>(&r, 1))[0].value();
  }

  /// A batch for any mix of ids and ranks: the local share goes to the local pool, each
  /// remote share travels as one message; responses in request order.
  template <mtp::request_range Range>
  auto send_batch(Range&& requests) {
    using R = std::ranges::range_value_t<Range>;
    mtp::require_handles<Item, R>();
    impl::check_remote_request<R>();
    std::vector<R> storage;
    const std::span<const R> all = mtp::gather<R>(std::forward<Range>(requests), storage);
    // With bounded queues the owner waits for room, as the local pool would (call_wait_op).
    return run<response_t<R>>(all, [](const R& r) { return static_cast<id_t>(r.id); },
                              [&](std::span<const R> local) { return pool_.send_batch(local); },
                              bounded_ ? call_wait_op<R>::key : call_op<R>::key,
                              // The caller waits until the message has gone: large requests are
                              // sent from its storage, not copied into the message.
                              [](wire::writer& w, const R& r) { wire::put_borrowing(w, r); },
                              bounded_ ? k_wait_forever : -1);
  }

  /// As send, giving up after `timeout`: then throws pool_error(timed_out). The request is
  /// withdrawn where it has not started (on its own rank, when the withdrawal gets there
  /// first); one that has started finishes, and its response is discarded.
  template <request R, class Rep, class Period>
  response_t<R> send(const R& r, std::chrono::duration<Rep, Period> timeout) {
    mtp::require_handles<Item, R>();
    impl::check_remote_request<R>();
    const id_t id = static_cast<id_t>(r.id);
    if (serves_here(id)) return locally(id, [&] { return pool_.send(r, timeout); });
    return std::move(send_batch(std::span<const R>(&r, 1), timeout)[0]).value();
  }

  /// As send_batch, giving up after `timeout`. If every response arrived in time they are
  /// returned as usual; otherwise every result is errc::timed_out and the requests that have
  /// not started are withdrawn, on every rank (those that ran are not undone).
  template <mtp::request_range Range, class Rep, class Period>
  auto send_batch(Range&& requests, std::chrono::duration<Rep, Period> timeout) {
    using R = std::ranges::range_value_t<Range>;
    using T = response_t<R>;
    mtp::require_handles<Item, R>();
    impl::check_remote_request<R>();
    const auto deadline = mtp::deadline_after(timeout);  // the clock starts before gathering
    std::vector<R> storage;
    const std::span<const R> all = mtp::gather<R>(std::forward<Range>(requests), storage);
    const auto id_of = [](const R& r) { return static_cast<id_t>(r.id); };
    std::vector<result<T>> out;
    out.reserve(all.size());
    const auto fail_all = [&](errc code) {
      for (const R& r : all) out.emplace_back(error{code, id_of(r), {}});
      return std::move(out);
    };
    if (impl::on_communication_thread()) return fail_all(errc::would_deadlock);
    if (all_local(all, id_of)) {
      if (!enter()) return fail_all(errc::pool_stopped);
      gate_guard g{this};
      return pool_.send_batch(all, timeout);
    }
    auto box = std::make_shared<impl::timed_box<T>>();
    async_handle handle = bounded_ ? send_batch_waiting_for_room(all, deadline, box)
                                   : send_batch_async(all, [box](std::vector<result<T>>&& rs) { box->put(std::move(rs)); });
    if (box->wait_until(deadline)) return std::move(box->results);
    handle.cancel();  // late responses land in the box, which nobody reads
    return fail_all(errc::timed_out);
  }

  /// A method call on the item `id`, wherever it lives: `pool.call<&counter::add>(7, 5)` runs
  /// `item.add(5)` and returns what it returns; the same as
  /// `send(mtp::make_call<&counter::add>(7, 5))`, whose request (mtp::member_call) every form
  /// takes (timed, async, batches, post). The member is a template argument, so that every
  /// rank names it the same way (a member function pointer is an address, which differs
  /// between processes); the id and the arguments cross ranks. Throws as send.
  template <auto Member, class... A>
    requires std::is_member_function_pointer_v<decltype(Member)>
  auto call(id_t id, A&&... args) {
    return send(mtp::make_call<Member>(id, std::forward<A>(args)...));
  }

  /// Sends a copy of `r` to every item of the pool, on every rank (each copy's `id` set to its
  /// item's), and returns every item's (id, result) in ascending id order. One message to
  /// each other rank and one reply from it, whatever the number of items. "Every item" is
  /// every item created through this pool (on any rank) and not removed through it: items
  /// created while the broadcast travels may or may not get it. Blocking; throws
  /// pool_error(pool_stopped, would_deadlock) as send_batch.
  template <request R>
  std::vector<std::pair<id_t, result<response_t<R>>>> broadcast(const R& r) {
    mtp::require_handles<Item, R>();
    impl::check_remote_request<R>();
    static_assert(requires(R& x, id_t id) { x.id = id; },
                  "mtp::mpi: broadcast sets each copy's id: the request's `id` must be assignable");
    using T = response_t<R>;
    if (impl::on_communication_thread()) error{errc::would_deadlock, 0, {}}.raise();
    if (!enter()) error{errc::pool_stopped, 0, {}}.raise();
    gate_guard g{this};
    auto state = std::make_shared<impl::broadcast_state<T>>();
    state->left = ranks_;
    for (int dest = 0; dest < ranks_; ++dest) {
      if (dest == rank_) continue;
      const std::uint64_t call = next_call();
      wire::writer w = start_message(impl::kind::call, broadcast_op<R>::key, 1, call);
      wire::put(w, r);
      auto p = std::make_unique<impl::broadcast_share<T>>();
      p->state = state;
      send_call(dest, call, std::move(p), std::move(w));
    }
    std::vector<id_t> ids = local_ids();
    std::vector<result<T>> mine = pool_.send_batch(addressed(r, ids));
    state->add(std::move(ids), std::move(mine));
    return state->take();
  }

  /// A broadcast whose responses are folded by `op` in ascending id order, starting from
  /// `init`: `acc = op(std::move(acc), response)`. The order is fixed, so the result is the
  /// same, bit for bit, with any number of ranks (floating-point sums included). If an item
  /// failed, throws its error (the first in id order) once every item has answered.
  template <request R, class T, class Op>
    requires std::invocable<Op&, T&&, response_t<R>&&>
  T reduce(const R& r, T init, Op op) {
    for (auto& [id, result] : broadcast(r)) init = op(std::move(init), std::move(result).value());
    return init;
  }

  /// Fire and forget. Local: the pool's post. Remote: queued for the owning rank, whose
  /// failures (unknown id, a throwing handler) go to that rank's on_diagnostic. Returns
  /// pool_stopped or invalid_route when not sent.
  template <request R>
  result<void> post(R r) {
    mtp::require_handles<Item, R>();
    impl::check_remote_request<R>();
    const id_t id = static_cast<id_t>(r.id);
    const int dest = route(id);
    if (dest < 0) return error{errc::invalid_route, id, {}};
    if (!enter()) return error{errc::pool_stopped, id, {}};
    gate_guard g{this};
    if (dest == rank_) return pool_.post(std::move(r));
    wire::writer w = start_message(impl::kind::post, post_op<R>::key, 1, 0);
    wire::put(w, r);
    impl::send_bytes(channel_, dest, std::move(w.bytes()));
    return unit{};
  }

  // ---- Timers ------------------------------------------------------------------------------

  /// As mtp::thread_pool::post_after, wherever the item lives: on this rank the local pool's
  /// timer; on another rank the delay travels with the request and that rank's pool keeps the
  /// timer (the time in transit counts against the delay). Its message runs on the owning rank;
  /// a failure goes to that rank's on_diagnostic. Throws pool_error (pool_stopped,
  /// invalid_route; on this rank also what the local pool throws).
  template <request R, class Rep, class Period>
  sharded_timer post_after(std::chrono::duration<Rep, Period> delay, R r) {
    return schedule<false>(std::chrono::duration<long double, std::nano>(delay), 0, std::move(r));
  }
  /// As post_after, at a steady_clock instant (ranks on one machine share the clock; across
  /// machines, the instant is taken as a delay from now).
  template <request R, class Duration>
  sharded_timer post_at(std::chrono::time_point<std::chrono::steady_clock, Duration> when, R r) {
    const std::chrono::duration<long double, std::nano> from_now =
        std::chrono::duration<long double, std::nano>(when.time_since_epoch()) -
        std::chrono::duration<long double, std::nano>(std::chrono::steady_clock::now().time_since_epoch());
    return schedule<false>(from_now, 0, std::move(r));
  }
  /// As mtp::thread_pool::post_every, on the rank that owns the item. Throws
  /// std::invalid_argument for a period of zero or less.
  template <request R, class Rep, class Period>
  sharded_timer post_every(std::chrono::duration<Rep, Period> period, R r) {
    const std::chrono::duration<long double, std::nano> every = period;
    if (!(every > every.zero())) {
      throw std::invalid_argument("mtp::mpi::sharded_pool::post_every: the period must be greater than zero");
    }
    return schedule<true>(every, saturated_ns(every), std::move(r));
  }

  /// A batch with a callback: returns at once; on_done(std::vector<mtp::result<T>>) runs
  /// exactly once, responses in request order, on the thread that completed the last share (a
  /// local worker, or the communication thread for a remote share; the caller's own thread
  /// when nothing could be sent). Keep it short and non-blocking. The handle can cancel it.
  template <mtp::request_range Range, class F>
  async_handle send_batch_async(Range&& requests, F on_done) {
    using R = std::ranges::range_value_t<Range>;
    using T = response_t<R>;
    mtp::require_handles<Item, R>();
    impl::check_remote_request<R>();
    std::vector<R> storage;
    const std::span<const R> all = mtp::gather<R>(std::forward<Range>(requests), storage);
    auto state = std::make_shared<impl::call_state<T>>();
    state->on_done = std::move(on_done);
    state->control.pool = this;
    launch<T>(state, all, [](const R& r) { return static_cast<id_t>(r.id); },
              [this](std::span<const R> local, const std::shared_ptr<impl::call_state<T>>& s,
                     std::vector<std::uint32_t> index) {
                mtp::async_handle h = pool_.send_batch_async(local, [s, index = std::move(index)](std::vector<result<T>>&& rs) {
                  for (std::size_t i = 0; i < rs.size(); ++i) s->results[index[i]] = std::move(rs[i]);
                  s->arrive();
                });
                std::lock_guard lock(s->control.m);
                s->control.local = std::move(h);
              },
              call_op<R>::key, [](wire::writer& w, const R& r) { wire::put(w, r); }, true);
    // Aliasing: the handle keeps the whole state alive and sees its cancel control.
    return async_handle(std::shared_ptr<impl::cancel_control>(state, &state->control));
  }
  /// One request with a callback: on_done(mtp::result<T>), as send_batch_async.
  template <request R, class F>
  async_handle send_async(const R& r, F on_done) {
    return send_batch_async(std::span<const R>(&r, 1), [f = std::move(on_done)](
                                                          std::vector<result<response_t<R>>>&& rs) mutable {
      f(std::move(rs[0]));
    });
  }

  // ---- Lifecycle ---------------------------------------------------------------------------

  /// Collective: returns once every rank has called it (say, after one rank created the items
  /// the others will use). Messages are not flushed by it: a reply already received is the
  /// way to know a request ran. Throws pool_error(pool_stopped) after shutdown.
  void barrier() {
    if (impl::on_communication_thread()) error{errc::would_deadlock, 0, {}}.raise();
    if (!enter()) error{errc::pool_stopped, 0, {}}.raise();
    gate_guard g{this};
    impl::barrier(channel_);
  }

  /// Collective (every rank, in the same order as barrier() and shutdown()): returns once no
  /// message is in flight or queued anywhere, on every rank: every request and post sent
  /// through this pool, by callers or by items (to items on any rank), has run, and no item
  /// runs a message. The analogue of Charm++'s quiescence detection: let items post to each
  /// other across ranks, then quiesce() to know that everything has landed. Timers that have
  /// not fired are not in flight. Call it while no other thread of the rank sends (what such a
  /// thread sends may delay it, or run after it returns). Throws pool_error would_deadlock on
  /// the communication thread or a worker of this pool, pool_stopped after shutdown.
  void quiesce() {
    if (impl::on_communication_thread() || on_own_worker()) error{errc::would_deadlock, 0, {}}.raise();
    if (stopping()) error{errc::pool_stopped, 0, {}}.raise();
    impl::quiesce(channel_);
  }

  /// Collective; see the guarantees at the top of this file. Idempotent.
  void shutdown() {
    std::lock_guard lock(shutdown_m_);
    if (closed_) return;
    closed_ = true;
    close();
    impl::unpin_communication_thread(pin_token_);
    pool_.shutdown();
  }

 private:
  // ---- Operations, registered at start-up under a key shared by every rank -------------------
  // Decodes a share of n requests (in place, on the heap) and hands it to the local pool; the
  // completion replies. Cancellable until then (remember / forget).
  template <class R>
  static void serve_share(impl::sharded_base& base, int source, std::uint64_t call, wire::reader& in, std::uint32_t n) {
    auto& self = static_cast<sharded_pool&>(base);
    using T = response_t<R>;
    mtp::async_handle h;
    try {
      const wire::decoded<R> decoded(in, n);  // in the message itself where it can be
      h = self.pool_.send_batch_async(decoded.moved(), [&self, source, call](std::vector<result<T>>&& rs) {
        self.reply(source, call, rs);
        self.forget(source, call);
      });
    } catch (...) {  // a request that would not decode (or no memory): the whole share fails
      std::vector<result<T>> failed(n);
      for (auto& f : failed) f.set_error(error{errc::handler_failed, 0, std::current_exception()});
      self.reply(source, call, failed);
      return;
    }
    self.remember(source, call, std::move(h));
  }
  template <class R>
  struct call_op {
    static void serve(impl::sharded_base& base, int source, std::uint64_t call, wire::reader& in, std::uint32_t n) {
      serve_share<R>(base, source, call, in, n);
    }
    static inline const std::uint64_t key = impl::register_op<call_op>(&serve, false);
  };
  // A share that may wait for room in a bounded queue until its caller's deadline: served on
  // the control thread (which may block, in arrival order per source) with the local pool's
  // blocking or timed batch. Entries: [i64 nanoseconds it may wait, k_wait_forever: no
  // deadline] then the requests.
  template <class R>
  struct call_wait_op {
    static void serve(impl::sharded_base& base, int source, std::uint64_t call, wire::reader& in, std::uint32_t n) {
      auto& self = static_cast<sharded_pool&>(base);
      using T = response_t<R>;
      try {
        const auto wait_ns = in.pod<std::int64_t>();
        const wire::decoded<R> decoded(in, n);
        const std::span<const R> requests(decoded.begin(), n);
        self.reply(source, call,
                   wait_ns == k_wait_forever ? self.pool_.send_batch(requests)
                                             : self.pool_.send_batch(requests, std::chrono::nanoseconds(wait_ns)));
      } catch (...) {  // a request that would not decode (or no memory): the whole share fails
        std::vector<result<T>> failed(n);
        for (auto& f : failed) f.set_error(error{errc::handler_failed, 0, std::current_exception()});
        self.reply(source, call, failed);
      }
    }
    static inline const std::uint64_t key = impl::register_op<call_wait_op>(&serve, true);
  };
  static constexpr std::int64_t k_wait_forever = std::numeric_limits<std::int64_t>::max();

  // The timed batch with bounded queues: remote shares wait for room on their rank until the
  // deadline (call_wait_op), the local share waits here, on the caller's thread; `box` gets
  // the results. The returned handle withdraws what has not started.
  template <class R, class T>
  async_handle send_batch_waiting_for_room(std::span<const R> all, std::chrono::steady_clock::time_point deadline,
                                           const std::shared_ptr<impl::timed_box<T>>& box) {
    const auto left = [deadline] {
      return std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(
                                           deadline - std::chrono::steady_clock::now())
                                           .count());
    };
    auto state = std::make_shared<impl::call_state<T>>();
    state->on_done = [box](std::vector<result<T>>&& rs) { box->put(std::move(rs)); };
    state->control.pool = this;
    launch<T>(
        state, all, [](const R& r) { return static_cast<id_t>(r.id); },
        [&](std::span<const R> local, const std::shared_ptr<impl::call_state<T>>& s, std::vector<std::uint32_t> index) {
          std::vector<result<T>> rs = pool_.send_batch(local, std::chrono::nanoseconds(left()));
          for (std::size_t i = 0; i < rs.size(); ++i) s->results[index[i]] = std::move(rs[i]);
          s->arrive();
        },
        call_wait_op<R>::key, [](wire::writer& w, const R& r) { wire::put(w, r); }, true, left());
    return async_handle(std::shared_ptr<impl::cancel_control>(state, &state->control));
  }

  // A broadcast: the request once; answered with every local item's (id, result).
  template <class R>
  struct broadcast_op {
    static void serve(impl::sharded_base& base, int source, std::uint64_t call, wire::reader& in, std::uint32_t) {
      auto& self = static_cast<sharded_pool&>(base);
      using T = response_t<R>;
      try {
        const wire::decoded<R> r(in, 1);
        auto ids = std::make_shared<const std::vector<id_t>>(self.local_ids());
        if (ids->empty()) {
          self.reply_items(source, call, *ids, std::vector<result<T>>{});
          return;
        }
        (void)self.pool_.send_batch_async(addressed(*r.begin(), *ids),
                                          [&self, source, call, ids](std::vector<result<T>>&& rs) {
                                            self.reply_items(source, call, *ids, rs);
                                          });
      } catch (...) {  // the request would not decode, or no memory: one error stands for this rank
        std::vector<result<T>> failed(1);
        failed[0].set_error(error{errc::handler_failed, 0, std::current_exception()});
        self.reply_items(source, call, std::vector<id_t>{0}, failed);
      }
    }
    static inline const std::uint64_t key = impl::register_op<broadcast_op>(&serve, false);
  };
  template <class R>
  struct post_op {
    static void serve(impl::sharded_base& base, int, std::uint64_t, wire::reader& in, std::uint32_t n) {
      auto& self = static_cast<sharded_pool&>(base);
      if (n == 0) {
        self.served();
        return;
      }
      const wire::decoded<R> decoded(in, n);
      (void)self.pool_.send_batch_async(decoded.moved(), [&self](std::vector<result<response_t<R>>>&& rs) {
        for (const auto& r : rs) {
          if (r.has_error()) self.report_post(r.error());
        }
        self.served();
      });
    }
    static inline const std::uint64_t key = impl::register_op<post_op>(&serve, false);
  };
  // Nanoseconds, saturated to what the wire carries (beyond it: never; negative: now).
  static std::int64_t saturated_ns(std::chrono::duration<long double, std::nano> d) noexcept {
    constexpr auto never = std::numeric_limits<std::int64_t>::max();
    if (!(d.count() < static_cast<long double>(never))) return never;  // NaN too
    if (!(d.count() > 0)) return 0;
    return static_cast<std::int64_t>(d.count());
  }

  template <bool Periodic, request R>
  sharded_timer schedule(std::chrono::duration<long double, std::nano> delay, std::int64_t period, R r) {
    mtp::require_handles<Item, R>();
    impl::check_remote_request<R>();
    const id_t id = static_cast<id_t>(r.id);
    const int dest = route(id);
    if (dest < 0) error{errc::invalid_route, id, {}}.raise();
    if (!enter()) error{errc::pool_stopped, id, {}}.raise();
    gate_guard g{this};
    sharded_timer t;
    if (dest == rank_) {
      if constexpr (Periodic) t.local_ = pool_.post_every(std::chrono::nanoseconds(period), std::move(r));
      else t.local_ = pool_.post_after(std::chrono::nanoseconds(saturated_ns(delay)), std::move(r));
      return t;
    }
    const std::uint64_t call = next_call();
    wire::writer w = start_message(impl::kind::post, timer_op<R, Periodic>::key, 1, call);
    w.pod(saturated_ns(delay));
    w.pod(period);
    wire::put(w, r);
    impl::send_bytes(channel_, dest, std::move(w.bytes()));
    t.link_ = timer_link_;
    t.dest_ = dest;
    t.call_ = call;
    return t;
  }
  // A remote timer: armed on the local pool, kept for its cancellation.
  template <class R, bool Periodic>
  struct timer_op {
    static void serve(impl::sharded_base& base, int source, std::uint64_t call, wire::reader& in, std::uint32_t) {
      auto& self = static_cast<sharded_pool&>(base);
      const auto delay = std::chrono::nanoseconds(in.pod<std::int64_t>());
      const auto period = std::chrono::nanoseconds(in.pod<std::int64_t>());
      try {
        R r = wire::get<R>(in);
        const id_t id = static_cast<id_t>(r.id);
        try {
          if constexpr (Periodic) self.keep_remote_timer(source, call, self.pool_.post_every(period, std::move(r)));
          else self.keep_remote_timer(source, call, self.pool_.post_after(delay, std::move(r)));
        } catch (const pool_error& e) {
          self.report_post(error{e.code(), id, {}});
        }
      } catch (...) {  // a request that would not decode (or no memory)
        self.report_post(error{errc::handler_failed, 0, std::current_exception()});
      }
      self.served();
    }
    static inline const std::uint64_t key = impl::register_op<timer_op>(&serve, false);
  };

  template <class... A>
  struct create_op {
    static void serve(impl::sharded_base& base, int source, std::uint64_t call, wire::reader& in, std::uint32_t n) {
      auto& self = static_cast<sharded_pool&>(base);
      std::vector<mtp::create_request<A...>> reqs;
      reqs.reserve(n);
      for (std::uint32_t i = 0; i < n; ++i) {
        const auto id = in.pod<id_t>();
        reqs.push_back({id, wire::get_tuple<A...>(in)});
      }
      std::vector<id_t> ids;
      ids.reserve(reqs.size());
      for (const auto& r : reqs) ids.push_back(r.id);
      self.reply(source, call, self.note_created(ids, self.pool_.create_batch(reqs)));
    }
    static inline const std::uint64_t key = impl::register_op<create_op>(&serve, true);
  };
  struct remove_op {
    static void serve(impl::sharded_base& base, int source, std::uint64_t call, wire::reader& in, std::uint32_t n) {
      auto& self = static_cast<sharded_pool&>(base);
      std::vector<id_t> ids(n);
      for (auto& id : ids) id = in.pod<id_t>();
      self.reply(source, call, self.note_removed(ids, self.pool_.remove_batch(ids)));
    }
    static inline const std::uint64_t key = impl::register_op<remove_op>(&serve, true);
  };

  template <class... A, class... B>
  std::vector<result<void>> create_remote_one(id_t id, B&&... args) {
    const id_t one[1] = {id};
    const std::tuple<A...> copy(std::forward<B>(args)...);
    return run<void>(std::span<const id_t>(one), [](id_t x) { return x; },
                     [](std::span<const id_t>) -> std::vector<result<void>> { return {}; },  // never local
                     create_op<A...>::key, [&](wire::writer& w, id_t x) {
                       w.pod(x);
                       wire::put_tuple(w, copy);
                     });
  }

  template <class... A>
  static constexpr void check_arguments() {
    static_assert((!std::is_pointer_v<std::decay_t<A>> && ...),
                  "mtp::mpi: a constructor argument that is a pointer (a string literal, say) would cross ranks "
                  "as an address; pass a value (std::string, ...) instead");
  }

  [[nodiscard]] bool local_quiescent() const noexcept override { return pool_.quiescent(); }

  // ---- The ids of this rank's items, for broadcast -----------------------------------------
  // Appended to as items are created and removed through this pool (amortised O(1) each);
  // a broadcast sorts both lists and takes the multiset difference (an id removed and created
  // again appears twice in created_ and once in removed_).
  void note_created(id_t id) {
    std::lock_guard lock(ids_m_);
    created_.push_back(id);
    ids_sorted_ = false;
  }
  std::vector<result<void>> note_created(std::span<const id_t> ids, std::vector<result<void>>&& rs) {
    return note(created_, ids, std::move(rs));
  }
  std::vector<result<void>> note_removed(std::span<const id_t> ids, std::vector<result<void>>&& rs) {
    return note(removed_, ids, std::move(rs));
  }
  // Appends to `list` the ids whose create or remove succeeded; passes the results on.
  std::vector<result<void>> note(std::vector<id_t>& list, std::span<const id_t> ids, std::vector<result<void>>&& rs) {
    std::lock_guard lock(ids_m_);
    for (std::size_t i = 0; i < rs.size(); ++i) {
      if (rs[i].has_value()) list.push_back(ids[i]);
    }
    ids_sorted_ = false;
    return std::move(rs);
  }
  // This rank's items now, in ascending id order.
  std::vector<id_t> local_ids() {
    std::lock_guard lock(ids_m_);
    if (ids_sorted_) return created_;  // unchanged since the last broadcast
    ids_sorted_ = true;
    std::sort(created_.begin(), created_.end());
    std::sort(removed_.begin(), removed_.end());
    std::vector<id_t> alive;
    alive.reserve(created_.size() - std::min(created_.size(), removed_.size()));
    std::set_difference(created_.begin(), created_.end(), removed_.begin(), removed_.end(), std::back_inserter(alive));
    created_ = alive;
    removed_.clear();
    return alive;
  }
  // Copies of `r`, one per id, each with the id set.
  template <class R>
  static std::vector<R> addressed(const R& r, const std::vector<id_t>& ids) {
    std::vector<R> out(ids.size(), r);
    for (std::size_t i = 0; i < ids.size(); ++i) out[i].id = ids[i];
    return out;
  }
  // Whether the calling thread is one of the local pool's workers.
  [[nodiscard]] bool on_own_worker() const noexcept {
    if (!mtp::this_worker::is_worker()) return false;
    try {
      return &mtp::this_pool<Item>() == &pool_;
    } catch (...) {  // a worker of a pool of another type
      return false;
    }
  }

  // Whether a single call for `id` goes straight to the local pool: the id is this rank's, and
  // the caller is not the communication thread (which must never block on the local pool).
  [[nodiscard]] bool serves_here(id_t id) const noexcept { return route(id) == rank_ && !impl::on_communication_thread(); }
  // Runs f() (a call on the local pool) inside the gate; pool_stopped once shut down.
  template <class F>
  decltype(auto) locally(id_t id, F f) {
    if (!enter()) error{errc::pool_stopped, id, {}}.raise();
    gate_guard g{this};
    return f();
  }

  // -1 for a bad route.
  [[nodiscard]] int route(id_t id) const noexcept {
    if (!router_) return static_cast<int>(id % static_cast<id_t>(ranks_));
    try {
      const int r = router_(id, ranks_);
      return r >= 0 && r < ranks_ ? r : -1;
    } catch (...) {
      return -1;
    }
  }

  // Splits `all` by rank; `local_fn(span)` handles this rank's share, `encode(w, x)` writes a
  // remote entry of operation `op`. For the blocking forms (wait), the caller waits here.
  template <class T, class X, class IdOf, class Local, class Encode>
  bool launch(const std::shared_ptr<impl::call_state<T>>& state, std::span<const X> all, IdOf id_of, Local local_fn,
              std::uint64_t op, Encode encode, bool async, std::int64_t wait_ns = -1) {
    if (!enter()) {
      // Results are filled in place (set_error): a temporary result may be larger than a stack.
      state->results.clear();
      state->results.resize(all.size());
      for (std::size_t i = 0; i < all.size(); ++i) state->results[i].set_error(error{errc::pool_stopped, id_of(all[i]), {}});
      state->arrive();
      return false;
    }
    if (async) state->after = [this] { leave(); };
    state->results.resize(all.size());
    std::vector<int> routes(all.size());
    std::vector<std::size_t> counts(static_cast<std::size_t>(ranks_), 0);
    for (std::size_t i = 0; i < all.size(); ++i) {
      routes[i] = route(id_of(all[i]));
      if (routes[i] >= 0) ++counts[static_cast<std::size_t>(routes[i])];
    }
    std::vector<std::vector<std::uint32_t>> by_rank(static_cast<std::size_t>(ranks_));
    for (int r = 0; r < ranks_; ++r) by_rank[static_cast<std::size_t>(r)].reserve(counts[static_cast<std::size_t>(r)]);
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (routes[i] < 0) state->results[i].set_error(error{errc::invalid_route, id_of(all[i]), {}});
      else by_rank[static_cast<std::size_t>(routes[i])].push_back(static_cast<std::uint32_t>(i));
    }
    std::uint32_t shares = 0;
    for (const auto& v : by_rank) shares += v.empty() ? 0 : 1;
    state->remaining.fetch_add(shares, std::memory_order_relaxed);
    for (int r = 0; r < ranks_; ++r) {
      auto& index = by_rank[static_cast<std::size_t>(r)];
      if (index.empty() || r == rank_) continue;
      const std::uint64_t call = next_call();
      wire::writer w = start_message(impl::kind::call, op, static_cast<std::uint32_t>(index.size()), call);
      if (wait_ns >= 0) w.pod(wait_ns);  // a call_wait_op: how long the owner may wait for room
      // (Large requests of the blocking forms are borrowed, not written: nothing to reserve.)
      if (async || !std::is_trivially_copyable_v<X> || sizeof(X) < wire::k_borrow_min) {
        w.reserve(sizeof(impl::header) + index.size() * (sizeof(X) + sizeof(id_t)));
      }
      for (std::uint32_t i : index) encode(w, all[i]);
      auto p = std::make_unique<impl::remote_share<T>>();
      p->state = state;
      p->index = std::move(index);
      if (async) {
        std::lock_guard lock(state->control.m);
        state->control.remote.emplace_back(r, call);
      }
      std::function<void()> sent;
      const bool borrows = !w.borrowed_parts().empty();  // requests sent from the caller's storage
      if (borrows) {                                      // (blocking forms only)
        state->borrow();
        sent = [state] { state->sent(); };  // run() waits for it before it returns (wait_sent)
      }
      try {
        send_call(r, call, std::move(p), std::move(w), std::move(sent));
      } catch (...) {  // not queued: nothing will read the storage
        if (borrows) state->sent();
        throw;
      }
    }
    auto& mine = by_rank[static_cast<std::size_t>(rank_)];
    if (!mine.empty()) {
      if (mine.size() == all.size()) {
        local_fn(all, state, std::move(mine));
      } else {
        std::vector<X> share;
        share.reserve(mine.size());
        for (std::uint32_t i : mine) share.push_back(all[i]);
        local_fn(std::span<const X>(share), state, std::move(mine));
      }
    }
    state->arrive();  // the launcher's own count
    return true;
  }

  // The blocking form of launch: the local share runs on the pool's blocking batch.
  template <class T, class X, class IdOf, class LocalBatch, class Encode>
  std::vector<result<T>> run(std::span<const X> all, IdOf id_of, LocalBatch local_batch, std::uint64_t op, Encode encode,
                             std::int64_t wait_ns = -1) {
    if (impl::on_communication_thread()) {  // it would wait for itself
      std::vector<result<T>> out;
      for (const X& x : all) out.emplace_back(error{errc::would_deadlock, id_of(x), {}});
      return out;
    }
    if (all_local(all, id_of)) {  // the whole call is this rank's: the local pool's own path
      if (!enter()) {
        std::vector<result<T>> out;
        for (const X& x : all) out.emplace_back(error{errc::pool_stopped, id_of(x), {}});
        return out;
      }
      gate_guard g{this};
      return local_batch(all);
    }
    auto state = std::make_shared<impl::call_state<T>>();
    // Large requests are sent from the caller's storage (the encoder may borrow them): return
    // only once no message reads it, also when launching fails part way.
    struct until_sent {
      impl::call_state<T>* s;
      ~until_sent() { s->wait_sent(); }
    } const guard{state.get()};
    const bool entered = launch<T>(
        state, all, id_of,
        [&](std::span<const X> local, const std::shared_ptr<impl::call_state<T>>& s, std::vector<std::uint32_t> index) {
          std::vector<result<T>> rs = local_batch(local);
          for (std::size_t i = 0; i < rs.size(); ++i) s->results[index[i]] = std::move(rs[i]);
          s->arrive();
        },
        op, encode, false, wait_ns);
    state->wait(spin_);
    state->wait_sent();
    if (entered) leave();
    return std::move(state->results);
  }

  template <class X, class IdOf>
  [[nodiscard]] bool all_local(std::span<const X> all, IdOf id_of) const noexcept {
    if (ranks_ == 1 && !router_) return true;
    for (const X& x : all) {
      if (route(id_of(x)) != rank_) return false;
    }
    return true;
  }

  void report_post(const error& e) {
    if (on_diag_) {
      diagnostic d{diagnostic::kind::post_failed, 0, "mtp::mpi: a post from another rank failed: " + e.message(), e};
      on_diag_(d);
    } else {
      std::fprintf(stderr, "mtp::mpi: a post from another rank failed: %s\n", e.message().c_str());
    }
  }

  template <class I>
  friend sharded_pool<I>& this_pool();
  // The sharded pool whose local pool is `local`, for this_pool(); throws std::logic_error
  // when `local` is a plain pool. Every sharded pool of this item type registers its local
  // pool here for its lifetime (a few entries; looked up once per worker thread).
  static sharded_pool& owner_of(const mtp::thread_pool<Item>& local) {
    std::lock_guard lock(registry_m_);
    for (const auto& [l, s] : registry_) {
      if (l == &local) return *s;
    }
    throw std::logic_error(
        "mtp::mpi::this_pool(): the calling worker belongs to a plain mtp::thread_pool, not to the local pool "
        "of an mtp::mpi::sharded_pool (use mtp::this_pool there)");
  }
  static inline std::mutex registry_m_;
  static inline std::vector<std::pair<const mtp::thread_pool<Item>*, sharded_pool*>> registry_;

  std::function<int(id_t, int)> router_;
  std::function<void(const diagnostic&)> on_diag_;  // before pool_, which takes the options
  std::chrono::nanoseconds spin_;                   // how long a blocked caller polls
  bool bounded_;  // the local pools have bounded queues: blocking and timed calls wait for room
  mtp::thread_pool<Item> pool_;
  std::mutex ids_m_;
  std::vector<id_t> created_;  // under ids_m_; see local_ids()
  std::vector<id_t> removed_;
  bool ids_sorted_ = true;  // created_ is sorted and removed_ empty
  std::mutex shutdown_m_;
  bool closed_ = false;
  std::uint64_t pin_token_ = 0;  // the communication thread runs on the CPUs kept for callers
};

/// The sharded pool whose local pool runs the calling handler: how an item reaches its own
/// sharded pool, to post to items on any rank (mtp::this_pool for sharded pools).
///
///     void handle(const step& s) {
///       for (mtp::id_t n : neighbours_) mtp::mpi::this_pool<cell>().post(heat{n, s.round, temperature_});
///     }
///
/// Callable where mtp::this_pool<Item>() is: on the workers of the rank's local pool, in a
/// handler, an item's constructor or destructor. The reference is valid while the sharded
/// pool exists; from its shutdown() on, calls through it fail with errc::pool_stopped. Throws
/// std::logic_error off those workers (the message names the problem), and a blocking call
/// into the item's own worker fails with errc::would_deadlock: post, or use the asynchronous
/// forms.
template <class Item>
[[nodiscard]] sharded_pool<Item>& this_pool() {
  const mtp::thread_pool<Item>& local = mtp::this_pool<Item>();  // throws off a worker of one
  // A worker thread serves one pool for its whole life, so its first answer stays true.
  thread_local const mtp::thread_pool<Item>* cached_local = nullptr;
  thread_local sharded_pool<Item>* cached = nullptr;
  if (cached_local != &local) {
    cached = &sharded_pool<Item>::owner_of(local);
    cached_local = &local;
  }
  return *cached;
}

}  // namespace mtp::mpi
