// SPDX-License-Identifier: MIT
// Internals: the typed worker that owns a pool's items, and the operations a chunk runs.
// Do not include directly; use <mtp/mtp.hpp>.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <tuple>
#include <typeinfo>
#include <type_traits>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <mtp/core/impl/async_slot.hpp>
#include <mtp/core/impl/wait.hpp>
#include <mtp/core/impl/worker.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/options.hpp>
#include <mtp/core/result.hpp>

namespace mtp::impl {

template <class H>
concept has_before_message = requires(H& h, id_t id) { h.before_message(id); };
template <class H>
concept has_after_message = requires(H& h, id_t id) { h.after_message(id); };
template <class H>
concept has_worker_start = requires(H& h, std::size_t k) { h.on_worker_start(k); };
template <class H>
concept has_worker_stop = requires(H& h, std::size_t k) { h.on_worker_stop(k); };
template <class H>
concept has_passivate = requires(H& h, id_t id) { h.on_passivate(id); };

/// An item type that is built on the first message for an id that has no item (see
/// thread_pool: "Activation on first message").
template <class Item>
concept activates_on_first_message = requires {
  requires Item::activate_on_first_message;
} && std::is_constructible_v<Item, id_t>;

/// The worker of a thread_pool<Item, Hooks>: owns the items routed to it, in a map that only
/// its own thread touches, so items need no locks.
template <class Item, class Hooks>
class worker final : public worker_base {
 public:
  using item_type = Item;

  worker(pool_core& pool, std::size_t index, const Hooks& hooks)
      : worker_base(pool, index), hooks_(hooks), passivate_after_(pool.options().passivate_after) {}
  ~worker() override { stop_and_join(); }

  // Worker thread only, from here on.

  [[nodiscard]] Item* find(id_t id) noexcept {
    const auto it = items_.find(id);
    if (it == items_.end()) return nullptr;
    if (passivate_after_.count() > 0) it->second.touched = std::chrono::steady_clock::now();
    return &it->second.item;
  }

  /// Runs `body` as the message for `id`: sets the current id and runs the hooks around it.
  /// If the hook or `body` throws, `fail` receives the error (`thrown` names what threw; the
  /// body may change it while it runs).
  /// `what` names the message in a trace (a type name, "create", "remove", ...).
  template <class Fail, class Body>
  void run_message(id_t id, const char* what, const errc& thrown, Fail&& fail, Body&& body) noexcept {
    begin_message(id);
    trace_begin(id, what);
    if constexpr (has_before_message<Hooks>) {
      try {
        hooks_.before_message(id);
      } catch (...) {
        fail(error{errc::hook_failed, id, std::current_exception()});
        after(id);
        trace_end();
        return;
      }
    }
    try {
      body();
    } catch (...) {
      fail(error{thrown, id, std::current_exception()});
    }
    after(id);
    trace_end();
  }

  template <class... A>
  Item& emplace_item(id_t id, A&&... args) {
    // try_emplace: the key is checked before anything is built, so a duplicate never runs the
    // constructor; a throwing constructor leaves the map unchanged.
    // The new life's number is known while the constructor runs, so that a timer the
    // constructor arms belongs to it (and one armed by a constructor that throws never fires).
    building_ = {id, ++generations_};
    struct done_building {
      std::pair<id_t, std::uint64_t>& b;
      ~done_building() { b = {}; }
    } done{building_};
    const auto [it, added] = items_.try_emplace(id, id, std::forward<A>(args)...);
    it->second.generation = building_.second;
    set_item_count(items_.size());
    if (passivate_after_.count() > 0) it->second.touched = std::chrono::steady_clock::now();
    return it->second.item;
  }
  /// Which life of item `id` this is (each create, or activation, starts a new one), or 0 when
  /// it does not exist: a timer armed for one life does not fire in another (see timers).
  [[nodiscard]] std::uint64_t generation_of(id_t id) const noexcept {
    const auto it = items_.find(id);
    if (it != items_.end()) return it->second.generation;
    return building_.first == id ? building_.second : 0;  // its constructor runs now
  }
  void erase_item(id_t id) noexcept {
    items_.erase(id);
    set_item_count(items_.size());
  }

  void report(diagnostic::kind what, std::string text, std::optional<error> e = std::nullopt) noexcept {
    try {
      pool().report({what, index(), std::move(text), std::move(e)});
    } catch (...) {
      // Out of memory building the report: nothing better to do than carry on.
    }
  }
  /// report() with a text that `make_text()` builds: out of memory there, the report is
  /// dropped and the worker carries on.
  template <class Text>
  void report_with(diagnostic::kind what, Text&& make_text, std::optional<error> e = std::nullopt) noexcept {
    try {
      report(what, make_text(), std::move(e));
    } catch (...) {
      // No memory for the text: nothing better to do than carry on.
    }
  }

 private:
  // Runs a hook that has no caller to fail: what it throws goes to the diagnostic hook.
  template <class F>
  void run_hook(const char* name, F&& hook) noexcept {
    try {
      hook();
    } catch (const std::exception& e) {
      report_with(diagnostic::kind::hook_failed, [&] { return std::string(name) + " threw: " + e.what(); });
    } catch (...) {
      report_with(diagnostic::kind::hook_failed, [&] { return std::string(name) + " threw a non-standard exception"; });
    }
  }

  void after(id_t id) noexcept {
    if constexpr (has_after_message<Hooks>) run_hook("after_message", [&] { hooks_.after_message(id); });
  }

  void on_start() noexcept override {
    if constexpr (has_worker_start<Hooks>) run_hook("on_worker_start", [&] { hooks_.on_worker_start(index()); });
  }

  void on_stop() noexcept override {
    // Items die on their own thread, one by one, each with its id readable in its destructor
    // and the message hooks around it, as for remove.
    while (!items_.empty()) destroy_item(items_.begin()->first, "shutdown");
    set_item_count(0);
    mark_idle();
    if constexpr (has_worker_stop<Hooks>) run_hook("on_worker_stop", [&] { hooks_.on_worker_stop(index()); });
  }

  // Destroys one item as a message of its own (hooks around it); what a hook throws has no
  // caller to go to.
  void destroy_item(id_t id, const char* why) noexcept {
    run_message(
        id, why, errc::hook_failed,
        [&](const error& e) {
          report_with(
              diagnostic::kind::hook_failed,
              [&] { return std::string("a message hook threw while the item was destroyed at ") + why; }, e);
        },
        [&] { items_.erase(id); });
    items_.erase(id);  // also when before_message threw: the item goes all the same
    set_item_count(items_.size());
  }

  // Passivation: at most k_passivate_per_round items per call, so that a sweep over many idle
  // items does not hold up the queue; what is left is swept again right after the next round.
  static constexpr std::size_t k_passivate_per_round = 256;

  time_point housekeeping(time_point now) noexcept override {
    if (passivate_after_.count() <= 0) return time_point::max();
    stale_.clear();
    bool more = false;
    for (const auto& [id, slot] : items_) {
      if (now - slot.touched < passivate_after_) continue;
      if (stale_.size() == k_passivate_per_round) {
        more = true;
        break;
      }
      try {
        stale_.push_back(id);
      } catch (...) {
        break;  // no memory for the list: passivate what fits, the rest next time
      }
    }
    for (const id_t id : stale_) {
      if constexpr (has_passivate<Hooks>) run_hook("on_passivate", [&] { hooks_.on_passivate(id); });
      destroy_item(id, "passivation");
    }
    return more ? now : now + passivate_after_ / 4;
  }

  // An item and when a message last touched it (kept only when passivation is on).
  struct slot {
    template <class... A>
    explicit slot(id_t id, A&&... args) : item(id, std::forward<A>(args)...) {}
    Item item;
    time_point touched{};
    std::uint64_t generation = 0;
  };

  std::unordered_map<id_t, slot> items_;
  std::uint64_t generations_ = 0;
  std::pair<id_t, std::uint64_t> building_{};  // the item whose constructor runs, and its life
  Hooks hooks_;
  const std::chrono::nanoseconds passivate_after_;
  std::vector<id_t> stale_;  // the items one passivation round destroys, kept between rounds
};

// ---- Operations: what a chunk does with each of its inputs -------------------------------

/// Send request R to its item.
template <class R>
struct request_op {
  using input = R;
  using output = response_t<R>;
  static constexpr bool k_control = false;  // counts against a bounded queue
  static id_t id_of(const R& r) noexcept { return static_cast<id_t>(r.id); }

  template <class W>
  void apply(W& w, const R& r, result<output>& out) const noexcept {
    const id_t id = id_of(r);
    auto* item = w.find(id);
    constexpr bool activates = activates_on_first_message<typename W::item_type>;
    if (!activates && item == nullptr) {
      out.set_error(error{errc::unknown_id, id, {}});
      return;
    }
    errc thrown = errc::handler_failed;
    w.run_message(
        id, typeid(R).name(), thrown, [&](error e) { out.set_error(std::move(e)); },
        [&] {
          if constexpr (activates) {
            if (item == nullptr) {  // built here, in the same message, on this worker
              thrown = errc::constructor_failed;
              item = &w.emplace_item(id);
              thrown = errc::handler_failed;
            }
          }
          if constexpr (std::is_void_v<output>) {
            dispatch(*item, r);
            out.emplace();
          } else {
            out.emplace(dispatch(*item, r));
          }
        });
  }
};

/// Create items from ids, all with the same constructor arguments (a tuple of references).
/// `Single`: there is exactly one id, so rvalue arguments may be moved into the item.
template <class Args, bool Single>
struct create_op {
  using input = id_t;
  using output = void;
  static constexpr bool k_control = true;  // never held back by a bounded queue
  static id_t id_of(id_t id) noexcept { return id; }

  Args* args;

  template <class W>
  void apply(W& w, id_t id, result<void>& out) const noexcept {
    if (w.find(id) != nullptr) {
      out.set_error(error{errc::duplicate_id, id, {}});
      return;
    }
    w.run_message(
        id, "create", errc::constructor_failed, [&](error e) { out.set_error(std::move(e)); },
        [&] {
          auto build = [&](auto&&... a) { w.emplace_item(id, std::forward<decltype(a)>(a)...); };
          if constexpr (Single) std::apply(build, std::move(*args));
          else std::apply(build, std::as_const(*args));
          out.emplace();
        });
  }
};

/// Create items each from its own create_request.
template <class... A>
struct create_each_op {
  using input = create_request<A...>;
  using output = void;
  static constexpr bool k_control = true;
  static id_t id_of(const input& r) noexcept { return r.id; }

  template <class Item>
  static constexpr void check() {
    static_assert(std::is_constructible_v<Item, id_t, const A&...>,
                  "mtp: the pool item has no constructor Item(mtp::id_t, Args...) for these arguments");
  }

  template <class W>
  void apply(W& w, const input& r, result<void>& out) const noexcept {
    create_op<const std::tuple<A...>, false>{&r.args}.apply(w, r.id, out);
  }
  /// A request the operation owns alone (create_async): its arguments move into the item.
  template <class W>
  void apply(W& w, input& r, result<void>& out) const noexcept {
    create_op<std::tuple<A...>, true>{&r.args}.apply(w, r.id, out);
  }
};

template <class T>
struct create_each_op_for;
template <class... A>
struct create_each_op_for<create_request<A...>> {
  using type = create_each_op<A...>;
};

/// Remove items: each is destroyed on its worker, after the messages queued before it.
struct remove_op {
  using input = id_t;
  using output = void;
  static constexpr bool k_control = true;
  static id_t id_of(id_t id) noexcept { return id; }

  template <class W>
  void apply(W& w, id_t id, result<void>& out) const noexcept {
    if (w.find(id) == nullptr) {
      out.set_error(error{errc::unknown_id, id, {}});
      return;
    }
    w.run_message(id, "remove", errc::handler_failed, [&](error e) { out.set_error(std::move(e)); }, [&] {
      w.erase_item(id);
      out.emplace();
    });
  }
};

/// A batch in flight: the operation, the caller's inputs and response slots, and the
/// completion (in job_base). Lives wherever the caller keeps it (its stack for blocking calls)
/// until the completion fires; workers never touch it after their arrive(). A shared batch
/// (timed or submitted) has a `control` and lives on the heap instead.
template <class Op>
struct batch_job : job_base {
  Op op;
  const typename Op::input* inputs = nullptr;
  result<typename Op::output>* results = nullptr;

  batch_job(const Op& o, const typename Op::input* in, result<typename Op::output>* out, completion* d,
            shared_control* c = nullptr) noexcept
      : job_base{d, c, &fail_one}, op(o), inputs(in), results(out) {}

  static void fail_one(job_base& base, std::uint32_t i, errc code, std::exception_ptr ex) noexcept {
    auto& job = static_cast<batch_job&>(base);
    job.results[i].set_error(error{code, Op::id_of(job.inputs[i]), std::move(ex)});
  }
};

/// The queue entry point of a chunk: runs this worker's share of a batch.
template <class W, class Op>
void run_chunk(worker_base& base, envelope& e) noexcept {
  auto& w = static_cast<W&>(base);
  const chunk c = e.read<chunk>();
  auto& job = *static_cast<batch_job<Op>*>(static_cast<job_base*>(c.job));
  shared_control* const control = job.control;
  w.trace_instant("chunk", c.count);
  c.for_each([&](std::uint32_t i) {
    // relaxed: a hint; a request that slips past it just runs, and its response is dropped.
    if (control != nullptr && control->cancelled.load(std::memory_order_relaxed)) [[unlikely]] {
      job.results[i].set_error(error{control->cancelled_as, Op::id_of(job.inputs[i]), {}});
      return;
    }
    job.op.apply(w, job.inputs[i], job.results[i]);
  });
  w.finish_messages(c.count, !Op::k_control);
  // relaxed: read back only on this worker (batch::wait's check), after this.
  if (job.shares != nullptr) job.shares[w.index()].fetch_sub(1, std::memory_order_relaxed);
  job.arrive();  // last touch of the job: the caller may free it from here on
}

/// A one-request batch carried whole inside its envelope: the worker reads the request from
/// the queue slot and touches only the caller's response slot and completion, which the
/// caller keeps on one cache line (see thread_pool::run_one). The round-trip path.
template <class Op>
struct single {
  result<typename Op::output>* out;
  completion* done;
  [[no_unique_address]] Op op;  // usually empty: takes no room from the request
  typename Op::input input;
};

template <class Op>
inline constexpr bool fits_envelope = std::is_trivially_copyable_v<typename Op::input> &&
                                      std::is_trivially_copyable_v<Op> &&
                                      sizeof(single<Op>) <= envelope::k_payload;

/// The queue entry point of a single.
template <class W, class Op>
void run_single(worker_base& base, envelope& e) noexcept {
  auto& w = static_cast<W&>(base);
  const single<Op> s = e.read<single<Op>>();
  s.op.apply(w, s.input, *s.out);
  w.finish_messages(1, !Op::k_control);
  s.done->arrive();  // last touch: the caller may return from here on
}

/// Runs `r` on worker `w` as a post: the hooks, the trace and the statistics of any message;
/// a failure (unknown id, a throwing handler) goes to the diagnostic hook. The caller counts
/// the message (finish_messages).
template <class W, class R>
void run_as_post(W& w, const R& r) noexcept {
  result<response_t<R>> out;
  request_op<R>{}.apply(w, r, out);
  if (out.has_error()) {
    w.report_with(diagnostic::kind::post_failed, [&] { return out.error().message(); }, out.error());
  }
}

/// The queue entry point of a posted request; `Inline`: the request is in the envelope, else
/// the envelope holds a pointer to a heap copy that this function frees.
template <class W, class R, bool Inline>
void run_posted(worker_base& base, envelope& e) noexcept {
  auto& w = static_cast<W&>(base);
  if constexpr (Inline) {
    run_as_post(w, e.read<R>());
  } else {
    const std::unique_ptr<R> owned(e.read<R*>());
    run_as_post(w, *owned);
  }
  w.finish_messages(1, true);
}

}  // namespace mtp::impl

namespace mtp::impl {

/// Runs a completion callback; what it throws goes to the diagnostic hook (there is no caller
/// to give it to).
template <class F, class... A>
void run_callback(pool_core& pool, std::size_t worker, F& fn, A&&... args) noexcept {
  // Building a report's text may run out of memory: the report is then dropped, since this
  // function must not throw.
  try {
    fn(std::forward<A>(args)...);
  } catch (const std::exception& e) {
    try {
      pool.report({diagnostic::kind::hook_failed, worker, std::string("completion callback threw: ") + e.what(),
                   std::nullopt});
    } catch (...) {
    }
  } catch (...) {
    try {
      pool.report({diagnostic::kind::hook_failed, worker, "completion callback threw a non-standard exception",
                   std::nullopt});
    } catch (...) {
    }
  }
}

/// One operation (a request, a create or a remove) with a completion callback: its input, its
/// result and the callback in one allocation, shared by the caller's handle and the worker
/// (shared_control).
template <class Op, class F>
struct async_single final : shared_control {
  using op = Op;
  typename Op::input input;
  result<typename Op::output> out;
  F fn;

  async_single(typename Op::input in, F f) : input(std::move(in)), fn(std::move(f)) {
    cancelled_as = errc::cancelled;
    destroy = [](shared_control* c) noexcept { delete static_cast<async_single*>(c); };
  }
  void complete(pool_core& pool, std::size_t worker) noexcept {
    if (take_turn()) run_callback(pool, worker, fn, std::move(out));
  }
};

/// The queue entry point of an async_single: runs the operation (unless cancelled), then the
/// callback, on this worker.
template <class W, class S>
void run_async_single(worker_base& base, envelope& e) noexcept {
  auto& w = static_cast<W&>(base);
  S* const s = e.read<S*>();
  using op = typename S::op;
  const id_t id = op::id_of(s->input);
  // relaxed: a hint; a request that slips past it runs, and the callback still gets its result.
  if (s->cancelled.load(std::memory_order_relaxed)) {
    s->out.set_error(error{errc::cancelled, id, {}});
  } else {
    op{}.apply(w, s->input, s->out);
  }
  w.finish_messages(1, !op::k_control);
  // The callback runs as a message of the request it completes: this_worker::current_id()
  // there is the request's id, also when no handler ran (cancelled, unknown id) and so nothing
  // else set it, and the stall detector times the callback on its own.
  w.begin_message(id);
  s->complete(w.pool(), w.index());
  s->release();
}

/// The queue entry point of an async_slot: as run_async_single, then hands the result back
/// through the slot's `done`, the last touch.
template <class W, class R>
void run_async_slot(worker_base& base, envelope& e) noexcept {
  auto& w = static_cast<W&>(base);
  async_slot<R>* const s = e.read<async_slot<R>*>();
  const id_t id = request_op<R>::id_of(s->input);
  // relaxed: a hint; a request that slips past it runs, and the caller still gets its result.
  if (s->cancelled.load(std::memory_order_relaxed)) {
    s->out.set_error(error{errc::cancelled, id, {}});
  } else {
    request_op<R>{}.apply(w, s->input, s->out);
  }
  w.finish_messages(1, true);
  w.begin_message(id);  // the completion runs as a message of its request, as a callback does
  s->done(*s);
}

/// A batch (of requests, creates or removes) with a completion callback: inputs, results, the
/// split and the callback in one allocation, shared by the caller's handle and the workers.
template <class Op, class F>
struct async_batch final : shared_control {
  using op = Op;
  std::vector<typename Op::input> requests;
  std::vector<result<typename Op::output>> results;
  std::vector<std::uint32_t> order;
  completion done;
  batch_job<op> job{op{}, nullptr, nullptr, nullptr};
  F fn;
  pool_core* pool = nullptr;

  /// The batch the calling thread is sending now, if any: a callback that runs during the send
  /// (nothing, or not everything, could be sent) runs in the sender's own context.
  static inline thread_local const async_batch* tl_sending = nullptr;

  /// Marks the calling thread as this batch's sender until the scope ends.
  class sending_scope {
   public:
    explicit sending_scope(const async_batch* b) noexcept : outer_(std::exchange(tl_sending, b)) {}
    sending_scope(const sending_scope&) = delete;
    sending_scope& operator=(const sending_scope&) = delete;
    ~sending_scope() { tl_sending = outer_; }

   private:
    const async_batch* outer_;  // a batch sent from a callback that ran inside another send
  };

  async_batch(std::vector<typename Op::input> r, F f, pool_core& p) : requests(std::move(r)), fn(std::move(f)), pool(&p) {
    cancelled_as = errc::cancelled;
    destroy = [](shared_control* c) noexcept { delete static_cast<async_batch*>(c); };
    results.resize(requests.size());
    job = batch_job<op>(op{}, requests.data(), results.data(), &done, this);
    job.on_complete = [](job_base& j) noexcept {
      auto& self = *static_cast<async_batch*>(j.control);
      worker_base* const w = tl_current_worker;
      // On the worker that answered the last piece, the callback runs as a message of the
      // batch's last request, whichever request that worker ran last (see
      // thread_pool::send_batch_async); on the sending thread, the sender's own message, if it
      // is in one, stays current.
      if (w != nullptr && tl_sending != &self && !self.requests.empty()) {
        w->begin_message(op::id_of(self.requests.back()));
      }
      if (self.take_turn()) run_callback(*self.pool, w != nullptr ? w->index() : 0, self.fn, std::move(self.results));
    };
  }
};

}  // namespace mtp::impl
