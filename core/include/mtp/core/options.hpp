// SPDX-License-Identifier: MIT
// Pool options, the diagnostic hook, and the hooks policy.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include <mtp/affinity/placement.hpp>
#include <mtp/core/impl/std_parts.hpp>
#include <mtp/core/result.hpp>

namespace mtp {

/// Something the pool reports without a caller to tell: a posted request that failed, a hook
/// that threw, a worker that could not be pinned.
struct diagnostic {
  enum class kind : std::uint8_t {
    post_failed,     ///< A posted (fire-and-forget) request failed; `error` says why.
    hook_failed,     ///< A worker or message hook threw; `text` holds its message.
    pinning_failed,  ///< The worker could not be pinned and runs unpinned; `text` says why.
    placement_note,  ///< A remark from the placement planner (e.g. workers share CPUs).
    stalled,         ///< One message has run longer than pool_options::stall_threshold, or an
                     ///< idle worker could not reach its queued messages for that long.
    trace_limited,   ///< The process-wide trace memory budget cut this worker's trace ring.
  };
  kind what;
  std::size_t worker;  ///< Index of the worker that reports it.
  std::string text;    ///< A readable sentence.
  std::optional<mtp::error> error;
  /// `stalled`: the item whose message (handler, constructor, destructor or hook) runs; empty
  /// when the worker is idle with its queue cut (see README, "Guarantees").
  std::optional<id_t> item{};
  /// `stalled`: how long that message has been running when reported.
  std::chrono::nanoseconds running{};
};

/// How a pool is built. All fields have working defaults.
struct pool_options {
  /// Number of workers; 0 = as many as the placement has (default: one per allowed core).
  std::size_t workers = 0;

  /// Where workers run. Unset: mtp::default_placement(workers), which honours MTP_AFFINITY.
  std::optional<mtp::placement> placement{};

  /// How long an idle worker keeps polling its queue (with a pause instruction, yielding every
  /// 64 polls) before it sleeps on a futex. Longer: lower latency after short pauses; shorter:
  /// less CPU burnt after a burst. Zero: sleep at once.
  std::chrono::nanoseconds worker_spin = std::chrono::microseconds(50);

  /// How long a caller waiting for its responses polls before it sleeps.
  std::chrono::nanoseconds caller_spin = std::chrono::microseconds(50);

  /// Bound on the requests waiting in one worker's queue; 0 = unbounded (the default: memory
  /// is the limit, and a caller is never slowed by others' backlog). When a queue is full,
  /// blocking calls wait for room (a batch larger than the bound is fed in pieces), and post
  /// fails at once with errc::queue_full. create, remove and shutdown are never held back.
  std::size_t queue_capacity = 0;

  /// Maps an id to a worker index in [0, workers). Unset: id % workers. It must be a pure
  /// function of the id: create, requests and remove for one id must reach the same worker.
  std::function<std::size_t(id_t id, std::size_t workers)> router{};

  /// Receives diagnostics. Unset: they are written to stderr.
  std::function<void(const diagnostic&)> on_diagnostic{};

  /// A message (handler, constructor, destructor or hook) running longer than this is
  /// reported once through on_diagnostic (kind `stalled`, with the worker, the item id and the
  /// time so far), and again if shutdown then waits for it. Checked by one process-wide
  /// monitor thread a few times per threshold, so the worker's own cost is two plain stores
  /// per message. Zero: off.
  std::chrono::nanoseconds stall_threshold = std::chrono::seconds(1);

  /// Passivation: an item no message has touched for this long is destroyed on its worker
  /// (Hooks::on_passivate(id) runs first, then the message hooks and its destructor), checked
  /// a few times per period. Mostly for items that activate on first message, which come
  /// back on their next message. Idle items are passivated under load too (at most 256 per
  /// sweep between rounds of messages). Zero: off (the default; when on, each message reads
  /// the clock once). Otherwise at least 1 ms: a shorter or negative period throws
  /// std::invalid_argument from the pool's constructor.
  std::chrono::nanoseconds passivate_after{0};

  /// Tracing: when set (or when the MTP_TRACE environment variable names a file), each
  /// worker records every message (start, end, item id, request type), batch arrivals and its
  /// sleeps in a bounded ring, and the pool writes them at shutdown as a Chrome trace-event
  /// JSON file (open it in the Perfetto UI or chrome://tracing: one track per worker, one
  /// slice per message). With MTP_TRACE, the second pool of a process writes PATH.1, the
  /// third PATH.2, ... Off by default; when off, a message costs one predictable branch.
  std::string trace_file{};
  /// Events each worker keeps when tracing (the oldest are overwritten).
  std::size_t trace_events = std::size_t{1} << 16;

  /// Prefix of worker thread names ("mtp-0", "mtp-1", ...); at most 10 characters are used.
  std::string name = "mtp";
};

/// Hooks policy with no hooks: all calls compile away.
///
/// A hooks type may declare any of these members; those it does not declare cost nothing:
///   void on_worker_start(std::size_t worker);   // on the worker thread, before any message
///   void on_worker_stop(std::size_t worker);    // on the worker thread, after its items died
///   void before_message(mtp::id_t id);          // before each handler, create and remove
///   void after_message(mtp::id_t id);           // after each of them (also when they threw)
///   void on_passivate(mtp::id_t id);            // before an idle item is passivated
/// Message hooks also run around the destruction of each item at shutdown and at passivation.
/// Each worker owns its own copy of the hooks object, so hook state needs no locks.
struct no_hooks {};

}  // namespace mtp
