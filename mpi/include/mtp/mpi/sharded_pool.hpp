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
//
// This header holds the public API. How it works lies in mtp/mpi/impl/: the messages and
// results on the wire (protocol.hpp), the registry of operations (registry.hpp) and the typed
// operations that serve each kind of message (operations.hpp), a call in flight
// (call_state.hpp), the part of the pool the communication thread sees (sharded_base.hpp),
// the control thread of pools with bounded queues (control.hpp) and the ids of a rank's
// items (item_ids.hpp); what does not depend on the item type is compiled into the mtp_mpi
// library (mpi/src/).
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <ranges>
#include <span>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <mtp/core/batch.hpp>
#include <mtp/core/forwarding.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/options.hpp>
#include <mtp/core/result.hpp>
#include <mtp/core/this_worker.hpp>
#include <mtp/core/thread_pool.hpp>
#include <mtp/core/timer.hpp>
#include <mtp/mpi/environment.hpp>
#include <mtp/mpi/impl/call_state.hpp>
#include <mtp/mpi/impl/item_ids.hpp>
#include <mtp/mpi/impl/operations.hpp>
#include <mtp/mpi/impl/protocol.hpp>
#include <mtp/mpi/impl/sharded_base.hpp>
#include <mtp/mpi/impl/thread_scratch.hpp>
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

/// Refers to an asynchronous call of a sharded pool in flight (send_async, send_batch_async,
/// create_async, remove_async and their batch forms).
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

  /// Cancels, and takes the completion over if the callback has not been claimed: returns
  /// true when the callback will never run (the caller completes the call itself, at once;
  /// the shares still finish on their ranks, skipping what has not started, and their
  /// results are dropped), false when the callback has run or is running (or the handle is
  /// empty). What prompt cancellation of a co_await (mtp::async with a stop_token) uses.
  [[nodiscard]] bool abandon() noexcept { return control_ && impl::sharded_base::abandon(*control_); }

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
    if (bounded_) start_control_thread();  // shares that wait for room wait there
    impl::open_channel(*this, channel_);
    pin_token_ = impl::pin_for_callers(pool_.placement().caller_cpus, on_diag_);
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
        ids_.note_created(id);
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
    using Op = impl::create_op<sharded_pool, std::decay_t<A>...>;
    const std::tuple<std::decay_t<A>...> copy(args...);
    return run<void>(all, same_id,
                     [&](std::span<const id_t> local) { return ids_.note_created(local, pool_.create_batch(local, args...)); },
                     Op::key, [&](wire::writer& w, id_t id) { put_create(w, id, copy); });
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
    return run<void>(all, same_id,
                     [&](std::span<const id_t> local) { return ids_.note_removed(local, pool_.remove_batch(local)); },
                     impl::remove_op<sharded_pool>::key, put_id);
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
                              [&](std::span<const R> local, std::span<result<response_t<R>>> out) {
                                pool_.send_batch(local, out);
                              },
                              bounded_ ? impl::call_wait_op<sharded_pool, R>::key : impl::call_op<sharded_pool, R>::key,
                              // The caller waits until the message has gone: large requests are
                              // sent from its storage, not copied into the message.
                              [](wire::writer& w, const R& r) { wire::put_borrowing(w, r); },
                              bounded_ ? impl::k_wait_forever : -1);
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
    if (box->wait_until(deadline, spin_)) return std::move(box->results);
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
      wire::writer w = start_message(impl::kind::call, impl::broadcast_op<sharded_pool, R>::key, 1, call);
      wire::put(w, r);
      auto p = std::make_unique<impl::broadcast_share<T>>();
      p->state = state;
      send_call(dest, call, std::move(p), std::move(w));
    }
    std::vector<id_t> ids = ids_.local_ids();
    std::vector<result<T>> mine = pool_.send_batch(impl::addressed(r, ids));
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
    wire::writer w = start_message(impl::kind::post, impl::post_op<sharded_pool, R>::key, 1, 0);
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
    return schedule<true>(every, impl::saturated_ns(every), std::move(r));
  }

  /// A batch with a callback: returns at once; on_done(std::vector<mtp::result<T>>) runs
  /// exactly once, responses in request order, on the thread that completed the last share (a
  /// local worker, or for a remote share the thread that delivered its reply: the
  /// communication thread, or a caller of a blocking or timed form on this rank that was waiting
  /// meanwhile and delivers what arrives; the caller's own thread
  /// when nothing could be sent, or when every share was answered before the call returned).
  /// Keep it short and non-blocking. The handle can cancel it.
  template <mtp::request_range Range, class F>
  async_handle send_batch_async(Range&& requests, F on_done) {
    using R = std::ranges::range_value_t<Range>;
    using T = response_t<R>;
    mtp::require_handles<Item, R>();
    impl::check_remote_request<R>();
    std::vector<R> storage;
    const std::span<const R> all = mtp::gather<R>(std::forward<Range>(requests), storage);
    return launch_async<T>(
        all, [](const R& r) { return static_cast<id_t>(r.id); },
        [this](std::span<const R> local, auto done) { return pool_.send_batch_async(local, std::move(done)); },
        impl::call_op<sharded_pool, R>::key, [](wire::writer& w, const R& r) { wire::put(w, r); }, std::move(on_done));
  }
  /// One request with a callback: on_done(mtp::result<T>), as send_batch_async.
  template <request R, class F>
  async_handle send_async(const R& r, F on_done) {
    return send_batch_async(std::span<const R>(&r, 1), first_result<response_t<R>>(std::move(on_done)));
  }

  // ---- Asynchronous lifecycle: create and remove without waiting ---------------------------

  /// Starts Item(r.id, args...) on the rank and worker the id routes to and returns at once;
  /// on_done(mtp::result<void>) runs exactly once, on a thread as for send_batch_async: empty
  /// on success, else errc::duplicate_id (no constructor ran), errc::constructor_failed (the
  /// constructor's exception; remote_error from another rank), or errc::pool_stopped /
  /// invalid_route / cancelled. As mtp::thread_pool::create_async, but the arguments are
  /// copied (they may cross ranks). A message sent after it returns, from the same thread,
  /// runs once the item is built. `mtp::make_create(id, args...)` builds the request.
  template <class... A, class F>
    requires std::invocable<F&, result<void>&&>
  async_handle create_async(create_request<A...> r, F on_done) {
    return start_creates(std::span<const create_request<A...>>(&r, 1), first_result<void>(std::move(on_done)));
  }

  /// Starts the removal of item `id` on its rank (destroyed on its worker, after what was sent
  /// to it before) and returns at once; on_done(mtp::result<void>) runs exactly once, as for
  /// create_async: empty once the item is gone, errc::unknown_id if there was none, or
  /// errc::pool_stopped / invalid_route / cancelled.
  template <class F>
    requires std::invocable<F&, result<void>&&>
  async_handle remove_async(id_t id, F on_done) {
    return remove_batch_async(std::span<const id_t>(&id, 1), first_result<void>(std::move(on_done)));
  }

  /// create_async for any input range of mtp::create_request<A...> (copied), each item from its
  /// own arguments: on_done(std::vector<mtp::result<void>>) with one result per request, in
  /// order, as for send_batch_async.
  template <std::ranges::input_range Range, class F>
    requires mtp::impl::is_create_request<std::ranges::range_value_t<Range>> &&
             std::invocable<F&, std::vector<result<void>>&&>
  async_handle create_batch_async(Range&& requests, F on_done) {
    using C = std::ranges::range_value_t<Range>;
    std::vector<C> storage;
    return start_creates(mtp::gather<C>(std::forward<Range>(requests), storage), std::move(on_done));
  }

  /// remove_async for any input range of ids: on_done(std::vector<mtp::result<void>>) with one
  /// result per id, in order (errc::unknown_id for the ids that did not exist), as for
  /// send_batch_async.
  template <mtp::id_range Ids, class F>
    requires std::invocable<F&, std::vector<result<void>>&&>
  async_handle remove_batch_async(Ids&& ids, F on_done) {
    std::vector<id_t> storage;
    const std::span<const id_t> all = mtp::gather<id_t>(std::forward<Ids>(ids), storage);
    return launch_async<void>(
        all, same_id,
        [this](std::span<const id_t> local, auto done) {
          return pool_.remove_batch_async(local, [this, mine = std::vector<id_t>(local.begin(), local.end()),
                                                  done = std::move(done)](std::vector<result<void>>&& rs) mutable {
            done(ids_.note_removed(mine, std::move(rs)));
          });
        },
        impl::remove_op<sharded_pool>::key, put_id, std::move(on_done));
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
        impl::call_wait_op<sharded_pool, R>::key, [](wire::writer& w, const R& r) { wire::put(w, r); }, true, left());
    return async_handle(std::shared_ptr<impl::cancel_control>(state, &state->control));
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
      else t.local_ = pool_.post_after(std::chrono::nanoseconds(impl::saturated_ns(delay)), std::move(r));
      return t;
    }
    const std::uint64_t call = next_call();
    wire::writer w = start_message(impl::kind::post, impl::timer_op<sharded_pool, R, Periodic>::key, 1, call);
    w.pod(impl::saturated_ns(delay));
    w.pod(period);
    wire::put(w, r);
    impl::send_bytes(channel_, dest, std::move(w.bytes()));
    t.link_ = timer_link_;
    t.dest_ = dest;
    t.call_ = call;
    return t;
  }
  template <class... A, class... B>
  std::vector<result<void>> create_remote_one(id_t id, B&&... args) {
    const id_t one[1] = {id};
    const std::tuple<A...> copy(std::forward<B>(args)...);
    return run<void>(std::span<const id_t>(one), same_id,
                     [](std::span<const id_t>) -> std::vector<result<void>> { return {}; },  // never local
                     impl::create_op<sharded_pool, A...>::key, [&](wire::writer& w, id_t x) { put_create(w, x, copy); });
  }

  // The entries of remote creates (impl::create_op: [id][arguments]) and removes
  // (impl::remove_op: [id]), for the blocking and the asynchronous forms.
  static id_t same_id(id_t id) noexcept { return id; }
  template <class... A>
  static void put_create(wire::writer& w, id_t id, const std::tuple<A...>& args) {
    w.pod(id);
    wire::put_tuple(w, args);
  }
  static void put_id(wire::writer& w, id_t id) { w.pod(id); }

  // The asynchronous creates of create_async and create_batch_async: the local share goes to
  // the local pool's create_batch_async, whose callback notes the ids created.
  template <class... A, class F>
  async_handle start_creates(std::span<const create_request<A...>> all, F on_done) {
    check_arguments<A...>();
    using C = create_request<A...>;
    return launch_async<void>(
        all, [](const C& c) { return c.id; },
        [this](std::span<const C> local, auto done) {
          std::vector<id_t> mine(local.size());
          for (std::size_t i = 0; i < local.size(); ++i) mine[i] = local[i].id;
          return pool_.create_batch_async(local, [this, mine = std::move(mine), done = std::move(done)](
                                                     std::vector<result<void>>&& rs) mutable {
            done(ids_.note_created(mine, std::move(rs)));
          });
        },
        impl::create_op<sharded_pool, A...>::key, [](wire::writer& w, const C& c) { put_create(w, c.id, c.args); },
        std::move(on_done));
  }

  // A batch callback that hands its one result to `f`: the single asynchronous forms.
  template <class T, class F>
  static auto first_result(F f) {
    return [f = std::move(f)](std::vector<result<T>>&& rs) mutable { f(std::move(rs[0])); };
  }

  template <class... A>
  static constexpr void check_arguments() {
    static_assert((!std::is_pointer_v<std::decay_t<A>> && ...),
                  "mtp::mpi: a constructor argument that is a pointer (a string literal, say) would cross ranks "
                  "as an address; pass a value (std::string, ...) instead");
  }

  [[nodiscard]] bool local_quiescent() const noexcept override { return pool_.quiescent(); }

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
    impl::thread_scratch<int> kept_routes;
    std::vector<int>& routes = kept_routes.get();
    routes.resize(all.size());
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
        impl::thread_scratch<X> kept_share;  // local_fn is done with it when it returns
        std::vector<X>& share = kept_share.get();
        share.reserve(mine.size());
        for (std::uint32_t i : mine) share.push_back(all[i]);
        local_fn(std::span<const X>(share), state, std::move(mine));
      }
    }
    state->arrive();  // the launcher's own count
    return true;
  }

  // A local batch that writes its results into a span the caller gives (the local pool's
  // send_batch(requests, out)), rather than returning a vector.
  template <class LocalBatch, class X, class T>
  static constexpr bool fills = std::is_invocable_v<LocalBatch&, std::span<const X>, std::span<result<T>>>;

  // The blocking form of launch: the local share runs on the pool's blocking batch, into this
  // thread's kept results where the local batch can fill a span.
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
      if constexpr (fills<LocalBatch, X, T>) {
        std::vector<result<T>> out(all.size());
        local_batch(all, std::span<result<T>>(out));
        return out;
      } else {
        return local_batch(all);
      }
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
          impl::thread_scratch<result<T>> kept_results;
          std::vector<result<T>>& rs = kept_results.get();
          if constexpr (fills<LocalBatch, X, T>) {
            rs.resize(local.size());
            local_batch(local, std::span<result<T>>(rs));
          } else {
            rs = local_batch(local);
          }
          for (std::size_t i = 0; i < rs.size(); ++i) s->results[index[i]] = std::move(rs[i]);
          s->arrive();
        },
        op, encode, false, wait_ns);
    state->wait(spin_);
    state->wait_sent();
    if (entered) leave();
    return std::move(state->results);
  }

  // The asynchronous form of launch: on_done(std::vector<result<T>>&&) completes the call.
  // `start_local(span, done)` starts the local share on an asynchronous form of the local pool
  // with `done` as its callback, and returns its handle. The returned handle cancels the call.
  template <class T, class X, class IdOf, class StartLocal, class Encode, class F>
  async_handle launch_async(std::span<const X> all, IdOf id_of, StartLocal start_local, std::uint64_t op,
                            Encode encode, F on_done) {
    auto state = std::make_shared<impl::call_state<T>>();
    state->on_done = std::move(on_done);
    state->control.pool = this;
    launch<T>(
        state, all, id_of,
        [&](std::span<const X> local, const std::shared_ptr<impl::call_state<T>>& s, std::vector<std::uint32_t> index) {
          mtp::async_handle h = start_local(local, [s, index = std::move(index)](std::vector<result<T>>&& rs) {
            for (std::size_t i = 0; i < rs.size(); ++i) s->results[index[i]] = std::move(rs[i]);
            s->arrive();
          });
          std::lock_guard lock(s->control.m);
          s->control.local = std::move(h);
        },
        op, encode, true);
    // Aliasing: the handle keeps the whole state alive and sees its cancel control.
    return async_handle(std::shared_ptr<impl::cancel_control>(state, &state->control));
  }

  template <class X, class IdOf>
  [[nodiscard]] bool all_local(std::span<const X> all, IdOf id_of) const noexcept {
    if (ranks_ == 1 && !router_) return true;
    for (const X& x : all) {
      if (route(id_of(x)) != rank_) return false;
    }
    return true;
  }

  void report_post(const error& e) { impl::report_post(on_diag_, e); }

  // The operations that serve this pool's messages (impl/operations.hpp).
  template <class, class>
  friend struct impl::call_op;
  template <class, class>
  friend struct impl::call_wait_op;
  template <class, class>
  friend struct impl::broadcast_op;
  template <class, class>
  friend struct impl::post_op;
  template <class, class, bool>
  friend struct impl::timer_op;
  template <class, class...>
  friend struct impl::create_op;
  template <class>
  friend struct impl::remove_op;

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
  impl::item_ids ids_;  // this rank's items, for broadcast
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
