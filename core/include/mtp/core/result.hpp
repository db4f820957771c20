// Ids, error codes and the result type every batch form returns.
//
// Error channels: single blocking calls (send, call, create) return the value or throw;
// batch forms return one mtp::result<T> per request, in request order, so one failing
// request never hides the others. A handler's own exception travels to the caller unchanged:
// result::value() rethrows it.
#pragma once

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace mtp {

/// The id of a pool item. Routing, creation and every request use it.
using id_t = std::uint64_t;

/// Why a request did not produce a response.
enum class errc : std::uint8_t {
  unknown_id,          ///< No item with this id lives in the pool (never created, or removed).
  duplicate_id,        ///< create: an item with this id already exists; the constructor did not run.
  constructor_failed,  ///< create: the item's constructor threw; no item was added.
  handler_failed,      ///< The handler threw; the worker and the item carry on.
  hook_failed,         ///< A before-message hook threw, so the handler did not run.
  pool_stopped,        ///< The pool is shut down (or shutting down); the request was not sent.
  would_deadlock,      ///< A blocking call from a worker into its own worker.
  invalid_route,       ///< The user's router returned a worker index out of range.
  queue_full,          ///< try_/post forms on a bounded queue: the worker's queue had no room.
  timed_out,           ///< The deadline passed before the response arrived.
  cancelled,           ///< The caller cancelled an asynchronous request before it started.
};

/// A short stable name for the code, e.g. "unknown_id".
[[nodiscard]] const char* to_string(errc code) noexcept;

/// What went wrong with one request: the code, the id it was for, and, when a handler or
/// constructor threw, its exception.
struct error {
  errc code = errc::unknown_id;
  id_t id = 0;
  std::exception_ptr exception;  ///< Set for handler_failed, constructor_failed, hook_failed.

  /// A sentence naming the problem, e.g. "mtp: no item with id 42 (unknown_id)".
  [[nodiscard]] std::string message() const;
  /// Throws the handler's own exception if there is one, else mtp::pool_error.
  [[noreturn]] void raise() const;
};

/// The exception the pool itself throws (unknown id, pool stopped, would deadlock, ...).
class pool_error : public std::runtime_error {
 public:
  pool_error(errc code, id_t id, const std::string& what)
      : std::runtime_error(what), code_(code), id_(id) {}
  explicit pool_error(const error& e) : pool_error(e.code, e.id, e.message()) {}
  [[nodiscard]] errc code() const noexcept { return code_; }
  [[nodiscard]] id_t id() const noexcept { return id_; }

 private:
  errc code_;
  id_t id_;
};

/// The value type standing in for `void` responses.
struct unit {
  friend bool operator==(unit, unit) = default;
};

namespace impl {
template <class T>
using stored_t = std::conditional_t<std::is_void_v<T>, unit, T>;
}  // namespace impl

/// One response: a value, or an error. A default-constructed result is "pending"; results
/// handed back by the pool are always filled.
template <class T>
class result {
  using stored = impl::stored_t<T>;

 public:
  using value_type = T;

  result() noexcept = default;
  template <class U>
    requires std::is_constructible_v<stored, U&&> && (!std::is_same_v<std::remove_cvref_t<U>, result>) &&
             (!std::is_same_v<std::remove_cvref_t<U>, mtp::error>)
  result(U&& value) : state_(std::in_place_index<1>, std::forward<U>(value)) {}  // NOLINT: implicit by design
  result(mtp::error e) : state_(std::in_place_index<2>, std::move(e)) {}             // NOLINT: implicit by design

  [[nodiscard]] bool has_value() const noexcept { return state_.index() == 1; }
  [[nodiscard]] bool has_error() const noexcept { return state_.index() == 2; }
  explicit operator bool() const noexcept { return has_value(); }

  /// The value; throws the error (the handler's own exception, or pool_error) otherwise.
  decltype(auto) value() & { return get(*this); }
  decltype(auto) value() const& { return get(*this); }
  decltype(auto) value() && {
    check();
    if constexpr (std::is_void_v<T>) return;
    else return std::move(std::get<1>(state_));
  }
  /// The error; precondition: has_error().
  [[nodiscard]] const mtp::error& error() const& { return std::get<2>(state_); }

  template <class... A>
  void emplace(A&&... args) { state_.template emplace<1>(std::forward<A>(args)...); }
  void set_error(mtp::error e) { state_.template emplace<2>(std::move(e)); }

 private:
  void check() const {
    if (state_.index() == 2) std::get<2>(state_).raise();
    if (state_.index() == 0) throw std::logic_error("mtp::result: no value yet (pending)");
  }
  template <class Self>
  static decltype(auto) get(Self& self) {
    self.check();
    if constexpr (std::is_void_v<T>) return;
    else return (std::get<1>(self.state_));
  }

  std::variant<std::monostate, stored, mtp::error> state_;
};

}  // namespace mtp
