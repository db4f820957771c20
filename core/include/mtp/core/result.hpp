// SPDX-License-Identifier: MIT
// Ids, error codes and the result type every batch form returns.
//
// Error channels: single blocking calls (send, call, create) return the value or throw;
// batch forms return one mtp::result<T> per request, in request order, so one failing
// request never hides the others. A handler's own exception travels to the caller unchanged:
// result::value() rethrows it.
//
// std::error_code: mtp::errc is an error code enum (std::is_error_code_enum), in the category
// mtp::error_category() (name "mtp"), so `ec == mtp::errc::unknown_id` works for a
// std::error_code, and mtp::pool_error is a std::system_error whose code() is one of them.
#pragma once

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <new>
#include <utility>

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
  queue_full,          ///< A non-blocking form (post, send_async, submit_batch, ...) on a bounded queue: no room.
  timed_out,           ///< The deadline passed before the response arrived.
  cancelled,           ///< The caller cancelled an asynchronous request before it started.
  out_of_memory,       ///< Memory ran out while an error was recorded, and so had the reserve
                       ///< kept for that (see mtp::result): the original error is lost; id is 0.
};

/// A short stable name for the code, e.g. "unknown_id".
[[nodiscard]] const char* to_string(errc code) noexcept;

/// The std::error_category of mtp::errc: name() "mtp", message() a short sentence ending in
/// the code's name, e.g. "no item with this id (unknown_id)". An error_code's value is the
/// errc's value plus one (0 means success to std::error_code; errc::unknown_id is 0). Codes
/// with a portable meaning are equivalent to their std::errc condition: timed_out to
/// std::errc::timed_out, cancelled to std::errc::operation_canceled, out_of_memory to
/// std::errc::not_enough_memory.
[[nodiscard]] const std::error_category& error_category() noexcept;

/// The std::error_code for `code`, in mtp::error_category(); never a success code.
[[nodiscard]] inline std::error_code make_error_code(errc code) noexcept {
  return {static_cast<int>(code) + 1, error_category()};
}

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
/// A std::system_error (and so a std::runtime_error) with the code make_error_code(code()):
/// `catch (const std::system_error& e)` sees e.code() == mtp::errc::unknown_id. pool_error's
/// own code() returns the mtp::errc itself; what() is the message it was given (for an
/// mtp::error, error::message()).
class pool_error : public std::system_error {
 public:
  pool_error(errc code, id_t id, const std::string& what)
      : std::system_error(make_error_code(code)), what_(what), code_(code), id_(id) {}
  explicit pool_error(const error& e) : pool_error(e.code, e.id, e.message()) {}
  [[nodiscard]] errc code() const noexcept { return code_; }
  [[nodiscard]] id_t id() const noexcept { return id_; }
  [[nodiscard]] const char* what() const noexcept override { return what_.what(); }

 private:
  std::runtime_error what_;  // the message as given (copied without allocating, as exceptions are)
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

/// Where a result keeps its error: a new heap record, else a record of the reserve, else the
/// shared out-of-memory error (see mtp::result). Never throws.
[[nodiscard]] const error* box_error(error&& e) noexcept;
/// Gives back what box_error returned: deletes it, returns it to the reserve, or, for the
/// shared error, does nothing.
void free_error(const error* e) noexcept;
}  // namespace impl

/// One response: a value, or an error. A default-constructed result is "pending"; results
/// handed back by the pool are always filled.
///
/// Layout: the value inline, next to one word that says which state the result is in:
/// 0 = pending, 2 = value, odd = the address of a heap-allocated mtp::error plus one (the
/// low bit tags it, which also lets the compiler see that an error is never a value).
/// Errors are the rare path, so only they allocate; a result of a trivially copyable T of up
/// to 8 bytes is 16 bytes, a pending one is made by one store, and destroying a value of a
/// trivially destructible T does nothing beyond one compare.
///
/// Recording an error never throws, so a worker can always answer: when the heap has no room
/// for the error, it goes, whole (code, id, exception), into one of a fixed process-wide
/// reserve of error records, which it holds until the result lets go of it; with the reserve
/// used up too, the result holds a shared, preallocated errc::out_of_memory error (id 0).
/// Copyable when T is; moves never allocate and leave the source pending.
template <class T>
class result {
  using stored = impl::stored_t<T>;
  static constexpr std::uintptr_t k_pending = 0;
  static constexpr std::uintptr_t k_value = 2;
  static constexpr std::uintptr_t k_error_bit = 1;

 public:
  using value_type = T;

  result() noexcept {}  // NOLINT: the value stays unconstructed while pending
  template <class U>
    requires std::is_constructible_v<stored, U&&> && (!std::is_same_v<std::remove_cvref_t<U>, result>) &&
             (!std::is_same_v<std::remove_cvref_t<U>, mtp::error>)
  result(U&& value) : state_(k_value) {  // NOLINT: implicit by design
    ::new (static_cast<void*>(&value_)) stored(std::forward<U>(value));
  }
  result(mtp::error e) noexcept : state_(box(std::move(e))) {}  // NOLINT: implicit by design

  result(result&& other) noexcept(std::is_nothrow_move_constructible_v<stored>) : state_(other.state_) {
    if (state_ == k_value) {
      ::new (static_cast<void*>(&value_)) stored(std::move(other.value_));
      other.reset();
    } else {
      other.state_ = k_pending;  // the error box changes hands
    }
  }
  result(const result& other)
    requires std::is_copy_constructible_v<stored>
      : state_(other.state_) {
    if (state_ == k_value) {
      ::new (static_cast<void*>(&value_)) stored(other.value_);
    } else if (state_ & k_error_bit) {
      state_ = box(mtp::error(*other.boxed()));
    }
  }
  result& operator=(result&& other) noexcept(std::is_nothrow_move_constructible_v<stored>) {
    if (this != &other) {
      reset();
      if (other.state_ == k_value) {
        ::new (static_cast<void*>(&value_)) stored(std::move(other.value_));
        state_ = k_value;
        other.reset();
      } else {
        state_ = other.state_;
        other.state_ = k_pending;
      }
    }
    return *this;
  }
  result& operator=(const result& other)
    requires std::is_copy_constructible_v<stored>
  {
    if (this == &other) return *this;
    // The copy is made before *this changes, so a throwing copy leaves it as it was. A plain
    // local, not a result: GCC cannot tell that a result's value is built exactly when its
    // state says so, and warns (-Wmaybe-uninitialized) when one result is moved from another
    // that it has just seen built.
    if (other.state_ == k_value) {
      stored copy(other.value_);
      reset();
      ::new (static_cast<void*>(&value_)) stored(std::move(copy));
      state_ = k_value;
    } else {
      const std::uintptr_t copied = (other.state_ & k_error_bit) ? box(mtp::error(*other.boxed())) : k_pending;
      reset();
      state_ = copied;
    }
    return *this;
  }
  ~result() { reset(); }

  [[nodiscard]] bool has_value() const noexcept { return state_ == k_value; }
  [[nodiscard]] bool has_error() const noexcept { return (state_ & k_error_bit) != 0; }
  explicit operator bool() const noexcept { return has_value(); }

  /// The value; throws the error (the handler's own exception, or pool_error) otherwise.
  decltype(auto) value() & { return get(*this); }
  decltype(auto) value() const& { return get(*this); }
  decltype(auto) value() && {
    check();
    if constexpr (std::is_void_v<T>) return;
    else return std::move(value_);
  }
  /// The error; precondition: has_error().
  [[nodiscard]] const mtp::error& error() const& { return *boxed(); }

  template <class... A>
  void emplace(A&&... args) {
    reset();
    ::new (static_cast<void*>(&value_)) stored(std::forward<A>(args)...);
    state_ = k_value;
  }
  /// Replaces the state with `e`. Never throws, also when memory has run out (see above).
  void set_error(mtp::error e) noexcept {
    const std::uintptr_t boxed_error = box(std::move(e));
    reset();
    state_ = boxed_error;
  }

 private:
  static std::uintptr_t box(mtp::error&& e) noexcept {
    static_assert(alignof(mtp::error) >= 2, "the low bit of the address tags the error state");
    // NOLINTNEXTLINE: an aligned address with its low bit set is the state
    return reinterpret_cast<std::uintptr_t>(impl::box_error(std::move(e))) | k_error_bit;
  }
  [[nodiscard]] const mtp::error* boxed() const noexcept {
    return reinterpret_cast<const mtp::error*>(state_ & ~k_error_bit);  // NOLINT: see box()
  }
  void reset() noexcept {
    if (state_ == k_value) {
      if constexpr (!std::is_trivially_destructible_v<stored>) value_.~stored();
    } else if (state_ & k_error_bit) {
      impl::free_error(boxed());
    }
    state_ = k_pending;
  }
  void check() const {
    if (state_ == k_value) return;
    if (state_ == k_pending) throw std::logic_error("mtp::result: no value yet (pending)");
    boxed()->raise();
  }
  template <class Self>
  static decltype(auto) get(Self& self) {
    self.check();
    if constexpr (std::is_void_v<T>) return;
    else return (self.value_);
  }

  union {
    stored value_;  // alive exactly when state_ == k_value
  };
  std::uintptr_t state_ = k_pending;
};

static_assert(sizeof(result<std::uint64_t>) == 16, "mtp::result<8-byte T> is a value and one word");
static_assert(sizeof(result<int>) == 16);
static_assert(sizeof(result<void>) == 16);
static_assert(std::is_nothrow_move_constructible_v<result<std::uint64_t>>);

}  // namespace mtp

/// mtp::errc converts to std::error_code (see mtp::make_error_code).
namespace std {
template <>
struct is_error_code_enum<mtp::errc> : true_type {};
}  // namespace std
