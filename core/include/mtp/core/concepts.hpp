// SPDX-License-Identifier: MIT
/// \file
/// The pool's surface, one concept per capability, for code written against a pool rather than
/// a type: each is satisfied by mtp::thread_pool and by mtp::mock_pool (<mtp/testing.hpp>), and
/// none needs copyable requests.
///
///     template <mtp::sends<get_balance> Pool>
///     long total(Pool& pool, std::span<const get_balance> accounts);   // real pool or mock
///
///   sends<P, R>                 send(r), send_batch(span), post(R&&)
///   sends_with_deadline<P, R>   send(r, timeout), send_batch(span, timeout)
///   submits<P, R>               submit_batch(std::vector<R>) -> a batch handle (batch_of<B, T>)
///   creates<P, A...>            create(id, a...), create_batch(ids, a...), remove, remove_batch
///   pool_of<P, R, A...>         all of the above
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include <mtp/core/impl/std_parts.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/result.hpp>

namespace mtp {

/// P answers requests of type R the way mtp::thread_pool does: send, send_batch, post.
template <class P, class R>
concept sends = request<R> && requires(P& p, const R& r, R&& owned, std::span<const R> batch) {
  { p.send(r) } -> std::same_as<response_t<R>>;
  { p.send_batch(batch) } -> std::same_as<std::vector<result<response_t<R>>>>;
  { p.post(std::move(owned)) } -> std::same_as<result<void>>;
};

/// P answers requests of type R with a deadline: send(r, timeout), send_batch(span, timeout).
template <class P, class R>
concept sends_with_deadline =
    request<R> && requires(P& p, const R& r, std::span<const R> batch, std::chrono::milliseconds timeout) {
      { p.send(r, timeout) } -> std::same_as<response_t<R>>;
      { p.send_batch(batch, timeout) } -> std::same_as<std::vector<result<response_t<R>>>>;
    };

/// B is a handle on a batch of responses of type T, like mtp::batch<T>.
template <class B, class T>
concept batch_of = requires(B& b, const B& cb, std::chrono::milliseconds timeout) {
  { cb.ready() } -> std::same_as<bool>;
  { b.wait() } -> std::convertible_to<std::span<result<T>>>;
  { b.wait_for(timeout) } -> std::same_as<bool>;
  { b.take() } -> std::same_as<std::vector<result<T>>>;
  { cb.size() } -> std::same_as<std::size_t>;
};

/// P starts batches of R without waiting: submit_batch(std::vector<R>) returns a batch handle.
template <class P, class R>
concept submits = request<R> && requires(P& p, std::vector<R>&& requests) {
  { p.submit_batch(std::move(requests)) } -> batch_of<response_t<R>>;
};

/// P creates and removes items from (id, args...): create, create_batch, remove, remove_batch.
template <class P, class... A>
concept creates = requires(P& p, id_t id, std::span<const id_t> ids, const A&... args) {
  p.create(id, args...);
  { p.create_batch(ids, args...) } -> std::same_as<std::vector<result<void>>>;
  { p.remove(id) } -> std::same_as<bool>;
  { p.remove_batch(ids) } -> std::same_as<std::vector<result<void>>>;
};

/// The whole sending surface for requests R and items built from (id, A...).
template <class P, class R, class... A>
concept pool_of = sends<P, R> && sends_with_deadline<P, R> && submits<P, R> && creates<P, A...>;

}  // namespace mtp
