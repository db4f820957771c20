// SPDX-License-Identifier: MIT
// What a handler, constructor, destructor or hook can ask about the thread it runs on.
#pragma once

#include <cstddef>
#include <optional>

#include <mtp/core/impl/worker_base.hpp>
#include <mtp/core/result.hpp>

namespace mtp::this_worker {

/// Whether the calling thread is a worker of some pool.
[[nodiscard]] inline bool is_worker() noexcept { return impl::tl_current_worker != nullptr; }

/// The calling worker's index in its pool, or nullopt off the workers.
[[nodiscard]] inline std::optional<std::size_t> index() noexcept {
  if (impl::tl_current_worker == nullptr) return std::nullopt;
  return impl::tl_current_worker->index();
}

/// The id of the item whose handler, constructor or destructor runs now (also inside the
/// before/after hooks), or nullopt outside a message: off the workers, and on a worker in
/// on_worker_start, on_worker_stop and between messages. In a completion callback of
/// send_async that runs on a worker, the id of the request it completes; of send_batch_async,
/// the id of the batch's last request.
[[nodiscard]] inline std::optional<id_t> current_id() noexcept {
  const impl::worker_base* const w = impl::tl_current_worker;
  if (w == nullptr || !w->in_message()) return std::nullopt;
  return w->current_id();
}

}  // namespace mtp::this_worker
