// SPDX-License-Identifier: MIT
// The typed operations of a sharded pool: how the owning rank serves each kind of message
// (shares of calls, shares that wait for room, broadcasts, posts, remote timers, creates and
// removes), each registered at start-up under a key shared by every rank (registry.hpp).
// `Pool` is the sharded_pool<Item> that serves them; each is its friend.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <span>
#include <tuple>
#include <vector>

#include <mtp/core/batch.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/result.hpp>
#include <mtp/mpi/impl/registry.hpp>
#include <mtp/mpi/wire.hpp>

namespace mtp::mpi::impl {

// In a call_wait_op share: no deadline, the owner may wait for room as long as it takes.
inline constexpr std::int64_t k_wait_forever = std::numeric_limits<std::int64_t>::max();

// Copies of `r`, one per id, each with the id set.
template <class R>
std::vector<R> addressed(const R& r, const std::vector<id_t>& ids) {
  std::vector<R> out(ids.size(), r);
  for (std::size_t i = 0; i < ids.size(); ++i) out[i].id = ids[i];
  return out;
}

// A share of n requests: decoded (in place, on the heap) and handed to the local pool; the
// completion replies. Cancellable until then (remember / forget).
template <class Pool, class R>
struct call_op {
  static void serve(sharded_base& base, int source, std::uint64_t call, wire::reader& in, std::uint32_t n) {
    auto& self = static_cast<Pool&>(base);
    self.template serve_async_share<response_t<R>>(source, call, n, [&](auto answer) {
      const wire::decoded<R> decoded(in, n);  // in the message itself where it can be
      return self.pool_.send_batch_async(decoded.moved(), std::move(answer));
    });
  }
  static inline const std::uint64_t key = register_op<call_op>(&serve, false);
};

// A share that may wait for room in a bounded queue until its caller's deadline: served on
// the control thread (which may block, in arrival order per source) with the local pool's
// blocking or timed batch. Entries: [i64 nanoseconds it may wait, k_wait_forever: no
// deadline] then the requests. A rank whose queues are unbounded (its options differ from
// the sender's) has no control thread and nothing to wait for: it serves the share as a
// call_op, on the thread that delivers it.
template <class Pool, class R>
struct call_wait_op {
  static void serve(sharded_base& base, int source, std::uint64_t call, wire::reader& in, std::uint32_t n) {
    auto& self = static_cast<Pool&>(base);
    using T = response_t<R>;
    if (!self.bounded_) {
      (void)in.pod<std::int64_t>();
      call_op<Pool, R>::serve(base, source, call, in, n);
      return;
    }
    try {
      const auto wait_ns = in.pod<std::int64_t>();
      const wire::decoded<R> decoded(in, n);
      const std::span<const R> requests(decoded.begin(), n);
      self.reply(source, call,
                 wait_ns == k_wait_forever ? self.pool_.send_batch(requests)
                                           : self.pool_.send_batch(requests, std::chrono::nanoseconds(wait_ns)));
    } catch (...) {  // a request that would not decode (or no memory): the whole share fails
      self.template reply_failed<T>(source, call, n);
    }
  }
  static inline const std::uint64_t key = register_op<call_wait_op>(&serve, true);
};

// A broadcast: the request once; answered with every local item's (id, result).
template <class Pool, class R>
struct broadcast_op {
  static void serve(sharded_base& base, int source, std::uint64_t call, wire::reader& in, std::uint32_t) {
    auto& self = static_cast<Pool&>(base);
    using T = response_t<R>;
    try {
      const wire::decoded<R> r(in, 1);
      auto ids = std::make_shared<const std::vector<id_t>>(self.ids_.local_ids());
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
  static inline const std::uint64_t key = register_op<broadcast_op>(&serve, false);
};

// Posts: handed to the local pool; failures go to the owning rank's on_diagnostic.
template <class Pool, class R>
struct post_op {
  static void serve(sharded_base& base, int, std::uint64_t, wire::reader& in, std::uint32_t n) {
    auto& self = static_cast<Pool&>(base);
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
  static inline const std::uint64_t key = register_op<post_op>(&serve, false);
};

// A remote timer: armed on the local pool, kept for its cancellation.
template <class Pool, class R, bool Periodic>
struct timer_op {
  static void serve(sharded_base& base, int source, std::uint64_t call, wire::reader& in, std::uint32_t) {
    auto& self = static_cast<Pool&>(base);
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
  static inline const std::uint64_t key = register_op<timer_op>(&serve, false);
};

// Creates: Item(id, args...) for each entry [id][args], handed to the local pool with
// create_batch_async by the thread that delivers the message (the communication thread, or a
// caller making progress), which never waits for a constructor; the callback notes the ids
// created and replies. A later message from the same source is handed to the local pool after
// it (deliveries are made one at a time, under the progress lock): the local pool's causal
// order runs it once the item is built. Cancellable as a call_op share.
template <class Pool, class... A>
struct create_op {
  static void serve(sharded_base& base, int source, std::uint64_t call, wire::reader& in, std::uint32_t n) {
    auto& self = static_cast<Pool&>(base);
    self.template serve_async_share<void>(source, call, n, [&](auto answer) {
      std::vector<mtp::create_request<A...>> reqs;
      reqs.reserve(n);
      std::vector<id_t> ids(n);
      for (std::uint32_t i = 0; i < n; ++i) {
        ids[i] = in.pod<id_t>();
        reqs.push_back({ids[i], wire::get_tuple<A...>(in)});
      }
      return self.pool_.create_batch_async(
          reqs, [&self, answer = std::move(answer), ids = std::move(ids)](std::vector<result<void>>&& rs) {
            answer(self.ids_.note_created(ids, std::move(rs)));
          });
    });
  }
  static inline const std::uint64_t key = register_op<create_op>(&serve, false);
};

// Removes, handed to the local pool with remove_batch_async as creates are (cancellable too).
template <class Pool>
struct remove_op {
  static void serve(sharded_base& base, int source, std::uint64_t call, wire::reader& in, std::uint32_t n) {
    auto& self = static_cast<Pool&>(base);
    self.template serve_async_share<void>(source, call, n, [&](auto answer) {
      std::vector<id_t> ids(n);
      for (auto& id : ids) id = in.pod<id_t>();
      return self.pool_.remove_batch_async(ids, [&self, answer = std::move(answer), ids](std::vector<result<void>>&& rs) {
        answer(self.ids_.note_removed(ids, std::move(rs)));
      });
    });
  }
  static inline const std::uint64_t key = register_op<remove_op>(&serve, false);
};

}  // namespace mtp::mpi::impl
