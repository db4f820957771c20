// SPDX-License-Identifier: MIT
// Tracing: each worker records its messages in a bounded ring; the pool writes them as Chrome
// trace-event JSON (https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU).
#include <mtp/core/impl/worker.hpp>

#include "trace_ring.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mtp::impl {

namespace {
// Trace rings' memory in the whole process, and its bound: with MTP_TRACE every pool traces,
// so a thousand pools must not each take megabytes per worker.
std::atomic<std::size_t> g_trace_bytes{0};

std::size_t trace_budget() noexcept {
  static const std::size_t budget = [] {
    constexpr std::size_t k_default_mib = 256;
    // getenv only races with a concurrent setenv, which this library never calls.
    const char* env = std::getenv("MTP_TRACE_MEMORY");  // NOLINT(concurrency-mt-unsafe)
    std::size_t mib = k_default_mib;
    if (env != nullptr && *env != '\0') {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(env, &end, 10);
      if (end != nullptr && *end == '\0') mib = static_cast<std::size_t>(std::min<unsigned long long>(v, 1ULL << 30));
    }
    return mib << 20;
  }();
  return budget;
}
}  // namespace

std::size_t reserve_trace_memory(std::size_t requested) noexcept {
  constexpr std::size_t k_event = sizeof(trace_ring::event);
  const std::size_t budget = trace_budget();
  // relaxed, all: a budget counter; the rings themselves are published by the pool's start.
  std::size_t used = g_trace_bytes.load(std::memory_order_relaxed);
  for (;;) {
    const std::size_t left = used < budget ? budget - used : 0;
    const std::size_t events = std::min(requested, left / k_event);
    if (events == 0) return 0;
    if (g_trace_bytes.compare_exchange_weak(used, used + events * k_event, std::memory_order_relaxed)) return events;
  }
}

trace_ring::~trace_ring() {
  g_trace_bytes.fetch_sub(events_.size() * sizeof(event), std::memory_order_relaxed);  // relaxed: a counter
}

std::unique_ptr<trace_ring> worker_base::make_trace_ring() {
  const std::size_t requested = std::max<std::size_t>(pool_.options().trace_events, 1);
  const std::size_t events = reserve_trace_memory(requested);
  if (events < requested) {
    pool_.report({diagnostic::kind::trace_limited, index_,
                  "the process-wide trace memory budget (MTP_TRACE_MEMORY, " + std::to_string(trace_budget() >> 20) +
                      " MiB) is " + (events == 0 ? "spent: this worker records no trace" : "nearly spent: this worker records at most " +
                      std::to_string(events) + " of " + std::to_string(requested) + " events"),
                  std::nullopt});
  }
  if (events == 0) return nullptr;
  try {
    return std::make_unique<trace_ring>(events, requested, pool_.started_at());
  } catch (...) {
    g_trace_bytes.fetch_sub(events * sizeof(trace_ring::event), std::memory_order_relaxed);  // relaxed: a counter
    throw;
  }
}

void worker_base::record_begin(id_t id, const char* what) noexcept { trace_->begin(id, what); }
void worker_base::record_end() noexcept { trace_->end(); }
void worker_base::record_instant(const char* what, std::uint64_t count) noexcept { trace_->instant(what, count); }

std::string worker_base::trace_json_events() const {
  std::string name = "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":" + std::to_string(index_) +
                           ",\"args\":{\"name\":\"worker " + std::to_string(index_) + "\"}}";
  if (trace_ == nullptr) return name;
  const std::string events = trace_->json(index_);
  return events.empty() ? name : name + ",\n" + events;
}

void pool_core::write_trace_file(const std::string& path, const std::vector<std::string>& per_worker) const {
  std::ofstream out(path, std::ios::trunc);
  if (!out) throw std::runtime_error("mtp: cannot write the trace file '" + path + "'");
  out << "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"pool\":" << json_string(options_.name)
      << ",\"workers\":" << workers_.size() << "},\"traceEvents\":[\n";
  for (std::size_t k = 0; k < per_worker.size(); ++k) out << (k == 0 ? "" : ",\n") << per_worker[k];
  out << "\n]}\n";
  if (!out) throw std::runtime_error("mtp: cannot write the trace file '" + path + "'");
}

namespace {
struct snapshot_request {
  std::string* out;
  completion* done;
};
void run_snapshot(worker_base& w, envelope& e) noexcept {
  const auto r = e.read<snapshot_request>();
  try {
    *r.out = w.trace_json_events();
  } catch (...) {
    r.out->clear();  // no memory for the copy: this worker's track stays empty
  }
  r.done->arrive();
}
}  // namespace

void pool_core::write_trace(const std::string& path) {
  if (!tracing()) throw std::logic_error("mtp: write_trace: tracing is off (set pool_options::trace_file or MTP_TRACE)");
  if (own_worker() != nullptr) {
    throw pool_error(errc::would_deadlock, 0, "mtp: write_trace() on a worker of the same pool would deadlock (would_deadlock)");
  }
  std::vector<std::string> per_worker(workers_.size());
  completion done;
  {
    send_gate gate(*this);
    if (!gate.open()) throw pool_error(errc::pool_stopped, 0, "mtp: write_trace: the pool is stopped (pool_stopped)");
    done.reset(static_cast<std::uint32_t>(workers_.size()));
    for (std::size_t k = 0; k < workers_.size(); ++k) {
      workers_[k]->push(envelope::make(&run_snapshot, snapshot_request{&per_worker[k], &done}));
    }
  }
  done.wait(options_.caller_spin);
  write_trace_file(path, per_worker);
}

}  // namespace mtp::impl
