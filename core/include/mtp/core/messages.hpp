// How requests are declared: explicit message structs, and method messages.
//
// Explicit message: a plain struct with a public `id` member (the target item) and a nested
// `response_type`; the item answers it with `response_type handle(const Request&)`.
//
//     struct add { mtp::id_t id; int amount; using response_type = int; };
//     struct counter { counter(mtp::id_t, int start); int handle(const add&); ... };
//
// Method message: no message type at all; `mtp::make_call(id, &counter::increment, 5)` names
// a member function and its arguments, and `pool.call(id, &counter::increment, 5)` sends it.
// Arguments are stored by value in the request and passed to the member function as const
// lvalues, so parameters must be taken by value or by const reference.
#pragma once

#include <concepts>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include <mtp/core/result.hpp>

namespace mtp {

/// A request: names its target item by a public `id` and declares its response type.
template <class R>
concept request = requires(const R& r) {
  typename R::response_type;
  { r.id } -> std::convertible_to<id_t>;
};

/// The response type of request R (`void` allowed).
template <request R>
using response_t = typename R::response_type;

namespace impl {
template <class F>
struct member_traits;  // specialised below for every member-function shape

template <class C, class R, class... P>
struct member_traits<R (C::*)(P...)> {
  using item = C;
  using ret = R;
  using args = std::tuple<std::remove_cvref_t<P>...>;
};
template <class C, class R, class... P>
struct member_traits<R (C::*)(P...) const> : member_traits<R (C::*)(P...)> {};
template <class C, class R, class... P>
struct member_traits<R (C::*)(P...) noexcept> : member_traits<R (C::*)(P...)> {};
template <class C, class R, class... P>
struct member_traits<R (C::*)(P...) const noexcept> : member_traits<R (C::*)(P...)> {};
}  // namespace impl

/// A method message: calls `fn` with the stored `args` on the item `id`.
/// Build one with mtp::make_call; name the type with mtp::call_t<&item::member>.
template <class F>
struct method_call {
  using traits = impl::member_traits<F>;
  using item_type = typename traits::item;
  using response_type = typename traits::ret;

  id_t id;
  F fn;
  typename traits::args args;
};

/// The request type for a call of member function M, e.g. `mtp::call_t<&counter::increment>`.
template <auto M>
using call_t = method_call<decltype(M)>;

/// Builds a method message: `make_call(7, &counter::increment, 5)`.
template <class F, class... A>
  requires std::is_member_function_pointer_v<F>
[[nodiscard]] method_call<F> make_call(id_t id, F fn, A&&... args) {
  static_assert(std::tuple_size_v<typename impl::member_traits<F>::args> == sizeof...(A),
                "mtp::make_call: wrong number of arguments for this member function");
  return method_call<F>{id, fn, {std::forward<A>(args)...}};
}

/// One element of a create batch whose items get different constructor arguments.
template <class... Args>
struct create_request {
  id_t id;
  std::tuple<Args...> args;
};

namespace impl {
template <class T>
inline constexpr bool is_method_call = false;
template <class F>
inline constexpr bool is_method_call<method_call<F>> = true;

// Calls a method message's member function with its stored arguments.
template <class Item, class F>
decltype(auto) invoke_method(Item& item, const method_call<F>& m) {
  return std::apply([&](const auto&... a) -> decltype(auto) { return (item.*m.fn)(a...); }, m.args);
}
}  // namespace impl

namespace impl {
template <class R, class Item>
inline constexpr bool is_method_of = false;
template <class F, class Item>
inline constexpr bool is_method_of<method_call<F>, Item> =
    std::is_base_of_v<typename member_traits<F>::item, Item>;
}  // namespace impl

/// Item answers request R: an explicit message with a matching `handle`, or a method message
/// naming one of Item's own member functions.
template <class Item, class R>
concept handles = request<R> && (impl::is_method_of<R, Item> || requires(Item& item, const R& r) {
                                   { item.handle(r) } -> std::convertible_to<response_t<R>>;
                                 });

namespace impl {
// Runs request r on item; the one place the two message styles meet.
template <class Item, request R>
decltype(auto) dispatch(Item& item, const R& r) {
  if constexpr (is_method_call<R>) return invoke_method(item, r);
  else return item.handle(r);
}

// Gives a readable error naming both types when an item does not handle a request.
template <class Item, class R>
constexpr void check_handles() {
  static_assert(request<R>,
                "mtp: this type is not a request: it needs a public `id` member and a nested "
                "`using response_type = ...;` (see the instantiation below for the type)");
  if constexpr (request<R>) {
    if constexpr (is_method_call<R>) {
      static_assert(is_method_of<R, Item>,
                    "mtp: this method message names a member function of another class");
    } else {
      static_assert(requires(Item& item, const R& r) { item.handle(r); },
                    "mtp: the pool item has no `handle(const Request&)` for this request type "
                    "(the instantiation below names both types)");
    }
  }
}
}  // namespace impl

}  // namespace mtp
