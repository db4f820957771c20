// SPDX-License-Identifier: MIT
// A request in flight whose storage its caller owns, so that starting it allocates nothing:
// what co_await mtp::async keeps in the coroutine frame, and what an adapter embeds in its own
// operation (the Asio adapter does).
#pragma once

#include <mtp/core/impl/async_slot.hpp>

namespace mtp {

/// One request in flight, owned by its caller: the request (`input`), its result (`out`) and
/// the function the pool calls when it is done with the slot (`done`, with `owner` free for
/// the caller's use). Started with `pool.send_async(slot)` (mtp::thread_pool), which allocates
/// nothing. The contract:
///  - Set `done` (a `void(async_slot&) noexcept` function pointer) before starting. It is called
///    exactly once: on the item's worker right after the handler, as the pool's very last touch
///    of the slot (`done` may free it), or on the calling thread before send_async returns when
///    the request could not be sent (pool_stopped, invalid_route, queue_full: `out` holds the
///    error). On the worker it runs as a message of the request, as send_async's callback does.
///  - The slot does not move, and lives until `done` has been called.
///  - `cancelled.store(true, std::memory_order_relaxed)`, from any thread: a request the worker
///    has not started is skipped, and `out` holds errc::cancelled.
///  - `abandon()` and `take_turn()` are a race between two parties, for the owner's use (say,
///    a canceller that completes the operation at once, and `done`): `abandon()` returns true
///    when the other party's `take_turn()` has not happened, which then returns false.
template <class R>
using async_slot = impl::async_slot<R>;

/// Whether `pool.send_async(slot)` starts a caller-owned slot of requests R on Pool.
template <class Pool, class R>
concept starts_async_slots = requires(Pool& pool, async_slot<R>& slot) { pool.send_async(slot); };

}  // namespace mtp
