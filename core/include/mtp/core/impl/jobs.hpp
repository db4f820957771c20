// SPDX-License-Identifier: MIT
// Internals: jobs, the forms in which operations travel through a worker's queue (a batch's
// share, a round trip inside its envelope, a post, an asynchronous operation with its callback
// or its caller-owned slot), and their queue entry points, the serve_* functions that run on
// the worker. Do not include directly; use <mtp/mtp.hpp>.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <mtp/core/impl/async_slot.hpp>
#include <mtp/core/impl/envelope.hpp>
#include <mtp/core/impl/operations.hpp>
#include <mtp/core/impl/std_parts.hpp>
#include <mtp/core/impl/wait.hpp>
#include <mtp/core/impl/worker.hpp>
#include <mtp/core/result.hpp>

namespace mtp::impl {

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
void serve_chunk(worker_base& base, envelope& e) noexcept {
  auto& w = static_cast<W&>(base);
  const chunk c = e.read<chunk>();
  auto& job = *static_cast<batch_job<Op>*>(static_cast<job_base*>(c.job));
  shared_control* const control = job.control;
  w.trace_instant("chunk", c.count);
  if constexpr (creates_items<Op>) w.expect_items(c.count);
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
void serve_single(worker_base& base, envelope& e) noexcept {
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
void serve_as_post(W& w, const R& r) noexcept {
  result<response_t<R>> out;
  request_op<R>{}.apply(w, r, out);
  if (out.has_error()) {
    w.report_with(diagnostic::kind::post_failed, [&] { return out.error().message(); }, out.error());
  }
}

/// The queue entry point of a posted request; `Inline`: the request is in the envelope, else
/// the envelope holds a pointer to a heap copy that this function frees.
template <class W, class R, bool Inline>
void serve_posted(worker_base& base, envelope& e) noexcept {
  auto& w = static_cast<W&>(base);
  if constexpr (Inline) {
    serve_as_post(w, e.read<R>());
  } else {
    const std::unique_ptr<R> owned(e.read<R*>());
    serve_as_post(w, *owned);
  }
  w.finish_messages(1, true);
}

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
void serve_async_single(worker_base& base, envelope& e) noexcept {
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

/// The queue entry point of an async_slot: as serve_async_single, then hands the result back
/// through the slot's `done`, the last touch.
template <class W, class R>
void serve_async_slot(worker_base& base, envelope& e) noexcept {
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
