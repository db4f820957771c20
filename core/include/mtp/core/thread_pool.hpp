// SPDX-License-Identifier: MIT
// mtp::thread_pool<Item>: long-lived items, each living on one worker thread, answering
// typed requests routed by id.
//
// Threads: every member may be called from any thread, concurrently, including from a handler
// running on one of the pool's own workers (with the one exception below).
//
// Guarantees
//  - An item is constructed, runs every handler, and is destroyed on one worker thread, the
//    one its id routes to. Items therefore need no locks for their own state.
//  - Messages from one sending thread to one item run in the order sent (create, requests,
//    remove alike). More generally, causal order: if the send of message A happens-before the
//    send of message B (same thread, or ordered through any synchronisation, such as a reply
//    or a message that itself sent A) and both go to one item, A runs first. Messages sent
//    concurrently interleave.
//  - Batch responses come back in request order, one mtp::result per request.
//  - A handler that throws fails only its own request; the worker and the item carry on, also
//    when memory has run out (recording an error never throws: see mtp::result).
//  - Shutdown (or destruction) answers everything already queued, then destroys every item on
//    its own thread, children's pools first since items own them. A call after shutdown fails
//    with errc::pool_stopped; nothing hangs.
//  - Destroying a pool from one of its own workers (an item dropping the last owner of the
//    pool it lives in) stops it without waiting: that worker finishes the current message,
//    answers what is queued, destroys its items, joins the other workers and frees the pool.
//  - A blocking call (send, call, create, remove, send_batch) from a worker into its own
//    worker fails with errc::would_deadlock instead of hanging. Blocking calls between two
//    workers of one pool that wait on each other can still deadlock: use post, or a child
//    pool, for those (a hierarchy of pools, each level calling only downwards, is safe).
//
// Memory ordering: everything the caller wrote before a call is visible to the handler, and
// everything the handler wrote is visible to the caller once the call returns (or once a
// batch handle's wait() returns).
#pragma once

#include <cstdint>
#include <limits>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <mtp/core/async_slot.hpp>
#include <mtp/core/batch.hpp>
#include <mtp/core/forwarding.hpp>
#include <mtp/core/impl/item_store.hpp>
#include <mtp/core/impl/jobs.hpp>
#include <mtp/core/impl/operations.hpp>
#include <mtp/core/impl/std_parts.hpp>
#include <mtp/core/impl/typed_timers.hpp>
#include <mtp/core/impl/wait.hpp>
#include <mtp/core/impl/worker.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/options.hpp>
#include <mtp/core/result.hpp>
#include <mtp/core/stats.hpp>
#include <mtp/core/timer.hpp>

namespace mtp {

namespace impl {
/// A range of anything but ids and create_requests: a batch of requests, or of a type that is
/// not one (which the batch forms then reject with the library's own message).
template <class Range>
concept maybe_request_range = std::ranges::input_range<Range> && !id_range<Range> &&
                              !std::is_same_v<std::remove_cvref_t<Range>, std::nullptr_t>;
}  // namespace impl

template <class Item, class Hooks = no_hooks>
class thread_pool {
  using worker_type = impl::worker<Item, Hooks>;

 public:
  using item_type = Item;
  using hooks_type = Hooks;

  /// Starts the workers (one per allowed core by default; see pool_options). Each worker
  /// gets its own copy of `hooks`.
  explicit thread_pool(pool_options options = {}, const Hooks& hooks = {})
      : core_(std::make_unique<impl::pool_core>(std::move(options))) {
    core_->set_owner(this);  // before the workers start: their handlers may call this_pool()
    core_->start([&hooks](impl::pool_core& core, std::size_t k) -> std::unique_ptr<impl::worker_base> {
      return std::make_unique<worker_type>(core, k, hooks);
    });
  }
  /// Shuts down (see shutdown()). On one of the pool's own workers it does not wait: see the
  /// guarantees at the top of this file.
  ~thread_pool() { impl::pool_core::destroy(core_); }

  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;
  /// A pool can be moved (into the object that owns it, say); its workers and items stay
  /// where they are, and this_pool() in their handlers returns the new object. A moved-from
  /// pool may only be destroyed or assigned to.
  thread_pool(thread_pool&& other) noexcept : core_(std::move(other.core_)) {
    if (core_) core_->set_owner(this);
  }
  thread_pool& operator=(thread_pool&& other) noexcept {
    if (this != &other) {
      impl::pool_core::destroy(core_);
      core_ = std::move(other.core_);
      if (core_) core_->set_owner(this);
    }
    return *this;
  }

  // ---- Items -------------------------------------------------------------------------------

  /// Constructs `Item(id, args...)` on the item's worker. Throws pool_error(duplicate_id)
  /// without running the constructor if the id exists, rethrows the constructor's exception
  /// (no item is added), or throws pool_error (pool_stopped, would_deadlock, invalid_route).
  template <class... A>
  void create(id_t id, A&&... args) {
    check_constructible<A&&...>();
    auto refs = std::forward_as_tuple(std::forward<A>(args)...);
    run_one(impl::create_op<decltype(refs), true>{&refs}, id).value();
  }

  /// Creates one item per id (any input range of ids), each as `Item(id, args...)` with copies
  /// of the same arguments. One result per id, in order.
  template <id_range Ids, class... A>
  std::vector<result<void>> create_batch(Ids&& ids, const A&... args) {
    check_constructible<const A&...>();
    const std::tuple<const A&...> refs(args...);
    std::vector<id_t> storage;
    return run_many(impl::create_op<const std::tuple<const A&...>, false>{&refs},
                    mtp::gather<id_t>(std::forward<Ids>(ids), storage));
  }

  /// Creates one item per request (any input range of mtp::create_request<A...>), each from
  /// its own arguments.
  template <std::ranges::input_range Range>
    requires impl::is_create_request<std::ranges::range_value_t<Range>>
  std::vector<result<void>> create_batch(Range&& requests) {
    using request_type = std::ranges::range_value_t<Range>;
    using op = typename impl::create_each_op_for<request_type>::type;
    op::template check<Item>();
    std::vector<request_type> storage;
    return run_many(op{}, mtp::gather<request_type>(std::forward<Range>(requests), storage));
  }

  /// Destroys the item on its worker, after the messages queued for it before. Returns false
  /// if no such item existed; throws pool_error (pool_stopped, would_deadlock, invalid_route).
  bool remove(id_t id) {
    result<void> r = run_one(impl::remove_op{}, id);
    if (r.has_error() && r.error().code == errc::unknown_id) return false;
    r.value();
    return true;
  }

  /// Removes many (any input range of ids); errc::unknown_id for the ids that did not exist.
  template <id_range Ids>
  std::vector<result<void>> remove_batch(Ids&& ids) {
    std::vector<id_t> storage;
    return run_many(impl::remove_op{}, mtp::gather<id_t>(std::forward<Ids>(ids), storage));
  }

  // ---- Requests ----------------------------------------------------------------------------

  /// One round trip: sends `r` to item `r.id` and returns its response. Throws what the
  /// handler threw, or pool_error (unknown_id, pool_stopped, would_deadlock, invalid_route).
  template <class R>
  impl::response_of_t<R> send(const R& r) {
    impl::check_handles<Item, R>();  // a type that is not a request is told why here
    if constexpr (request<R>) return run_one(impl::request_op<R>{}, r).value();
    else return {};
  }

  /// A method message round trip: `pool.call(id, &counter::increment, 5)`.
  template <class F, class... A>
    requires std::is_member_function_pointer_v<F>
  decltype(auto) call(id_t id, F fn, A&&... args) {
    return send(make_call(id, fn, std::forward<A>(args)...));
  }
  /// The same with the member as a template argument, the spelling mtp::mpi's sharded pool
  /// takes too: `pool.call<&counter::increment>(id, 5)`. The timed and asynchronous forms
  /// take the request: `pool.send(mtp::make_call<&counter::increment>(id, 5), 10ms)`.
  template <auto Member, class... A>
    requires std::is_member_function_pointer_v<decltype(Member)>
  decltype(auto) call(id_t id, A&&... args) {
    return send(make_call<Member>(id, std::forward<A>(args)...));
  }

  /// Sends a batch (any mix of ids, any number per id) and waits. Responses come back in
  /// request order. The batch is split per worker and each worker gets its whole share in one
  /// queue operation; the caller is woken once. Any input range of requests works: a
  /// contiguous one is read in place, others (a view such as
  /// `std::views::iota(0, n) | std::views::transform(make_request)`, a std::deque, a
  /// generator) are gathered once first.
  template <impl::maybe_request_range Range>
  std::vector<result<impl::response_of_t<std::ranges::range_value_t<Range>>>> send_batch(Range&& requests) {
    using R = std::ranges::range_value_t<Range>;
    impl::check_handles<Item, R>();
    if constexpr (request<R>) {
      std::vector<R> storage;
      return run_many(impl::request_op<R>{}, mtp::gather<R>(std::forward<Range>(requests), storage));
    } else {
      return {};
    }
  }

  /// As send_batch, writing response i into out[i] (out.size() must equal the batch size):
  /// no allocation at all when `out` is reused.
  template <request R>
  void send_batch(std::span<const R> requests, std::span<result<response_t<R>>> out) {
    impl::check_handles<Item, R>();
    if (out.size() != requests.size()) {
      throw std::invalid_argument("mtp::thread_pool::send_batch: output span size differs from the batch size");
    }
    run_into(impl::request_op<R>{}, requests.data(), out.data(), requests.size());
  }

  /// As send, giving up after `timeout`: then throws pool_error(timed_out). A request that
  /// has not started by then is skipped; one that has started finishes, and its response is
  /// discarded.
  template <class R, class Rep, class Period>
  impl::response_of_t<R> send(const R& r, std::chrono::duration<Rep, Period> timeout) {
    impl::check_handles<Item, R>();
    if constexpr (request<R>) {
      return std::move(run_timed(std::span<const R>(&r, 1), impl::deadline_after(timeout))[0]).value();
    } else {
      return {};
    }
  }

  /// As send_batch, giving up after `timeout`. If every response arrived in time they are
  /// returned as usual; otherwise every result is errc::timed_out, the requests that had not
  /// started are skipped, and those that had run are not undone (their responses are
  /// discarded). The requests are copied, so the caller's storage may go away at once.
  template <request_range Range, class Rep, class Period>
  auto send_batch(Range&& requests, std::chrono::duration<Rep, Period> timeout) {
    using R = std::ranges::range_value_t<Range>;
    impl::check_handles<Item, R>();
    const time_point deadline = impl::deadline_after(timeout);  // the clock starts before gathering
    std::vector<R> storage;
    return run_timed(mtp::gather<R>(std::forward<Range>(requests), storage), deadline);
  }

  /// As submit_batch(std::vector) below, from any input range of requests (copied into the
  /// batch).
  template <request_range Range>
    requires(!std::same_as<std::remove_cvref_t<Range>, std::vector<std::ranges::range_value_t<Range>>>)
  batch<response_t<std::ranges::range_value_t<Range>>> submit_batch(Range&& requests) {
    // The batch owns its requests.
    return submit_batch(mtp::to_vector<std::ranges::range_value_t<Range>>(std::forward<Range>(requests)));
  }
  /// Starts a batch and returns at once; the handle's wait() returns the responses in
  /// request order. One caller can keep several batches, or several pools, busy this way.
  /// It never blocks: on a bounded queue with no room, the requests that do not fit get
  /// errc::queue_full. From a worker of this pool, requests for that worker's own items are
  /// queued behind the current message (the handle's wait() there throws would_deadlock
  /// until they have run).
  template <class R>
  batch<impl::response_of_t<R>> submit_batch(std::vector<R> requests) {
    impl::check_handles<Item, R>();
    if constexpr (request<R>) return submit(std::move(requests));
    else return {};
  }

  /// Fire and forget: enqueues `r` and returns at once. No response storage is used; a failure
  /// on the worker (unknown id, a throwing handler) goes to the diagnostic hook. The returned
  /// result says whether it was sent: errc::pool_stopped, errc::invalid_route or
  /// errc::queue_full otherwise. Small trivially copyable requests travel inside the queue
  /// slot; others are moved to one heap copy that the worker frees.
  template <class R>
  result<void> post(R r) {
    impl::check_handles<Item, R>();
    if constexpr (request<R>) return post_request(std::move(r));
    else return {};
  }

  // ---- Asynchronous forms: a callback instead of a waiting caller -------------------------

  /// Starts one request and returns at once. `on_done(mtp::result<T>)` is called exactly once:
  /// on the worker that ran the request, right after it, or, when the request could not be
  /// sent (pool_stopped, invalid_route, queue_full on a bounded queue: this never waits for
  /// room), on the calling thread before send_async returns. Keep the callback short and
  /// non-blocking (it runs on a worker; hand the result to your own executor, as the Asio
  /// adapter does); what it throws goes to the diagnostic hook. The request, its response and
  /// the callback share one allocation; the callback needs no other. Per-sender and causal
  /// order are those of every other send. From a worker, requests to its own items are fine.
  /// On the worker, the callback runs as a message of its request: this_worker::current_id()
  /// there is the request's id, also when no handler ran (unknown id, cancelled); the message
  /// hooks do not run around it. On the calling thread, current_id() is that thread's own.
  template <request R, class F>
    requires std::invocable<F&, result<response_t<R>>&&>
  async_handle send_async(R r, F on_done) {
    impl::check_handles<Item, R>();
    return start_async<impl::request_op<R>>(std::move(r), std::move(on_done));
  }

  /// Starts a request whose storage the caller owns (see mtp::async_slot: `slot.done` is called
  /// exactly once, on the worker as the pool's last touch, or here when it could not be sent)
  /// and allocates nothing. What co_await mtp::async and the Asio adapter use.
  template <request R>
  void send_async(async_slot<R>& slot) {
    impl::check_handles<Item, R>();
    std::optional<error> failed = send_async_envelope<impl::request_op<R>>(
        static_cast<id_t>(slot.input.id), impl::envelope::make(&impl::serve_async_slot<worker_type, R>, &slot));
    if (!failed) return;
    slot.out.set_error(std::move(*failed));
    slot.done(slot);
  }

  /// A batch with a callback: returns at once; `on_done(std::vector<mtp::result<T>>)` is
  /// called exactly once with the responses in request order, on the worker that answered
  /// the last piece (or on the calling thread when nothing could be sent). Any input range of
  /// requests (copied into the batch). Never waits for room: what does not fit a bounded
  /// queue gets queue_full. The same rules for the callback as send_async. On a worker,
  /// this_worker::current_id() in the callback is the id of the batch's last request (in
  /// request order; the one that worker ran last may be another); on the calling thread, it
  /// is that thread's own.
  template <request_range Range, class F>
    requires std::invocable<F&, std::vector<result<response_t<std::ranges::range_value_t<Range>>>>&&>
  async_handle send_batch_async(Range&& requests, F on_done) {
    using R = std::ranges::range_value_t<Range>;
    impl::check_handles<Item, R>();
    return start_batch_async<impl::request_op<R>>(std::forward<Range>(requests), std::move(on_done));
  }

  // ---- Asynchronous lifecycle: create and remove without waiting ---------------------------

  /// Starts `Item(r.id, args...)` on the item's worker and returns at once;
  /// `on_done(mtp::result<void>)` is called exactly once, as for send_async: empty on success,
  /// else errc::duplicate_id (no constructor ran), errc::constructor_failed (with the
  /// constructor's exception), or errc::pool_stopped / invalid_route / cancelled. The
  /// arguments are moved into the item. Per-sender and causal order are those of create: a
  /// request sent after create_async returns runs after the item is built. A bounded queue
  /// never holds a create back. `mtp::make_create(id, args...)` builds the request.
  template <class... A, class F>
    requires std::invocable<F&, result<void>&&>
  async_handle create_async(create_request<A...> r, F on_done) {
    check_constructible<A&&...>();
    return start_async<impl::create_each_op<A...>>(std::move(r), std::move(on_done));
  }

  /// Starts the removal of item `id` (destroyed on its worker, after the messages queued for it
  /// before) and returns at once; `on_done(mtp::result<void>)` is called exactly once, as for
  /// send_async: empty once the item is gone, errc::unknown_id if there was none, or
  /// errc::pool_stopped / invalid_route / cancelled. A bounded queue never holds it back.
  template <class F>
    requires std::invocable<F&, result<void>&&>
  async_handle remove_async(id_t id, F on_done) {
    return start_async<impl::remove_op>(id, std::move(on_done));
  }

  /// create_batch's asynchronous form: any input range of mtp::create_request<A...> (copied
  /// into the batch); `on_done(std::vector<mtp::result<void>>)` with one result per request,
  /// in order, as for send_batch_async.
  template <std::ranges::input_range Range, class F>
    requires impl::is_create_request<std::ranges::range_value_t<Range>> &&
             std::invocable<F&, std::vector<result<void>>&&>
  async_handle create_batch_async(Range&& requests, F on_done) {
    using op = typename impl::create_each_op_for<std::ranges::range_value_t<Range>>::type;
    op::template check<Item>();
    return start_batch_async<op>(std::forward<Range>(requests), std::move(on_done));
  }

  /// remove_batch's asynchronous form: any input range of ids; `on_done(std::vector<
  /// mtp::result<void>>)` with one result per id, in order (errc::unknown_id for the ids that
  /// did not exist), as for send_batch_async.
  template <id_range Ids, class F>
    requires std::invocable<F&, std::vector<result<void>>&&>
  async_handle remove_batch_async(Ids&& ids, F on_done) {
    return start_batch_async<impl::remove_op>(std::forward<Ids>(ids), std::move(on_done));
  }

  // ---- Timers: delayed and periodic messages (<mtp/core/timer.hpp>) ------------------------

  /// Posts `r` to its item once `delay` has passed (any duration type, saturated: one too
  /// large never fires, zero or negative fires at the next chance). The message runs on the
  /// item's worker like a post (a failure goes to the diagnostic hook), in deadline order;
  /// equal deadlines keep the order in which the worker received them. The deadline is fixed
  /// here, when the call is made.
  /// Rules: removing the item (or its passivation) cancels the timers armed while it lived;
  /// a timer armed when no item had its id fires like a post to it (reported unknown_id, or
  /// activating the item where Item::activate_on_first_message is set); shutdown drops the
  /// timers still pending and counts them (worker_stats::timers_dropped).
  /// Throws pool_error: pool_stopped, invalid_route, queue_full (a bounded queue with no room:
  /// this never waits), out_of_memory. From a handler, mtp::this_pool<Item>().post_after(...)
  /// schedules the item's own ticks (on its own worker without a trip through the queue).
  template <request R, class Rep, class Period>
  timer post_after(std::chrono::duration<Rep, Period> delay, R r) {
    return schedule<false>(impl::timer_ticks(impl::deadline_after(delay)), 0, std::move(r));
  }
  /// As post_after, at a steady_clock instant (any duration type, saturated).
  template <request R, class Duration>
  timer post_at(std::chrono::time_point<std::chrono::steady_clock, Duration> when, R r) {
    return schedule<false>(impl::timer_ticks_saturated(when), 0, std::move(r));
  }
  /// Posts a copy of `r` every `period`, the first one `period` from now, until cancelled, the
  /// item removed or the pool stopped. Ticks that could not be kept (a busy worker) are
  /// skipped, not run in a burst. Throws std::invalid_argument for a period of zero or less,
  /// and what post_after throws.
  template <request R, class Rep, class Period>
  timer post_every(std::chrono::duration<Rep, Period> period, R r) {
    static_assert(std::is_copy_constructible_v<R>, "mtp: post_every needs a copyable request: each tick gets a copy");
    std::int64_t every = 0;
    if (!impl::timer_period(period, every)) {
      throw std::invalid_argument("mtp::thread_pool::post_every: the period must be greater than zero");
    }
    return schedule<true>(impl::timer_ticks(impl::deadline_after(period)), every, std::move(r));
  }

  /// An item's own re-armable timeout (see mtp::timeout): `request` goes to its item when the
  /// timeout expires. Call it on the worker of `request.id` (in the item's constructor or a
  /// handler, typically through mtp::this_pool<Item>()); it starts disarmed. Throws
  /// std::logic_error elsewhere.
  template <request R>
  timeout make_timeout(R request) {
    impl::check_handles<Item, R>();
    static_assert(std::is_copy_constructible_v<R>, "mtp: a timeout needs a copyable request: each firing gets a copy");
    impl::worker_base* const w = impl::tl_current_worker;
    const std::uint32_t k = core_->route(static_cast<id_t>(request.id));
    if (w == nullptr || &w->pool() != core_.get() || w->index() != k) {
      throw std::logic_error("mtp::thread_pool::make_timeout: call it on the worker of the item it is for");
    }
    return timeout(new impl::item_timeout<worker_type, R>(std::move(request)), w);
  }

  // ---- Lifecycle and introspection ---------------------------------------------------------

  /// Stops accepting requests, answers everything already queued, destroys every item on its
  /// own thread, and joins the workers. Idempotent and thread-safe. Throws
  /// pool_error(would_deadlock) when called from one of this pool's own workers.
  void shutdown() { core_->shutdown(); }

  /// Tracing on (pool_options::trace_file or MTP_TRACE): writes what the workers recorded so
  /// far to `path` as Chrome trace-event JSON, without stopping them (each worker copies its
  /// own events between two messages). Shutdown writes the whole trace to the trace file.
  void write_trace(const std::string& path) { core_->write_trace(path); }

  [[nodiscard]] std::size_t worker_count() const noexcept { return core_->worker_count(); }
  /// The worker an id routes to. Throws pool_error(invalid_route) when the router throws or
  /// returns an index out of range.
  [[nodiscard]] std::size_t worker_of(id_t id) const {
    const std::uint32_t k = core_->route(id);
    if (k == impl::pool_core::k_bad_route) error{errc::invalid_route, id, {}}.raise();
    return k;
  }
  /// The placement the workers were started with (its notes say e.g. "workers share CPUs").
  [[nodiscard]] const mtp::placement& placement() const noexcept { return core_->placement(); }

  /// Whether the pool is quiescent now: no message is queued on any worker and none runs
  /// (housekeeping and due timers included). Work starts only from a message, so once no
  /// thread outside the pool sends, a true answer stays true until a timer fires or someone
  /// sends again; while outside threads send it is a sample. It reads each worker twice and
  /// stops or slows none of them (mtp::mpi's sharded pool builds quiescence across ranks on it).
  [[nodiscard]] bool quiescent() const noexcept { return core_->quiescent(); }

  /// A snapshot of every worker; does not stop or slow the workers.
  [[nodiscard]] pool_stats stats() const {
    pool_stats s;
    for (std::size_t k = 0; k < core_->worker_count(); ++k) {
      const impl::worker_base& w = core_->worker(k);
      s.workers.push_back({k, w.item_count(), w.messages_processed(), w.queue_depth(), w.where(), w.pinned(),
                           w.senders_waiting(), w.timers_pending(), w.timers_dropped()});
    }
    return s;
  }

 private:
  using time_point = impl::time_point;

  template <class... A>
  static constexpr void check_constructible() {
    static_assert(std::is_constructible_v<Item, id_t, A...>,
                  "mtp: the pool item has no constructor Item(mtp::id_t, Args...) for these arguments");
  }

  // How a send of Op treats bounded queues: create and remove are never held back.
  template <class Op>
  [[nodiscard]] impl::send_policy policy(time_point deadline, errc no_room = errc::timed_out) const noexcept {
    return {Op::k_control ? 0 : core_->options().queue_capacity, deadline, no_room};
  }

  // The response slot and completion of one round trip, together on one cache line: the
  // worker writes the response and then the completion, so the caller, spinning on the
  // completion, takes the line back once.
  template <class T>
  struct alignas(impl::k_cache_line) reply {
    result<T> out;
    impl::completion done;
  };

  // The asynchronous forms of every operation: the input, its result and the callback in one
  // allocation, shared with the worker (see impl::async_single). The callback runs on the
  // worker, or here when nothing could be sent, outside the send gate.
  template <class Op, class F>
  async_handle start_async(typename Op::input input, F on_done) {
    using S = impl::async_single<Op, F>;
    auto owned = std::make_unique<S>(std::move(input), std::move(on_done));
    S* const s = owned.get();
    std::optional<error> failed =
        send_async_envelope<Op>(Op::id_of(s->input), impl::envelope::make(&impl::serve_async_single<worker_type, S>, s));
    if (!failed) return async_handle(owned.release());  // the worker holds the other reference
    s->out.set_error(std::move(*failed));
    s->complete(*core_, 0);
    s->release();  // the reference no worker will drop
    return async_handle(owned.release());
  }

  // Sends the envelope of one asynchronous operation: nothing, or why it could not be sent.
  // Never waits for room. The gate is left on return, so that the caller's completion of a
  // failed send runs outside it.
  template <class Op>
  std::optional<error> send_async_envelope(id_t id, const impl::envelope& e) {
    const std::uint32_t k = core_->route(id);
    if (k == impl::pool_core::k_bad_route) return error{errc::invalid_route, id, {}};
    impl::send_gate gate(*core_);
    if (!gate.open()) return error{errc::pool_stopped, id, {}};
    try {
      if (core_->send_one(k, e, policy<Op>(time_point::min(), errc::queue_full))) return std::nullopt;
      return error{errc::queue_full, id, {}};
    } catch (...) {
      return error{errc::queue_full, id, std::current_exception()};
    }
  }

  template <class Op, class Range, class F>
  async_handle start_batch_async(Range&& inputs, F on_done) {
    using S = impl::async_batch<Op, F>;
    auto owned = std::make_unique<S>(mtp::to_vector<typename Op::input>(std::forward<Range>(inputs)),
                                     std::move(on_done), *core_);
    S* const s = owned.get();
    const typename S::sending_scope sending(s);  // a callback run during the send is the caller's
    const impl::worker_base* own_share = nullptr;  // allowed: nobody waits for an async batch
    const std::uint32_t pieces = start(s->job, s->requests.size(), s->order,
                                       policy<Op>(time_point::min(), errc::queue_full), &own_share);
    if (pieces == 0) {  // every result was answered here: complete here
      s->job.on_complete(s->job);
      s->release();
    }
    return async_handle(owned.release());
  }

  template <request R>
  batch<response_t<R>> submit(std::vector<R> requests) {
    using Op = impl::request_op<R>;
    struct state final : impl::async_state<response_t<R>> {
      std::vector<R> requests;
      std::vector<std::uint32_t> order;
      impl::batch_job<Op> job{Op{}, nullptr, nullptr, nullptr};
    };
    auto owned = std::make_unique<state>();
    state* s = owned.get();
    s->destroy = [](impl::shared_control* c) noexcept { delete static_cast<state*>(c); };
    s->requests = std::move(requests);
    s->results.resize(s->requests.size());
    s->spin = core_->options().caller_spin;
    s->pool = core_.get();
    s->shares = std::make_unique<std::atomic<std::uint32_t>[]>(core_->worker_count());  // all zero
    s->job = impl::batch_job<Op>(Op{}, s->requests.data(), s->results.data(), &s->done, s);
    s->job.shares = s->shares.get();
    const impl::worker_base* own_share = nullptr;  // allowed: batch::wait() checks the shares
    const std::uint32_t pieces = start(s->job, s->requests.size(), s->order,
                                       policy<Op>(time_point::min(), errc::queue_full), &own_share);
    (void)owned.release();  // from here on the two references manage it
    if (pieces == 0) s->release();  // no worker will ever arrive: drop the workers' reference
    return batch<response_t<R>>(s);
  }

  template <bool Periodic, request R>
  timer schedule(std::int64_t deadline, std::int64_t period, R r) {
    impl::check_handles<Item, R>();
    using node_type = impl::pool_timer<worker_type, R, Periodic>;
    const id_t id = static_cast<id_t>(r.id);
    const std::uint32_t k = core_->route(id);
    if (k == impl::pool_core::k_bad_route) error{errc::invalid_route, id, {}}.raise();
    impl::send_gate gate(*core_);
    if (!gate.open()) error{errc::pool_stopped, id, {}}.raise();
    std::unique_ptr<node_type> owned;
    try {
      owned = std::make_unique<node_type>(std::move(r), deadline, period);
    } catch (const std::bad_alloc&) {
      error{errc::out_of_memory, id, {}}.raise();
    }
    node_type* const t = owned.get();
    impl::worker_base& target = core_->worker(k);
    if (impl::tl_current_worker == &target) {
      // From a handler on the item's own worker: straight into its heap, no trip through the
      // queue (the worker is this thread, between the steps of a message).
      (void)owned.release();
      node_type::arm(static_cast<worker_type&>(target), t);
      return timer(t);
    }
    try {
      if (!core_->send_one(k, impl::envelope::make(&node_type::run_arm, t),
                           policy<impl::request_op<R>>(time_point::min(), errc::queue_full))) {
        error{errc::queue_full, id, {}}.raise();
      }
    } catch (const std::bad_alloc&) {
      error{errc::out_of_memory, id, {}}.raise();
    }
    (void)owned.release();  // the worker and the handle share it
    return timer(t);
  }

  template <request R>
  result<void> post_request(R r) {
    const id_t id = static_cast<id_t>(r.id);
    const std::uint32_t k = core_->route(id);
    if (k == impl::pool_core::k_bad_route) return error{errc::invalid_route, id, {}};
    impl::send_gate gate(*core_);
    if (!gate.open()) return error{errc::pool_stopped, id, {}};
    const impl::send_policy never_wait = policy<impl::request_op<R>>(time_point::min(), errc::queue_full);
    try {
      constexpr bool fits = std::is_trivially_copyable_v<R> && sizeof(R) <= impl::envelope::k_payload;
      if constexpr (fits) {
        if (!core_->send_one(k, impl::envelope::make(&impl::serve_posted<worker_type, R, true>, r), never_wait)) {
          return error{errc::queue_full, id, {}};
        }
      } else {
        auto owned = std::make_unique<R>(std::move(r));
        if (!core_->send_one(k, impl::envelope::make(&impl::serve_posted<worker_type, R, false>, owned.get()),
                             never_wait)) {
          return error{errc::queue_full, id, {}};
        }
        (void)owned.release();  // the worker frees it
      }
    } catch (...) {
      return error{errc::queue_full, id, std::current_exception()};  // no memory for the message
    }
    return unit{};
  }

  // Routes one request: its worker, or k_answered after answering it here (bad route, or a
  // blocking call into the caller's own worker).
  template <class Op>
  std::uint32_t route_one(const typename Op::input& input, result<typename Op::output>& out,
                          const impl::worker_base* own) const {
    const id_t id = Op::id_of(input);
    const std::uint32_t k = core_->route(id);
    if (k == impl::pool_core::k_bad_route) {
      out.set_error(error{errc::invalid_route, id, {}});
      return impl::pool_core::k_answered;
    }
    if (own != nullptr && k == own->index()) {
      out.set_error(error{errc::would_deadlock, id, {}});
      return impl::pool_core::k_answered;
    }
    return k;
  }

  // The round trip: the request travels inside the envelope when it fits (see impl::single).
  //
  // The blocking forms read the pool object (core_) only before they enqueue: while a caller
  // waits, the pool object may be moved from, or destroyed by one of its items, and the caller
  // keeps to the pool core, which outlives every message in flight.
  template <class Op>
  result<typename Op::output> run_one(const Op& op, const typename Op::input& input) {
    impl::pool_core& core = *core_;
    reply<typename Op::output> r;
    impl::batch_job<Op> job(op, &input, &r.out, &r.done);  // the path for requests too big for an envelope
    std::uint32_t k = impl::pool_core::k_answered;
    std::uint32_t unsent = 0;
    {
      impl::send_gate gate(core);
      if (!gate.open()) return error{errc::pool_stopped, Op::id_of(input), {}};
      k = route_one<Op>(input, r.out, core.own_worker());
      if (k == impl::pool_core::k_answered) return std::move(r.out);
      if constexpr (impl::fits_envelope<Op>) {
        r.done.reset(1);
        const impl::single<Op> s{&r.out, &r.done, op, input};
        try {
          // Never false: the deadline is max, so a bounded queue waits for room.
          (void)core.send_one(k, impl::envelope::make(&impl::serve_single<worker_type, Op>, s),
                              policy<Op>(time_point::max()));
        } catch (...) {
          return error{errc::queue_full, Op::id_of(input), std::current_exception()};
        }
      } else {
        core.dispatch(job, &k, 1, &impl::serve_chunk<worker_type, Op>, policy<Op>(time_point::max()),
                      impl::scratch_order(), unsent);
      }
    }
    if (unsent != 0) job.arrive();  // answered here, outside the gate
    wait_near(core, r.done, k);
    return std::move(r.out);
  }

  static void wait_near(const impl::pool_core& core, impl::completion& done, std::uint32_t k) noexcept {
    const bool near = core.worker(k).pinned_to(impl::current_cpu());
    done.wait(core.options().caller_spin, near ? impl::k_yield_always : impl::k_yield_every);
  }

  template <class Op>
  std::vector<result<typename Op::output>> run_many(const Op& op, std::span<const typename Op::input> inputs) {
    std::vector<result<typename Op::output>> out(inputs.size());
    run_into(op, inputs.data(), out.data(), inputs.size());
    return out;
  }

  // Blocking form: the job lives on this stack frame until the completion fires.
  template <class Op>
  void run_into(const Op& op, const typename Op::input* inputs, result<typename Op::output>* out, std::size_t n) {
    impl::completion done;
    impl::batch_job<Op> job(op, inputs, out, &done);
    // Read before the send: see run_one.
    const auto spin = core_->options().caller_spin;
    const unsigned yield_every = caller_shares_a_cpu() ? impl::k_yield_always : impl::k_yield_every;
    start(job, n, impl::scratch_order(), policy<Op>(time_point::max()));
    done.wait(spin, yield_every);
    impl::trim_scratch();
  }

  // Whether one of the workers is pinned to the caller's current CPU: a batch's caller then
  // yields at every poll, since spinning would take that worker's CPU away from it.
  [[nodiscard]] bool caller_shares_a_cpu() const noexcept {
    const int cpu = impl::current_cpu();
    for (std::size_t k = 0; k < core_->worker_count(); ++k) {
      if (core_->worker(k).pinned_to(cpu)) return true;
    }
    return false;
  }

  // Routes every request once, then hands the batch to the one send path. `order` receives
  // the per-worker index lists and must live until the completion fires. `own_share`, when
  // given, marks a batch that may not be waited for on the caller's own worker: it allows
  // requests for that worker (queued behind the current message) and receives the worker if
  // some went there; without it such requests get would_deadlock. Returns the number of
  // arrivals the completion expects (0 when every result is already filled).
  template <class Op>
  std::uint32_t start(impl::batch_job<Op>& job, std::size_t n, std::vector<std::uint32_t>& order,
                      const impl::send_policy& send, const impl::worker_base** own_share = nullptr) {
    if (n > std::numeric_limits<std::uint32_t>::max() - 2) {
      throw std::length_error("mtp: a batch may hold at most 2^32 - 3 requests");
    }
    std::uint32_t pieces = 0;
    std::uint32_t unsent = 0;
    {
      impl::send_gate gate(*core_);
      if (!gate.open()) {
        for (std::size_t i = 0; i < n; ++i) job.results[i].set_error(error{errc::pool_stopped, Op::id_of(job.inputs[i]), {}});
        job.done->reset(0);
        return 0;
      }
      const impl::worker_base* const own = core_->own_worker();
      std::vector<std::uint32_t>& routes = impl::scratch_routes();
      routes.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        routes[i] = route_one<Op>(job.inputs[i], job.results[i], own_share == nullptr ? own : nullptr);
        if (own_share != nullptr && own != nullptr && routes[i] == own->index()) *own_share = own;
      }
      pieces = core_->dispatch(job, routes.data(), n, &impl::serve_chunk<worker_type, Op>, send, order, unsent);
    }
    // Pieces answered here arrive outside the gate: the last arrival may run the batch's
    // completion callback, which may send, shut the pool down or destroy it.
    for (std::uint32_t i = 0; i < unsent; ++i) job.arrive();
    return pieces;
  }

  // The timed forms: the batch lives on the heap, shared with the workers, so that the caller
  // can walk away at the deadline. Requests are copied, since the caller's may be gone by then.
  template <class R>
  std::vector<result<response_t<R>>> run_timed(std::span<const R> requests, time_point deadline) {
    using T = response_t<R>;
    using Op = impl::request_op<R>;
    struct state final : impl::shared_control {
      std::vector<R> inputs;
      std::vector<result<T>> results;
      std::vector<std::uint32_t> order;
      impl::completion done;
      impl::batch_job<Op> job{Op{}, nullptr, nullptr, nullptr};
    };
    auto owned = std::make_unique<state>();
    state* s = owned.get();
    s->destroy = [](impl::shared_control* c) noexcept { delete static_cast<state*>(c); };
    s->inputs.assign(requests.begin(), requests.end());
    s->results.resize(requests.size());
    s->job = impl::batch_job<Op>(Op{}, s->inputs.data(), s->results.data(), &s->done, s);
    const auto spin = core_->options().caller_spin;  // read before the send: see run_one
    const std::uint32_t pieces = start(s->job, requests.size(), s->order, policy<Op>(deadline));
    (void)owned.release();  // from here on the two references manage it
    if (pieces == 0) s->release();  // no worker will ever arrive: drop the workers' reference
    std::vector<result<T>> out;
    if (s->done.wait_until(spin, deadline)) {
      out = std::move(s->results);
    } else {
      // relaxed: the workers only need to notice eventually; they skip what they see cancelled.
      s->cancelled.store(true, std::memory_order_relaxed);
      out.reserve(requests.size());
      for (const R& r : s->inputs) out.push_back(error{errc::timed_out, static_cast<id_t>(r.id), {}});
    }
    s->release();
    return out;
  }

  std::unique_ptr<impl::pool_core> core_;
};

/// The pool that runs the calling handler: how an item reaches its own pool, to post to its
/// siblings or to create and remove items. Callable from a handler, an item's constructor or
/// destructor, and the hooks, on the pool's workers; name the pool's item type (and its hooks
/// type, if it has one).
///
///     void handle(const transfer& t) {
///       mtp::this_pool<account>().post(deposit{t.to, t.amount});   // to a sibling item
///     }
///
/// The reference is valid while the pool object exists: through shutdown (whose closed gate
/// answers the pool's calls with errc::pool_stopped) and after a move (it names the new object).
/// Throws std::logic_error off the pool's workers, naming the problem: on a thread that is no
/// worker, or on a worker of a pool of another type. Throws pool_error(pool_stopped) once one
/// of the pool's items has destroyed the pool object (see the guarantees at the top of this
/// file); an item that does so must know that no other handler of the pool is using the
/// reference at that moment, as for any object destroyed while others use it.
/// A blocking call (send, call, create, remove) from a handler into its own worker fails with
/// errc::would_deadlock, as always: post to siblings, or use the asynchronous forms.
template <class Item, class Hooks = no_hooks>
[[nodiscard]] thread_pool<Item, Hooks>& this_pool() {
  const impl::worker_base* const w = impl::tl_current_worker;
  // One type comparison (an address, or a name where the ABI compares names); no cast.
  if (w == nullptr || typeid(*w) != typeid(impl::worker<Item, Hooks>)) [[unlikely]] {
    impl::throw_not_this_pool(typeid(thread_pool<Item, Hooks>), w);
  }
  void* const owner = w->pool().owner();
  if (owner == nullptr) [[unlikely]] impl::throw_pool_object_gone();
  return *static_cast<thread_pool<Item, Hooks>*>(owner);
}

}  // namespace mtp
