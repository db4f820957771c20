// SPDX-License-Identifier: MIT
// Internals: an asynchronous request whose storage its caller keeps (an awaiter in a coroutine
// frame, an adapter's operation), so that starting it allocates nothing. Do not include
// directly; see <mtp/core/async_slot.hpp> for the contract.
#pragma once

#include <mtp/core/impl/shared_control.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/result.hpp>

#include <utility>

namespace mtp::impl {

/// One request in flight, owned by its caller. Lifetime: the caller keeps the slot alive until
/// `done` has been called; the worker calls `done(*this)` as its very last touch (the caller
/// may free the slot from inside `done`). When the request cannot be sent, `done` runs on the
/// sending thread before the send returns. The shared_control base lets an async_handle cancel
/// it; the handle's reference never frees it (the caller owns the storage).
template <class R>
struct async_slot final : shared_control {
  R input;
  result<response_t<R>> out;
  void (*done)(async_slot&) noexcept = nullptr;
  void* owner = nullptr;  // for `done`: the object that holds the slot

  explicit async_slot(R r) : input(std::move(r)) {
    cancelled_as = errc::cancelled;
    destroy = [](shared_control*) noexcept {};  // the caller's storage: nothing to free
  }
  async_slot(const async_slot&) = delete;
  async_slot& operator=(const async_slot&) = delete;
};

}  // namespace mtp::impl
