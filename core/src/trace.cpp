// SPDX-License-Identifier: MIT
// Tracing: each worker records its messages in a bounded ring; the pool writes them as Chrome
// trace-event JSON (https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU).
#include <mtp/core/impl/worker.hpp>

#include "trace_ring.hpp"

#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mtp::impl {

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
