// SPDX-License-Identifier: MIT
#include <mtp/core/result.hpp>

namespace mtp {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::unknown_id: return "unknown_id";
    case errc::duplicate_id: return "duplicate_id";
    case errc::constructor_failed: return "constructor_failed";
    case errc::handler_failed: return "handler_failed";
    case errc::hook_failed: return "hook_failed";
    case errc::pool_stopped: return "pool_stopped";
    case errc::would_deadlock: return "would_deadlock";
    case errc::invalid_route: return "invalid_route";
    case errc::queue_full: return "queue_full";
    case errc::timed_out: return "timed_out";
    case errc::cancelled: return "cancelled";
  }
  return "unknown error";
}

namespace {
std::string exception_text(const std::exception_ptr& ex) {
  if (!ex) return "no exception";
  try {
    std::rethrow_exception(ex);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}
}  // namespace

std::string error::message() const {
  const std::string id_text = std::to_string(id);
  std::string text;
  switch (code) {
    case errc::unknown_id: text = "no item with id " + id_text; break;
    case errc::duplicate_id: text = "an item with id " + id_text + " already exists"; break;
    case errc::constructor_failed: text = "constructor of item " + id_text + " threw: " + exception_text(exception); break;
    case errc::handler_failed: text = "handler for item " + id_text + " threw: " + exception_text(exception); break;
    case errc::hook_failed: text = "before-message hook for item " + id_text + " threw: " + exception_text(exception); break;
    case errc::pool_stopped: text = "the pool is shut down; request for item " + id_text + " not sent"; break;
    case errc::would_deadlock:
      text = "blocking call for item " + id_text + " from its own worker thread would deadlock (use post)";
      break;
    case errc::invalid_route: text = "the router returned a worker index out of range for item " + id_text; break;
    case errc::queue_full: text = "the queue of the worker for item " + id_text + " is full"; break;
    case errc::timed_out: text = "request for item " + id_text + " timed out"; break;
    case errc::cancelled: text = "request for item " + id_text + " was cancelled before it started"; break;
  }
  return "mtp: " + text + " (" + to_string(code) + ")";
}

void error::raise() const {
  if (exception) std::rethrow_exception(exception);
  throw pool_error(*this);
}

}  // namespace mtp
