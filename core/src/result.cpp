// SPDX-License-Identifier: MIT
#include <mtp/core/result.hpp>

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <system_error>
#include <utility>

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
    case errc::out_of_memory: return "out_of_memory";
  }
  return "unknown error";
}

namespace {
class errc_category final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "mtp"; }
  [[nodiscard]] std::string message(int value) const override {
    if (value < 1 || value > static_cast<int>(errc::out_of_memory) + 1) return "mtp: unknown error " + std::to_string(value);
    const auto code = static_cast<errc>(value - 1);
    const char* text = "";
    switch (code) {
      case errc::unknown_id: text = "no item with this id"; break;
      case errc::duplicate_id: text = "an item with this id already exists"; break;
      case errc::constructor_failed: text = "the item's constructor threw"; break;
      case errc::handler_failed: text = "the item's handler threw"; break;
      case errc::hook_failed: text = "the before-message hook threw"; break;
      case errc::pool_stopped: text = "the pool is shut down"; break;
      case errc::would_deadlock: text = "a blocking call from a worker into its own worker would deadlock"; break;
      case errc::invalid_route: text = "the router returned a worker index out of range"; break;
      case errc::queue_full: text = "the worker's queue is full"; break;
      case errc::timed_out: text = "the request timed out"; break;
      case errc::cancelled: text = "the request was cancelled before it started"; break;
      case errc::out_of_memory: text = "memory ran out while an error was recorded"; break;
    }
    return std::string(text) + " (" + to_string(code) + ")";
  }
  [[nodiscard]] std::error_condition default_error_condition(int value) const noexcept override {
    switch (value - 1) {
      case static_cast<int>(errc::timed_out): return std::errc::timed_out;
      case static_cast<int>(errc::cancelled): return std::errc::operation_canceled;
      case static_cast<int>(errc::out_of_memory): return std::errc::not_enough_memory;
      default: return {value, *this};
    }
  }
};
}  // namespace

const std::error_category& error_category() noexcept {
  static const errc_category category;
  return category;
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
    case errc::out_of_memory:
      text = "memory ran out while an error was recorded, so which request failed and why is lost";
      break;
  }
  return "mtp: " + text + " (" + to_string(code) + ")";
}

void error::raise() const {
  if (exception) std::rethrow_exception(exception);
  throw pool_error(*this);
}

namespace impl {
namespace {
// The reserve: error records for when the heap has no room left for one, so that a worker
// still answers every request it fails. A bit per record says whether a result holds it.
constexpr std::size_t k_reserve_words = 4;
constexpr std::size_t k_reserve_records = k_reserve_words * 64;
struct alignas(error) record_storage {
  unsigned char bytes[sizeof(error)];
};
constinit record_storage g_reserve[k_reserve_records]{};
constinit std::atomic<std::uint64_t> g_reserve_taken[k_reserve_words]{};

// The last resort, shared by every result that gets it: built on first use, in static storage,
// and never destroyed, since a result may hold it until the very end of the process.
alignas(error) constinit unsigned char g_out_of_memory[sizeof(error)]{};
const error* out_of_memory_error() noexcept {
  static const error* const shared = ::new (static_cast<void*>(g_out_of_memory)) error{errc::out_of_memory, 0, {}};
  return shared;
}

error* take_reserved(error&& e) noexcept {
  for (std::size_t w = 0; w < k_reserve_words; ++w) {
    // relaxed: only a guess at which bits are free; the exchange below decides.
    std::uint64_t taken = g_reserve_taken[w].load(std::memory_order_relaxed);
    while (taken != ~std::uint64_t{0}) {
      const int bit = std::countr_one(taken);
      const std::uint64_t mine = taken | (std::uint64_t{1} << bit);
      // acquire: pairs with the release in free_error, so the previous holder's destruction of
      // the record happens-before we build in it; relaxed on failure: we only retry.
      if (g_reserve_taken[w].compare_exchange_weak(taken, mine, std::memory_order_acquire,
                                                   std::memory_order_relaxed)) {
        return ::new (static_cast<void*>(&g_reserve[w * 64 + static_cast<std::size_t>(bit)])) error(std::move(e));
      }
    }
  }
  return nullptr;
}
}  // namespace

const error* box_error(error&& e) noexcept {
  try {
    return new error(std::move(e));
  } catch (const std::bad_alloc&) {
    // No room on the heap. Nothing was built, so `e` is whole still: on to the reserve.
  }
  if (error* const reserved = take_reserved(std::move(e))) return reserved;
  return out_of_memory_error();
}

void free_error(const error* e) noexcept {
  // Integer compares: relational operators on pointers into different objects are unspecified.
  const auto at = reinterpret_cast<std::uintptr_t>(e);              // NOLINT: an address compare only
  const auto first = reinterpret_cast<std::uintptr_t>(&g_reserve[0]);  // NOLINT: as above
  if (at - first < sizeof(g_reserve)) {  // wraps around, so also false below the reserve
    const std::size_t i = (at - first) / sizeof(record_storage);
    e->~error();
    // release: pairs with the acquire in take_reserved: this destruction happens-before the
    // record's next holder builds in it.
    g_reserve_taken[i / 64].fetch_and(~(std::uint64_t{1} << (i % 64)), std::memory_order_release);
    return;
  }
  if (at == reinterpret_cast<std::uintptr_t>(&g_out_of_memory[0])) return;  // NOLINT: as above
  delete e;
}
}  // namespace impl

}  // namespace mtp
