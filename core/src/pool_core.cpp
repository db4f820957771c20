#include <mtp/core/impl/worker.hpp>

#include <mtp/core/impl/wait.hpp>

#include <cstdio>
#include <exception>

namespace mtp::impl {

namespace {
mtp::placement choose_placement(const pool_options& options) {
  mtp::placement p = options.placement ? *options.placement : default_placement(options.workers);
  std::size_t n = options.workers != 0 ? options.workers : p.workers.size();
  if (n == 0) n = 1;
  if (p.workers.size() != n) {
    // An explicit placement with a different worker count: share its entries round-robin.
    std::vector<worker_placement> spread(n);
    if (!p.workers.empty()) {
      for (std::size_t i = 0; i < n; ++i) spread[i] = p.workers[i % p.workers.size()];
      p.notes.push_back(std::to_string(n) + " workers use the " + std::to_string(p.workers.size()) +
                        " placement entries round-robin");
    }
    p.workers = std::move(spread);
  }
  return p;
}
}  // namespace

pool_core::pool_core(pool_options options) : options_(std::move(options)), placement_(choose_placement(options_)) {
  const std::size_t n = placement_.workers.size();
  mask_ = (n > 1 && (n & (n - 1)) == 0) ? n - 1 : 0;
  has_router_ = static_cast<bool>(options_.router);
}

pool_core::~pool_core() = default;

void pool_core::start(const worker_factory& make) {
  const std::size_t n = placement_.workers.size();
  workers_.reserve(n);
  for (std::size_t k = 0; k < n; ++k) workers_.push_back(make(*this, k));
  for (std::size_t k = 0; k < n; ++k) workers_[k]->start(placement_.workers[k], placement_.bind_memory);
  for (const std::string& note : placement_.notes) {
    report({diagnostic::kind::placement_note, 0, note, std::nullopt});
  }
}

std::size_t pool_core::route_custom(id_t id) const noexcept {
  try {
    const std::size_t k = options_.router(id, workers_.size());
    return k < workers_.size() ? k : k_bad_route;
  } catch (...) {
    return k_bad_route;
  }
}

bool pool_core::enter() noexcept {
  // seq_cst, both: a Dekker pair with shutdown(), which stores stopping_ then reads
  // active_senders_. Either we see stopping_ or shutdown() sees us and waits for leave().
  active_senders_.fetch_add(1, std::memory_order_seq_cst);
  if (stopping_.load(std::memory_order_seq_cst)) {
    active_senders_.fetch_sub(1, std::memory_order_release);
    return false;
  }
  return true;
}

void pool_core::leave() noexcept {
  // release: our enqueues happen-before shutdown()'s read of zero, hence before its stop markers.
  active_senders_.fetch_sub(1, std::memory_order_release);
}

void pool_core::shutdown() {
  if (own_worker() != nullptr) {
    throw pool_error(errc::would_deadlock, 0,
                     "mtp: shutdown() called on a worker of the same pool would deadlock (would_deadlock)");
  }
  std::lock_guard lock(shutdown_mutex_);
  if (joined_) return;
  stopping_.store(true, std::memory_order_seq_cst);  // seq_cst: see enter()
  // Senders inside the gate only enqueue (they never wait there), so this wait is short.
  while (active_senders_.load(std::memory_order_seq_cst) != 0) yield_thread();
  for (auto& w : workers_) w->push_stop();
  for (auto& w : workers_) w->join();
  joined_ = true;
}

void pool_core::report_pinning_failure(std::size_t worker, const std::string& why) const noexcept {
  // Once per pool: every worker would say the same thing.
  if (pinning_reported_.exchange(true, std::memory_order_relaxed)) return;  // only a once-flag
  report({diagnostic::kind::pinning_failed, worker, "pinning failed: " + why, std::nullopt});
}

void pool_core::report(const diagnostic& d) const noexcept {
  try {
    if (options_.on_diagnostic) {
      options_.on_diagnostic(d);
      return;
    }
    if (d.what == diagnostic::kind::placement_note) return;  // shown by introspection instead
    std::fprintf(stderr, "mtp: worker %zu: %s\n", d.worker, d.text.c_str());
  } catch (...) {
    // A diagnostic hook that throws has nowhere to report to; the pool carries on.
  }
}

}  // namespace mtp::impl
