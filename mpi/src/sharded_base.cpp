// SPDX-License-Identifier: MIT
// The part of a sharded pool that does not depend on its item type (impl/sharded_base.hpp):
// dispatching incoming messages, replies, cancellation, remote timers, shutdown; and the
// helpers of sharded_pool that do not depend on its item type.
#include <mtp/mpi/impl/sharded_base.hpp>

#include <algorithm>
#include <cstdio>
#include <limits>

namespace mtp::mpi::impl {

struct sharded_base::cancel_tag {};
const std::uint64_t sharded_base::cancel_key = register_op<sharded_base::cancel_tag>(&sharded_base::serve_cancel, false);
struct sharded_base::timer_cancel_tag {};
const std::uint64_t sharded_base::timer_cancel_key =
    register_op<sharded_base::timer_cancel_tag>(&sharded_base::serve_timer_cancel, false);

sharded_base::sharded_base()
    : rank_(environment::current().rank()), ranks_(environment::current().size()) {
  timer_link_->pool = this;
}

sharded_base::~sharded_base() {
  if (control_) control_->stop();
}

void sharded_base::on_message(int source, const char* data, std::size_t size) {
  wire::reader in(data, size);
  const auto h = in.pod<header>();
  if (h.what == kind::reply) {
    std::unique_ptr<pending> p;
    {
      std::lock_guard lock(pending_m_);
      auto it = pending_.find(h.call);
      if (it == pending_.end()) return;
      p.reset(it->second);
      pending_.erase(it);
    }
    p->on_reply(in, h.count);
    return;
  }
  const op_entry* entry = find_op(h.op);
  if (entry == nullptr) {
    std::fprintf(stderr, "mtp::mpi: rank %d sent an unknown operation; ignored\n", source);
    return;
  }
  started_.fetch_add(1, std::memory_order_relaxed);
  // Messages of one source stay in order: once one waits for the control thread, those
  // behind it from the same source queue behind it. Without the thread (unbounded queues)
  // nothing waits: a waiting share is served as any other (call_wait_op).
  if (control_ != nullptr && (entry->waits || control_->holds(source))) {
    control_->push(source, data, size, entry->serve);
    return;
  }
  entry->serve(*this, source, h.call, in, h.count);
}

bool sharded_base::quiescent() const {
  return stopping_.load(std::memory_order_seq_cst) && inflight_.load(std::memory_order_seq_cst) == 0 &&
         done_.load(std::memory_order_acquire) == started_.load(std::memory_order_acquire);
}

// seq_cst / acquire: as in quiescent(); the local pool is asked last, so that a message its
// items sent before it went quiet is already counted above.
bool sharded_base::idle() const {
  return inflight_.load(std::memory_order_seq_cst) == 0 &&
         done_.load(std::memory_order_acquire) == started_.load(std::memory_order_acquire) && local_quiescent();
}

bool sharded_base::cancel_remote_timer(const std::weak_ptr<timer_link>& link, int dest, std::uint64_t call) noexcept {
  const std::shared_ptr<timer_link> l = link.lock();
  if (l == nullptr) return false;
  std::lock_guard lock(l->m);  // the pool cannot shut down past close() meanwhile
  if (l->pool == nullptr || !l->pool->enter()) return false;
  gate_guard g{l->pool};
  try {
    wire::writer w = start_message(kind::post, timer_cancel_key, 0, call);
    send_bytes(l->pool->channel_, dest, std::move(w.bytes()));
    return true;
  } catch (...) {  // no memory for the message
    return false;
  }
}

void sharded_base::cancel(cancel_control& c) noexcept {
  std::lock_guard lock(c.m);
  cancel_locked(c);
}

bool sharded_base::abandon(cancel_control& c) noexcept {
  std::lock_guard lock(c.m);
  if (c.completed) return false;
  cancel_locked(c);
  c.completed = true;  // call_state::arrive() finds the callback taken and skips it
  return true;
}

void sharded_base::cancel_locked(cancel_control& c) noexcept {
  if (c.completed || c.cancelled) return;
  c.cancelled = true;
  c.local.cancel();
  for (const auto& [dest, call] : c.remote) {
    try {
      wire::writer w = start_message(kind::post, cancel_key, 0, call);
      send_bytes(c.pool->channel_, dest, std::move(w.bytes()));
    } catch (...) {  // no memory for the message: that share runs in full, as if too late
    }
  }
}

// GCC 12 reports a false -Wstringop-overflow in the vector insert that writes the header into
// the reused buffer (compiled inline in each caller, as this was before, it did not).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
wire::writer sharded_base::start_message(kind what, std::uint64_t op, std::uint32_t n, std::uint64_t call) {
  wire::writer w(take_buffer());
  header h{};
  h.what = what;
  h.count = n;
  h.op = op;
  h.call = call;
  w.pod(h);
  return w;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

void sharded_base::send_call(int dest, std::uint64_t call, std::unique_ptr<pending> p, wire::writer&& w,
                             std::function<void()> sent) {
  {
    std::lock_guard lock(pending_m_);
    pending_.emplace(call, p.release());
  }
  if (w.borrowed_parts().empty()) send_bytes(channel_, dest, std::move(w.bytes()));
  else send_borrowing(channel_, dest, std::move(w.bytes()), std::move(w.borrowed_parts()), std::move(sent));
}

void sharded_base::remember(int source, std::uint64_t call, mtp::async_handle h) noexcept {
  std::lock_guard lock(serving_m_);
  if (finished_early_.erase({source, call}) != 0) return;
  try {
    serving_.emplace(std::pair{source, call}, std::move(h));
  } catch (...) {
  }
}

void sharded_base::forget(int source, std::uint64_t call) noexcept {
  std::lock_guard lock(serving_m_);
  if (serving_.erase({source, call}) != 0) return;
  try {
    finished_early_.emplace(source, call);
  } catch (...) {
  }
}

void sharded_base::close() {
  {
    std::lock_guard lock(timer_link_->m);  // remote timers' handles stop sending from here on
    timer_link_->pool = nullptr;
  }
  stopping_.store(true, std::memory_order_seq_cst);
  close_channel(channel_);  // collective; returns once every rank is done
  channel_ = nullptr;
  if (control_) control_->stop();
}

void sharded_base::serve_cancel(sharded_base& self, int source, std::uint64_t call, wire::reader&, std::uint32_t) {
  {
    std::lock_guard lock(self.serving_m_);
    const auto it = self.serving_.find({source, call});
    if (it != self.serving_.end()) it->second.cancel();
  }
  self.served();
}

void sharded_base::serve_timer_cancel(sharded_base& self, int source, std::uint64_t call, wire::reader&,
                                      std::uint32_t) {
  {
    std::lock_guard lock(self.timers_m_);
    const auto it = self.remote_timers_.find({source, call});
    if (it != self.remote_timers_.end()) {
      it->second.cancel();
      self.remote_timers_.erase(it);
    }
  }
  self.served();
}

void sharded_base::keep_remote_timer(int source, std::uint64_t call, mtp::timer t) noexcept {
  std::lock_guard lock(timers_m_);
  if (remote_timers_.size() >= timers_sweep_at_) {
    std::erase_if(remote_timers_, [](const auto& e) { return !e.second.pending(); });
    timers_sweep_at_ = std::max<std::size_t>(64, 2 * remote_timers_.size());
  }
  try {
    remote_timers_.insert_or_assign(std::pair{source, call}, std::move(t));
  } catch (...) {
  }
}

std::uint64_t pin_for_callers(const std::vector<unsigned>& cpus,
                              const std::function<void(const diagnostic&)>& on_diagnostic) {
  if (cpus.empty()) return 0;
  std::string why;
  const std::uint64_t token = pin_communication_thread(cpus, why);
  if (token == 0) {
    const std::string text = "mtp::mpi: the communication thread could not be pinned to the CPUs kept for callers: " + why;
    if (on_diagnostic) on_diagnostic(diagnostic{diagnostic::kind::pinning_failed, 0, text, std::nullopt});
    else std::fprintf(stderr, "%s\n", text.c_str());
  }
  return token;
}

void report_post(const std::function<void(const diagnostic&)>& on_diagnostic, const error& e) {
  if (on_diagnostic) {
    diagnostic d{diagnostic::kind::post_failed, 0, "mtp::mpi: a post from another rank failed: " + e.message(), e};
    on_diagnostic(d);
  } else {
    std::fprintf(stderr, "mtp::mpi: a post from another rank failed: %s\n", e.message().c_str());
  }
}

std::int64_t saturated_ns(std::chrono::duration<long double, std::nano> d) noexcept {
  constexpr auto never = std::numeric_limits<std::int64_t>::max();
  if (!(d.count() < static_cast<long double>(never))) return never;  // NaN too
  if (!(d.count() > 0)) return 0;
  return static_cast<std::int64_t>(d.count());
}

}  // namespace mtp::mpi::impl
