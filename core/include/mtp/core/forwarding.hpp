// SPDX-License-Identifier: MIT
// Building blocks for code that forwards requests to a pool (the Asio and MPI adapters, or
// your own): it then accepts the ranges the pool accepts, and rejects what the pool rejects
// with the pool's own compile-time messages.
#pragma once

#include <concepts>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include <mtp/core/impl/std_parts.hpp>
#include <mtp/core/impl/wait.hpp>
#include <mtp/core/messages.hpp>

namespace mtp {

/// A range whose elements convert to ids: what create_batch and remove_batch take.
template <class Range>
concept id_range = std::ranges::input_range<Range> && std::convertible_to<std::ranges::range_value_t<Range>, id_t>;

/// A range of requests: what every batch form takes (a vector, a span, a view, a deque, a
/// generator).
template <class Range>
concept request_range = std::ranges::input_range<Range> && request<std::ranges::range_value_t<Range>>;

/// The elements of any input range as a span of T: a contiguous sized range of T as it is (no
/// copy), any other range gathered once into `storage`, which must outlive the span.
template <class T, class Range>
std::span<const T> gather(Range&& range, std::vector<T>& storage) {
  using value = std::ranges::range_value_t<Range>;
  if constexpr (std::ranges::contiguous_range<Range> && std::ranges::sized_range<Range> && std::same_as<value, T>) {
    return {std::ranges::data(range), std::ranges::size(range)};
  } else {
    if constexpr (std::ranges::sized_range<Range>) storage.reserve(std::ranges::size(range));
    for (auto&& x : range) storage.emplace_back(std::forward<decltype(x)>(x));
    return storage;
  }
}

/// The elements of any input range copied (moved, from an rvalue range of rvalues) into a
/// vector of T that the caller owns: how the asynchronous forms keep a batch alive after the
/// call returns. A std::vector<T> passed as an rvalue is taken over whole, without a copy.
template <class T, class Range>
std::vector<T> to_vector(Range&& range) {
  if constexpr (std::is_same_v<Range, std::vector<T>>) {  // an rvalue vector
    return std::forward<Range>(range);  // Range is not a reference here: a move
  } else {
    std::vector<T> owned;
    if constexpr (std::ranges::sized_range<Range>) owned.reserve(std::ranges::size(range));
    for (auto&& x : range) owned.emplace_back(std::forward<decltype(x)>(x));
    return owned;
  }
}

/// Whether R is a method message (mtp::make_call): it holds a member function pointer, an
/// address that means nothing in another process.
template <class R>
inline constexpr bool is_method_call_v = impl::is_method_call<R>;

/// Whether R is a mtp::member_call (make_call<&Item::member>): only the id and the arguments,
/// so it can cross processes.
template <class R>
inline constexpr bool is_member_call_v = impl::is_member_call<R>;

/// Compiles only when Item answers R; otherwise fails with the pool's own message, which
/// names both types (and says so when R is no request at all).
template <class Item, class R>
constexpr void require_handles() {
  impl::check_handles<Item, R>();
}

/// The steady-clock instant `timeout` from now, for any duration type: a timeout too large
/// for the clock saturates to time_point::max() ("never"), and zero or negative ones mean
/// "already passed". How every timed form of the pool reads its timeout.
template <class Rep, class Period>
[[nodiscard]] std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) noexcept {
  return impl::deadline_after(timeout);
}

}  // namespace mtp
