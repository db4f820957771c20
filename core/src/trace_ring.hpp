// SPDX-License-Identifier: MIT
// Internal: a worker's trace events (see trace.cpp). Not installed.
#pragma once

#include <mtp/core/impl/worker.hpp>

#include <cxxabi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mtp::impl {

namespace trace_detail {
inline std::int64_t now_ns(time_point since) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - since).count();
}

// A readable name for a request type (typeid names are mangled); other names pass as they are.
inline std::string readable(const char* what) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(what, nullptr, nullptr, &status), std::free);
  return status == 0 && demangled != nullptr ? std::string(demangled.get()) : std::string(what);
}

inline std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(c));
      out += buffer;
    } else {
      out += c;
    }
  }
  return out + "\"";
}
}  // namespace trace_detail
using trace_detail::json_string;
using trace_detail::now_ns;
using trace_detail::readable;

/// A worker's events: a fixed ring (the oldest are overwritten), written only by its worker.
class trace_ring {
 public:
  struct event {
    std::int64_t begin_ns = 0;
    std::int64_t end_ns = -1;  // -1: an instant event, or a message still running
    id_t id = 0;
    std::uint64_t count = 0;  // instant events: how many requests arrived
    const char* what = "";
    bool instant = false;
  };

  /// A ring of `capacity` events (at least one), whose memory the process budget granted (see
  /// reserve_trace_memory); it gives that memory back when destroyed. `requested` is what the
  /// pool asked for: the trace says how many events the budget cut.
  trace_ring(std::size_t capacity, std::size_t requested, time_point origin)
      : events_(capacity), requested_(requested), origin_(origin) {}
  trace_ring(const trace_ring&) = delete;
  trace_ring& operator=(const trace_ring&) = delete;
  ~trace_ring();

  [[nodiscard]] std::size_t capacity() const noexcept { return events_.size(); }

  void begin(id_t id, const char* what) noexcept {
    open_ = &push();
    *open_ = event{now_ns(origin_), -1, id, 0, what, false};
  }
  void end() noexcept {
    if (open_ != nullptr) open_->end_ns = now_ns(origin_);
    open_ = nullptr;
  }
  void instant(const char* what, std::uint64_t count) noexcept {
    event& e = push();
    e = event{now_ns(origin_), -1, 0, count, what, true};
  }

  std::string json(std::size_t worker) const {
    std::string out;
    const std::size_t n = std::min(recorded_, events_.size());
    const std::size_t first = recorded_ - n;
    const std::string tid = std::to_string(worker);
    for (std::size_t k = first; k < recorded_; ++k) {
      const event& e = events_[k % events_.size()];
      char ts[64];
      std::snprintf(ts, sizeof ts, "%.3f", static_cast<double>(e.begin_ns) / 1000.0);
      if (!out.empty()) out += ",\n";
      if (e.instant) {
        out += "{\"name\":" + json_string(e.what) + ",\"cat\":\"queue\",\"ph\":\"i\",\"s\":\"t\",\"ts\":" + ts +
               ",\"pid\":1,\"tid\":" + tid + ",\"args\":{\"requests\":" + std::to_string(e.count) + "}}";
      } else {
        const std::int64_t end = e.end_ns >= 0 ? e.end_ns : e.begin_ns;
        char dur[64];
        std::snprintf(dur, sizeof dur, "%.3f", static_cast<double>(end - e.begin_ns) / 1000.0);
        const bool sleep = std::string_view(e.what) == "(asleep)";
        out += "{\"name\":" + json_string(readable(e.what)) + ",\"cat\":\"" + (sleep ? "idle" : "message") +
               "\",\"ph\":\"X\",\"ts\":" + ts + ",\"dur\":" + dur + ",\"pid\":1,\"tid\":" + tid;
        out += sleep ? "}" : ",\"args\":{\"id\":" + std::to_string(e.id) + "}}";
      }
    }
    if (requested_ > events_.size()) {
      out += std::string(out.empty() ? "" : ",\n") + "{\"name\":\"trace_limited\",\"ph\":\"M\",\"pid\":1,\"tid\":" + tid +
             ",\"args\":{\"ring events\":" + std::to_string(events_.size()) + ",\"requested\":" +
             std::to_string(requested_) + ",\"why\":\"the process-wide trace memory budget (MTP_TRACE_MEMORY)\"}}";
    }
    if (recorded_ > events_.size()) {
      out += std::string(out.empty() ? "" : ",\n") + "{\"name\":\"dropped\",\"ph\":\"M\",\"pid\":1,\"tid\":" + tid +
             ",\"args\":{\"oldest events overwritten\":" + std::to_string(recorded_ - events_.size()) + "}}";
    }
    return out;
  }

 private:
  event& push() noexcept {
    event& e = events_[recorded_ % events_.size()];
    ++recorded_;
    return e;
  }

  std::vector<event> events_;
  std::size_t requested_;
  std::size_t recorded_ = 0;
  event* open_ = nullptr;
  time_point origin_;
};


/// The events a new ring may hold: `requested`, or fewer when the process-wide budget for
/// trace rings (MTP_TRACE_MEMORY MiB, 256 by default) is nearly spent; 0 when it is spent.
/// Reserves their memory; the ring gives it back when destroyed.
std::size_t reserve_trace_memory(std::size_t requested) noexcept;

}  // namespace mtp::impl
