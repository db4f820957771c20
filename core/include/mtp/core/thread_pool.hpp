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
//    remove alike). Messages from different threads interleave.
//  - Batch responses come back in request order, one mtp::result per request.
//  - A handler that throws fails only its own request; the worker and the item carry on.
//  - Shutdown (or destruction) answers everything already queued, then destroys every item on
//    its own thread, children's pools first since items own them. A call after shutdown fails
//    with errc::pool_stopped; nothing hangs.
//  - A blocking call (send, call, create, remove, send_batch) from a worker into its own
//    worker fails with errc::would_deadlock instead of hanging. Blocking calls between two
//    workers of one pool that wait on each other can still deadlock: use post, or a child
//    pool, for those (a hierarchy of pools, each level calling only downwards, is safe).
//
// Memory ordering: everything the caller wrote before a call is visible to the handler, and
// everything the handler wrote is visible to the caller once the call returns (or once a
// batch handle's wait() returns).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <memory>
#include <ranges>
#include <span>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <mtp/core/batch.hpp>
#include <mtp/core/impl/typed_worker.hpp>
#include <mtp/core/impl/wait.hpp>
#include <mtp/core/impl/worker.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/options.hpp>
#include <mtp/core/result.hpp>
#include <mtp/core/stats.hpp>

namespace mtp {

namespace impl {
/// Per-thread scratch for splitting blocking batches (one blocking call per thread at a time).
std::vector<std::uint32_t>& scratch_order();
std::vector<std::uint32_t>& scratch_counts();
}  // namespace impl

template <class Item, class Hooks = no_hooks>
class thread_pool {
  using worker_type = impl::worker<Item, Hooks>;

 public:
  using item_type = Item;
  using hooks_type = Hooks;

  /// Starts the workers (one per allowed core by default; see pool_options). Each worker
  /// gets its own copy of `hooks`.
  explicit thread_pool(pool_options options = {}, const Hooks& hooks = {}) : core_(std::move(options)) {
    core_.start([&hooks](impl::pool_core& core, std::size_t k) -> std::unique_ptr<impl::worker_base> {
      return std::make_unique<worker_type>(core, k, hooks);
    });
  }
  /// Shuts down (see shutdown()).
  ~thread_pool() { core_.shutdown(); }

  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

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

  /// Creates one item per id, each as `Item(id, args...)` with copies of the same arguments.
  /// One result per id, in order.
  template <class... A>
  std::vector<result<void>> create_batch(std::span<const id_t> ids, const A&... args) {
    check_constructible<const A&...>();
    const std::tuple<const A&...> refs(args...);
    return run_many(impl::create_op<const std::tuple<const A&...>, false>{&refs}, ids);
  }

  /// Creates one item per request (a contiguous range of mtp::create_request<A...>), each
  /// from its own arguments.
  template <std::ranges::contiguous_range Range>
    requires impl::is_create_request<std::ranges::range_value_t<Range>>
  std::vector<result<void>> create_batch(const Range& requests) {
    using request_type = std::ranges::range_value_t<Range>;
    using op = typename impl::create_each_op_for<request_type>::type;
    op::template check<Item>();
    return run_many(op{}, std::span<const request_type>(std::ranges::data(requests), std::ranges::size(requests)));
  }

  /// Destroys the item on its worker, after the messages queued for it before. Returns false
  /// if no such item existed; throws pool_error (pool_stopped, would_deadlock, invalid_route).
  bool remove(id_t id) {
    result<void> r = run_one(impl::remove_op{}, id);
    if (r.has_error() && r.error().code == errc::unknown_id) return false;
    r.value();
    return true;
  }

  /// Removes many; errc::unknown_id for the ids that did not exist.
  std::vector<result<void>> remove_batch(std::span<const id_t> ids) { return run_many(impl::remove_op{}, ids); }

  // ---- Requests ----------------------------------------------------------------------------

  /// One round trip: sends `r` to item `r.id` and returns its response. Throws what the
  /// handler threw, or pool_error (unknown_id, pool_stopped, would_deadlock, invalid_route).
  template <request R>
  response_t<R> send(const R& r) {
    impl::check_handles<Item, R>();
    return run_one(impl::request_op<R>{}, r).value();
  }

  /// A method message round trip: `pool.call(id, &counter::increment, 5)`.
  template <class F, class... A>
    requires std::is_member_function_pointer_v<F>
  decltype(auto) call(id_t id, F fn, A&&... args) {
    return send(make_call(id, fn, std::forward<A>(args)...));
  }

  /// Sends a batch (any mix of ids, any number per id) and waits. Responses come back in
  /// request order. The batch is split per worker and each worker gets its whole share in one
  /// queue operation; the caller is woken once.
  template <std::ranges::contiguous_range Range>
    requires request<std::ranges::range_value_t<Range>>
  auto send_batch(const Range& requests) {
    using R = std::ranges::range_value_t<Range>;
    impl::check_handles<Item, R>();
    return run_many(impl::request_op<R>{}, std::span<const R>(std::ranges::data(requests), std::ranges::size(requests)));
  }

  /// As send_batch, writing response i into out[i] (out.size() must equal the batch size):
  /// no allocation at all when `out` is reused.
  template <request R>
  void send_batch(std::span<const R> requests, std::span<result<response_t<R>>> out) {
    impl::check_handles<Item, R>();
    if (out.size() != requests.size()) {
      throw std::invalid_argument("mtp::thread_pool::send_batch: output span size differs from the batch size");
    }
    run_into(impl::request_op<R>{}, requests.data(), out.data(), requests.size(), impl::scratch_order());
  }

  /// As send, giving up after `timeout`: then throws pool_error(timed_out). A request that
  /// has not started by then is skipped; one that has started finishes, and its response is
  /// discarded.
  template <request R, class Rep, class Period>
  response_t<R> send(const R& r, std::chrono::duration<Rep, Period> timeout) {
    impl::check_handles<Item, R>();
    return run_timed(std::span<const R>(&r, 1), deadline_after(timeout))[0].value();
  }

  /// As send_batch, giving up after `timeout`. If every response arrived in time they are
  /// returned as usual; otherwise every result is errc::timed_out, the requests that had not
  /// started are skipped, and those that had run are not undone (their responses are
  /// discarded). The requests are copied, so the caller's storage may go away at once.
  template <std::ranges::contiguous_range Range, class Rep, class Period>
    requires request<std::ranges::range_value_t<Range>>
  auto send_batch(const Range& requests, std::chrono::duration<Rep, Period> timeout) {
    using R = std::ranges::range_value_t<Range>;
    impl::check_handles<Item, R>();
    return run_timed(std::span<const R>(std::ranges::data(requests), std::ranges::size(requests)),
                     deadline_after(timeout));
  }

  /// Starts a batch and returns at once; the handle's wait() returns the responses in
  /// request order. One caller can keep several batches, or several pools, busy this way.
  template <request R>
  batch<response_t<R>> submit_batch(std::vector<R> requests) {
    impl::check_handles<Item, R>();
    struct state final : impl::async_state<response_t<R>> {
      std::vector<R> requests;
      std::vector<std::uint32_t> order;
      impl::batch_job<impl::request_op<R>> job{};
    };
    auto s = std::make_unique<state>();
    s->requests = std::move(requests);
    s->results.resize(s->requests.size());
    s->spin = core_.options().caller_spin;
    s->job = {{}, s->requests.data(), s->results.data(), &s->done};
    start(s->job, s->requests.size(), s->order);
    return batch<response_t<R>>(std::move(s));
  }

  /// Fire and forget: enqueues `r` and returns at once. No response storage is used; a failure
  /// on the worker (unknown id, a throwing handler) goes to the diagnostic hook. The returned
  /// result says whether it was sent: errc::pool_stopped or errc::invalid_route otherwise.
  /// Small trivially copyable requests travel inside the queue slot; others are moved to one
  /// heap copy that the worker frees.
  template <request R>
  result<void> post(R r) {
    impl::check_handles<Item, R>();
    const id_t id = static_cast<id_t>(r.id);
    const std::size_t k = core_.route(id);
    if (k == impl::pool_core::k_bad_route) return error{errc::invalid_route, id, {}};
    impl::send_gate gate(core_);
    if (!gate.open()) return error{errc::pool_stopped, id, {}};
    const std::size_t capacity = core_.options().queue_capacity;
    if (capacity != 0 && !core_.worker(k).try_reserve_room(1, capacity)) return error{errc::queue_full, id, {}};
    constexpr bool fits = std::is_trivially_copyable_v<R> && sizeof(R) <= impl::envelope::k_payload;
    if constexpr (fits) {
      core_.worker(k).push(impl::envelope::make(&impl::run_posted<worker_type, R, true>, r));
    } else {
      auto owned = std::make_unique<R>(std::move(r));
      core_.worker(k).push(impl::envelope::make(&impl::run_posted<worker_type, R, false>, owned.get()));
      (void)owned.release();  // the worker frees it
    }
    return unit{};
  }

  // ---- Lifecycle and introspection ---------------------------------------------------------

  /// Stops accepting requests, answers everything already queued, destroys every item on its
  /// own thread, and joins the workers. Idempotent and thread-safe. Throws
  /// pool_error(would_deadlock) when called from one of this pool's own workers.
  void shutdown() { core_.shutdown(); }

  [[nodiscard]] std::size_t worker_count() const noexcept { return core_.worker_count(); }
  /// The worker an id routes to.
  [[nodiscard]] std::size_t worker_of(id_t id) const noexcept { return core_.route(id); }
  /// The placement the workers were started with (its notes say e.g. "workers share CPUs").
  [[nodiscard]] const mtp::placement& placement() const noexcept { return core_.placement(); }

  /// A snapshot of every worker; does not stop or slow the workers.
  [[nodiscard]] pool_stats stats() const {
    pool_stats s;
    for (std::size_t k = 0; k < core_.worker_count(); ++k) {
      const impl::worker_base& w = core_.worker(k);
      s.workers.push_back({k, w.item_count(), w.messages_processed(), w.queue_depth(), w.where(), w.pinned()});
    }
    return s;
  }

 private:
  template <class Rep, class Period>
  static std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) {
    const auto now = std::chrono::steady_clock::now();
    if (timeout >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(std::chrono::hours(24 * 365))) {
      return std::chrono::steady_clock::time_point::max();
    }
    return now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
  }

  template <class... A>
  static constexpr void check_constructible() {
    static_assert(std::is_constructible_v<Item, id_t, A...>,
                  "mtp: the pool item has no constructor Item(mtp::id_t, Args...) for these arguments");
  }

  // The response slot and completion of one round trip, together on one cache line: the
  // worker writes the response and then the completion, so the caller, spinning on the
  // completion, takes the line back once.
  template <class T>
  struct alignas(impl::k_cache_line) reply {
    result<T> out;
    impl::completion done;
  };

  template <class Op>
  result<typename Op::output> run_one(const Op& op, const typename Op::input& input) {
    reply<typename Op::output> r;
    impl::batch_job<Op> job{op, &input, &r.out, &r.done};
    std::size_t k = core_.worker_count();
    start(job, 1, impl::scratch_order(), time_point::max(), &k);
    const bool near = k < core_.worker_count() && core_.worker(k).pinned_to(impl::current_cpu());
    r.done.wait(core_.options().caller_spin, near ? impl::k_yield_always : impl::k_yield_every);
    return std::move(r.out);
  }

  template <class Op>
  std::vector<result<typename Op::output>> run_many(const Op& op, std::span<const typename Op::input> inputs) {
    std::vector<result<typename Op::output>> out(inputs.size());
    run_into(op, inputs.data(), out.data(), inputs.size(), impl::scratch_order());
    return out;
  }

  // Blocking form: the job lives on this stack frame until the completion fires.
  template <class Op>
  void run_into(const Op& op, const typename Op::input* inputs, result<typename Op::output>* out, std::size_t n,
                std::vector<std::uint32_t>& order) {
    impl::completion done;
    impl::batch_job<Op> job{op, inputs, out, &done};
    start(job, n, order);
    done.wait(core_.options().caller_spin, caller_shares_a_cpu() ? impl::k_yield_always : impl::k_yield_every);
  }

  // Whether one of the workers is pinned to the caller's current CPU: a batch's caller then
  // yields at every poll, since spinning would take that worker's CPU away from it.
  [[nodiscard]] bool caller_shares_a_cpu() const noexcept {
    const int cpu = impl::current_cpu();
    for (std::size_t k = 0; k < core_.worker_count(); ++k) {
      if (core_.worker(k).pinned_to(cpu)) return true;
    }
    return false;
  }

  // Where request i goes: a worker index, or worker_count() when it was answered here already
  // (bad route, or our own worker). `record` writes that answer (the first pass only).
  template <class Op>
  std::size_t target(const impl::batch_job<Op>& job, std::size_t i, impl::worker_base* own, bool record) const {
    const id_t id = Op::id_of(job.inputs[i]);
    const std::size_t k = core_.route(id);
    if (k == impl::pool_core::k_bad_route) {
      if (record) job.results[i].set_error(error{errc::invalid_route, id, {}});
      return core_.worker_count();
    }
    if (own != nullptr && k == own->index()) {
      if (record) job.results[i].set_error(error{errc::would_deadlock, id, {}});
      return core_.worker_count();
    }
    return k;
  }

  using time_point = std::chrono::steady_clock::time_point;

  // Splits the job over the workers and pushes one chunk per worker that has a share (in
  // pieces when queues are bounded). `order` receives the per-worker index lists and must live
  // until the completion fires. Returns the number of arrivals the completion expects (0 when
  // nothing could be sent: every result is then already filled). For a one-request job,
  // `single_worker` (if given) receives the worker it went to.
  template <class Op>
  std::uint32_t start(impl::batch_job<Op>& job, std::size_t n, std::vector<std::uint32_t>& order,
                      time_point deadline = time_point::max(), std::size_t* single_worker = nullptr) {
    if (n > std::numeric_limits<std::uint32_t>::max()) throw std::length_error("mtp: batch larger than 2^32 requests");
    const std::size_t workers = core_.worker_count();
    impl::worker_base* const own = core_.own_worker();
    impl::send_gate gate(core_);
    if (!gate.open()) {
      for (std::size_t i = 0; i < n; ++i) job.results[i].set_error(error{errc::pool_stopped, Op::id_of(job.inputs[i]), {}});
      job.done->reset(0);
      return 0;
    }
    if (n == 0) {
      job.done->reset(0);
      return 0;
    }
    if (n == 1) {  // the round-trip path: no splitting
      const std::size_t k = target(job, 0, own, true);
      if (single_worker != nullptr) *single_worker = k;
      if (k == workers) {
        job.done->reset(0);
        return 0;
      }
      if constexpr (impl::fits_envelope<Op>) {
        if (job.control == nullptr) return push_single(job, k, deadline);
      }
      const std::pair<std::size_t, impl::chunk> one{k, impl::chunk{&job, nullptr, 0, 1}};
      return push_chunks(job, std::span(&one, 1), deadline);
    }
    // Counting sort by worker: pass 1 counts (and answers what cannot be sent), pass 2 places.
    std::vector<std::uint32_t>& counts = impl::scratch_counts();
    counts.assign(workers + 1, 0);
    for (std::size_t i = 0; i < n; ++i) ++counts[target(job, i, own, true)];
    std::vector<std::pair<std::size_t, impl::chunk>> chunks;
    if (counts[workers] == 0) {
      for (std::size_t k = 0; k < workers; ++k) {
        if (counts[k] == n) {  // one worker has it all: one contiguous chunk, no index list
          chunks.push_back({k, impl::chunk{&job, nullptr, 0, static_cast<std::uint32_t>(n)}});
          return push_chunks(job, chunks, deadline);
        }
      }
    }
    order.resize(n);
    std::uint32_t offset = 0;
    for (std::size_t k = 0; k < workers; ++k) {
      if (counts[k] != 0) chunks.push_back({k, impl::chunk{&job, order.data() + offset, 0, counts[k]}});
      const std::uint32_t c = counts[k];
      counts[k] = offset;  // now the next free slot of worker k
      offset += c;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t k = target(job, i, own, false);
      if (k < workers) order[counts[k]++] = static_cast<std::uint32_t>(i);
    }
    return push_chunks(job, chunks, deadline);
  }

  // Pushes the chunks, each in pieces of at most queue_capacity requests when queues are
  // bounded (waiting for room until `deadline`). A piece that cannot be sent (no room before
  // the deadline, or no memory for the queue to grow) is answered here with errc::timed_out or
  // errc::queue_full, as are all after it, and counted as arrived: the caller never hangs.
  template <class Op>
  std::uint32_t push_chunks(impl::batch_job<Op>& job, std::span<const std::pair<std::size_t, impl::chunk>> chunks,
                            time_point deadline) noexcept {
    const std::size_t capacity = Op::k_control ? 0 : core_.options().queue_capacity;
    std::uint32_t pieces = 0;
    for (const auto& [k, c] : chunks) {
      pieces += capacity == 0 ? 1 : static_cast<std::uint32_t>((c.count + capacity - 1) / capacity);
    }
    job.done->reset(pieces);  // before the first push: a worker may finish before we return

    const impl::run_fn run = &impl::run_chunk<worker_type, Op>;
    std::optional<error> failed;  // once set, every remaining piece is answered with it
    for (const auto& [k, c] : chunks) {
      const std::uint32_t step = capacity == 0 ? c.count : static_cast<std::uint32_t>(std::min<std::size_t>(capacity, c.count));
      for (std::uint32_t from = 0; from < c.count; from += step) {
        const impl::chunk piece = c.piece(from, std::min(step, c.count - from));
        impl::worker_base& w = core_.worker(k);
        if (!failed && capacity != 0 && !w.reserve_room(piece.count, capacity, deadline)) {
          failed = error{errc::timed_out, 0, {}};
        }
        if (!failed) {
          try {
            w.enqueue(impl::envelope::make(run, piece));
            // A bounded queue drains only if its worker is awake: wake it before the next
            // reserve_room can wait. Unbounded: all wakes come after all enqueues, below.
            if (capacity != 0) w.wake();
            continue;
          } catch (...) {
            if (capacity != 0) w.release_room(piece.count);
            failed = error{errc::queue_full, 0, std::current_exception()};
          }
        }
        piece.for_each([&](std::uint32_t i) {
          job.results[i].set_error(error{failed->code, Op::id_of(job.inputs[i]), failed->exception});
        });
        if (job.done->arrive() && job.control != nullptr) job.control->release();
      }
    }
    if (capacity == 0) wake_all(chunks);
    return pieces;
  }

  // Wakes the workers that got chunks, the one pinned to the caller's own CPU last: waking it
  // may hand it the CPU at once (it slept, so the scheduler favours it), and the caller must
  // not be the one left waiting for that CPU with wake-ups still to send. Without this order
  // the other worker could start a whole time slice (milliseconds) late.
  void wake_all(std::span<const std::pair<std::size_t, impl::chunk>> chunks) noexcept {
    const int cpu = impl::current_cpu();
    std::size_t near = core_.worker_count();
    for (const auto& [k, c] : chunks) {
      impl::worker_base& w = core_.worker(k);
      if (near == core_.worker_count() && w.pinned_to(cpu)) near = k;
      else w.wake();
    }
    if (near != core_.worker_count()) core_.worker(near).wake();
  }

  // The round trip: the request travels inside the envelope (see impl::single).
  template <class Op>
  std::uint32_t push_single(impl::batch_job<Op>& job, std::size_t k, time_point deadline) noexcept {
    const std::size_t capacity = Op::k_control ? 0 : core_.options().queue_capacity;
    impl::worker_base& w = core_.worker(k);
    job.done->reset(1);
    if (capacity != 0 && !w.reserve_room(1, capacity, deadline)) {
      job.results[0].set_error(error{errc::timed_out, Op::id_of(job.inputs[0]), {}});
      job.done->arrive();
      return 1;
    }
    try {
      const impl::single<Op> s{job.results, job.done, job.op, job.inputs[0]};
      w.push(impl::envelope::make(&impl::run_single<worker_type, Op>, s));
    } catch (...) {
      if (capacity != 0) w.release_room(1);
      job.results[0].set_error(error{errc::queue_full, Op::id_of(job.inputs[0]), std::current_exception()});
      job.done->arrive();
    }
    return 1;
  }

  // The timed forms: the batch lives on the heap, shared with the workers, so that the caller
  // can walk away at the deadline. Requests are copied, since the caller's may be gone by then.
  template <class R>
  std::vector<result<response_t<R>>> run_timed(std::span<const R> requests, time_point deadline) {
    using T = response_t<R>;
    using Op = impl::request_op<R>;
    struct state final : impl::timed_control {
      std::vector<R> inputs;
      std::vector<result<T>> results;
      std::vector<std::uint32_t> order;
      impl::completion done;
      impl::batch_job<Op> job{};
    };
    auto owned = std::make_unique<state>();
    state* s = owned.get();
    s->destroy = [](impl::timed_control* c) noexcept { delete static_cast<state*>(c); };
    s->inputs.assign(requests.begin(), requests.end());
    s->results.resize(requests.size());
    s->job = {{}, s->inputs.data(), s->results.data(), &s->done, s};
    const std::uint32_t pieces = start(s->job, requests.size(), s->order, deadline);
    (void)owned.release();  // from here on the two references manage it
    if (pieces == 0) s->release();  // no worker will ever arrive: drop the workers' reference
    std::vector<result<T>> out;
    if (s->done.wait_until(core_.options().caller_spin, deadline)) {
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

  impl::pool_core core_;
};

}  // namespace mtp
