// SPDX-License-Identifier: MIT
// How requests are declared: explicit message structs, method messages, and request families.
//
// Explicit message: a plain struct with a public `id` member (the target item) and a nested
// `response_type`; the item answers it with `response_type handle(const Request&)`.
//
//     struct add { mtp::id_t id; int amount; using response_type = int; };
//     struct counter { counter(mtp::id_t, int start); int handle(const add&); ... };
//
// Method message: no message type at all; `mtp::make_call(id, &counter::increment, 5)` names
// a member function and its arguments, and `pool.call(id, &counter::increment, 5)` sends it.
// With the member as a template argument, `mtp::make_call<&counter::increment>(id, 5)` and
// `pool.call<&counter::increment>(id, 5)`, the message holds no member pointer: the spelling
// that every pool takes, mtp::mpi's sharded pool included.
// A method message owns its arguments, since it runs later on another thread:
//  - a parameter taken by value, by const reference or by rvalue reference is stored as a
//    value and handed to the member function from there;
//  - std::string_view (any std::basic_string_view) is stored as a std::string, and
//    std::span<const T> as a std::vector<T>: the caller's buffer may be gone when it runs;
//  - a pointer is stored as given: the caller owns the pointee and keeps it alive;
//  - a non-const lvalue reference `T&`, or a std::span<T> of non-const T, is rejected at
//    compile time (the worker has no caller's object to write into: return the result).
// The response of a member function returning a reference is a copy of the referred value.
//
// Overloaded member functions: `&item::fn` names an overload set, which make_call cannot
// deduce. Pick one with `mtp::overload<int(int)>(&item::fn)` (for a const member:
// `mtp::overload<int(int) const>(&item::fn)`), or with a static_cast to the member pointer type.
//
// Request family: `mtp::one_of<R1, R2, ...>` holds any one of several requests, so one batch
// can mix kinds. Its id is the id of the request it holds, and only that (it is read-only);
// the item answers it with the handler of that request. Its response is the alternatives'
// response when all have the same one, else a std::variant whose alternative i is the
// response to R_i (void as mtp::unit).
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

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
/// What an unconstrained entry point names as its return type: the response type of R, or
/// this empty marker when R is not a request (check_request then says why).
struct not_a_request {};
template <class R>
struct response_of {
  using type = not_a_request;
};
template <request R>
struct response_of<R> {
  using type = response_t<R>;
};
template <class R>
using response_of_t = typename response_of<R>::type;

/// Says which part of a request R lacks, with the library's own words. Returns request<R>,
/// for `if constexpr (impl::check_request<R>())` around code that needs R to be one.
template <class R>
constexpr bool check_request() {
  if constexpr (!request<R>) {
    constexpr bool has_id = requires(const R& r) { r.id; };
    constexpr bool id_converts = requires(const R& r) { { r.id } -> std::convertible_to<id_t>; };
    constexpr bool has_response = requires { typename R::response_type; };
    static_assert(has_id,
                  "mtp: this type is not a request: it has no public `id` member naming the target item "
                  "(see the instantiation below for the type)");
    static_assert(!has_id || id_converts, "mtp: this type is not a request: its `id` member does not convert to mtp::id_t");
    static_assert(has_response,
                  "mtp: this type is not a request: it has no nested `using response_type = ...;` "
                  "(use void for no response)");
  }
  return request<R>;
}

// ---- Method messages: how each parameter is stored ------------------------------------------

template <class T>
inline constexpr bool dependent_false = false;

/// How a method message stores an argument for parameter P (see the header comment).
template <class P>
struct stored_arg {
  using type = std::remove_cv_t<P>;
};
template <class P>
struct stored_arg<P&> {
  static_assert(dependent_false<P>,
                "mtp::make_call: a parameter taken by non-const lvalue reference (T&) cannot be sent: the member "
                "function would run later, on another thread, with no caller's object to refer to. Take it by "
                "value or by const reference (the message then owns a copy), or pass a pointer and keep the "
                "object alive yourself");
  using type = std::remove_cv_t<P>;
};
template <class P>
struct stored_arg<const P&> : stored_arg<std::remove_cv_t<P>> {};
template <class P>
struct stored_arg<P&&> : stored_arg<std::remove_cv_t<P>> {};
template <class C, class Tr>
struct stored_arg<std::basic_string_view<C, Tr>> {
  using type = std::basic_string<C, Tr>;  // the caller's characters may be gone when it runs
};
template <class T, std::size_t N>
struct stored_arg<std::span<T, N>> {
  static_assert(std::is_const_v<T>,
                "mtp::make_call: a std::span<T> parameter of non-const T cannot be sent: the worker would "
                "write into the caller's memory after the call was made. Take std::span<const T> (the message "
                "then owns a std::vector<T> copy) and return what the member function computes");
  using type = std::vector<std::remove_cv_t<T>>;
};
template <class P>
using stored_arg_t = typename stored_arg<P>::type;

/// Builds the stored argument for parameter P from what the caller passed.
template <class P, class A>
stored_arg_t<P> make_stored(A&& a) {
  using S = stored_arg_t<P>;
  using V = std::remove_cvref_t<P>;
  if constexpr (std::is_constructible_v<S, A&&>) {
    return S(std::forward<A>(a));
  } else if constexpr (requires { typename V::element_type; } && std::is_convertible_v<A&&, V>) {
    const V view(std::forward<A>(a));  // a span: copy the elements
    return S(view.begin(), view.end());
  } else {
    static_assert(std::is_constructible_v<S, A&&>,
                  "mtp::make_call: an argument does not convert to the member function's parameter type");
    return S(std::forward<A>(a));
  }
}

/// Hands a stored argument to the member function: as a const lvalue, or as a fresh copy for
/// a parameter taken by rvalue reference.
template <class P, class S>
decltype(auto) pass_stored(const S& s) {
  if constexpr (std::is_rvalue_reference_v<P>) return std::remove_cvref_t<P>(s);
  else return (s);
}

template <class... P>
struct params {};

template <class F>
struct member_traits;  // specialised below for every member-function shape

template <class C, class R, class... P>
struct member_traits<R (C::*)(P...)> {
  using item = C;
  using ret = R;
  using parameters = params<P...>;
  using args = std::tuple<stored_arg_t<P>...>;
  // Not std::equality_comparable<args>: std::tuple's == is declared for any element types.
  static constexpr bool comparable = (std::equality_comparable<stored_arg_t<P>> && ...);
};
template <class C, class R, class... P>
struct member_traits<R (C::*)(P...) const> : member_traits<R (C::*)(P...)> {};
template <class C, class R, class... P>
struct member_traits<R (C::*)(P...) noexcept> : member_traits<R (C::*)(P...)> {};
template <class C, class R, class... P>
struct member_traits<R (C::*)(P...) const noexcept> : member_traits<R (C::*)(P...)> {};
}  // namespace impl

/// Picks one overload of a member function: `mtp::overload<int(int)>(&item::fn)`, or for a
/// const member `mtp::overload<int(int) const>(&item::fn)`.
template <class Sig, class C>
[[nodiscard]] constexpr auto overload(Sig C::*fn) noexcept {
  return fn;
}

/// A method message: calls `fn` with the stored `args` on the item `id`.
/// Build one with mtp::make_call; name the type with mtp::call_t<&item::member>.
/// Equality-comparable when its arguments are (the same id, member and arguments).
template <class F>
struct method_call {
  using traits = impl::member_traits<F>;
  using item_type = typename traits::item;
  /// The member function's return type; a reference becomes a copy of the referred value.
  using response_type = std::remove_cvref_t<typename traits::ret>;

  id_t id;
  F fn;
  typename traits::args args;

  friend bool operator==(const method_call& a, const method_call& b)
    requires traits::comparable
  {
    return a.id == b.id && a.fn == b.fn && a.args == b.args;
  }
};

/// The request type for a call of member function M, e.g. `mtp::call_t<&counter::increment>`.
template <auto M>
using call_t = method_call<decltype(M)>;

namespace impl {
template <class F, class... P, class... A>
method_call<F> build_call(params<P...>, id_t id, F fn, A&&... args) {
  return method_call<F>{id, fn, typename member_traits<F>::args(make_stored<P>(std::forward<A>(args))...)};
}
}  // namespace impl

/// Builds a method message: `make_call(7, &counter::increment, 5)`. The message owns copies of
/// the arguments (views become owning strings and vectors).
template <class F, class... A>
  requires std::is_member_function_pointer_v<F>
[[nodiscard]] method_call<F> make_call(id_t id, F fn, A&&... args) {
  static_assert(std::tuple_size_v<typename impl::member_traits<F>::args> == sizeof...(A),
                "mtp::make_call: wrong number of arguments for this member function");
  if constexpr (std::tuple_size_v<typename impl::member_traits<F>::args> == sizeof...(A)) {
    return impl::build_call(typename impl::member_traits<F>::parameters{}, id, fn, std::forward<A>(args)...);
  } else {
    return method_call<F>{id, fn, {}};
  }
}

/// A method message that names its member function at compile time:
/// `mtp::make_call<&counter::add>(7, 5)`, the type `mtp::member_call<&counter::add>`. It holds
/// only the id and the arguments (stored as make_call stores them), no member pointer: the
/// same request works on every pool, mtp::mpi's sharded pool included (a member pointer is an
/// address, which differs between processes), and with every form (send, send with a
/// timeout, send_async, post, batches, timers). Equality-comparable when its arguments are.
template <auto M>
  requires std::is_member_function_pointer_v<decltype(M)>
struct member_call {
  using traits = impl::member_traits<decltype(M)>;
  using item_type = typename traits::item;
  /// The member function's return type; a reference becomes a copy of the referred value.
  using response_type = std::remove_cvref_t<typename traits::ret>;
  static constexpr auto member = M;

  id_t id;
  typename traits::args args;

  friend bool operator==(const member_call& a, const member_call& b)
    requires traits::comparable
  {
    return a.id == b.id && a.args == b.args;
  }
};

/// Builds a member_call: `make_call<&counter::add>(7, 5)` (arguments as make_call takes them).
template <auto M, class... A>
  requires std::is_member_function_pointer_v<decltype(M)>
[[nodiscard]] member_call<M> make_call(id_t id, A&&... args) {
  method_call<decltype(M)> m = make_call(id, M, std::forward<A>(args)...);
  return member_call<M>{m.id, std::move(m.args)};
}

/// One element of a create batch whose items get different constructor arguments.
template <class... Args>
struct create_request {
  id_t id;
  std::tuple<Args...> args;
};

/// Builds a create_request from an id and constructor arguments (stored decayed, so a string
/// literal is kept as a `const char*`): `pool.create_async(mtp::make_create(7, "ada"s), on_done)`.
template <class... A>
[[nodiscard]] create_request<std::decay_t<A>...> make_create(id_t id, A&&... args) {
  return {id, std::tuple<std::decay_t<A>...>(std::forward<A>(args)...)};
}

namespace impl {
template <class T>
inline constexpr bool is_create_request = false;
template <class... A>
inline constexpr bool is_create_request<create_request<A...>> = true;
template <class T>
inline constexpr bool is_method_call = false;
template <class F>
inline constexpr bool is_method_call<method_call<F>> = true;
template <class T>
inline constexpr bool is_member_call = false;
template <auto M>
inline constexpr bool is_member_call<member_call<M>> = true;

template <class Item, class F, class Args, class... P>
decltype(auto) invoke_stored(Item& item, F fn, const Args& args, params<P...>) {
  return std::apply([&](const auto&... a) -> decltype(auto) { return (item.*fn)(pass_stored<P>(a)...); }, args);
}

// Calls a method message's member function with its stored arguments.
template <class Item, class F>
decltype(auto) invoke_method(Item& item, const method_call<F>& m) {
  return invoke_stored(item, m.fn, m.args, typename member_traits<F>::parameters{});
}
template <class Item, auto M>
decltype(auto) invoke_method(Item& item, const member_call<M>& m) {
  return invoke_stored(item, M, m.args, typename member_traits<decltype(M)>::parameters{});
}
}  // namespace impl

// ---- Request families ---------------------------------------------------------------------

namespace impl {
template <class... T>
inline constexpr bool all_same = true;
template <class T, class... U>
inline constexpr bool all_same<T, U...> = (std::is_same_v<T, U> && ...);

template <class T, class... U>
struct first {
  using type = T;
};

template <class T, class... U>
inline constexpr std::size_t index_of = 0;
template <class T, class H, class... U>
inline constexpr std::size_t index_of<T, H, U...> = std::is_same_v<T, H> ? 0 : 1 + index_of<T, U...>;

template <class T, class... U>
inline constexpr std::size_t count_of = (std::size_t{std::is_same_v<T, U>} + ... + 0);

template <class... R>
using family_response_t = std::conditional_t<all_same<response_t<R>...>, typename first<response_t<R>...>::type,
                                             std::variant<stored_t<response_t<R>>...>>;

/// The `id` of a request family: reads as an mtp::id_t wherever one is expected (routing reads
/// every request's `r.id`), but only the family sets it, from the request it holds, so that it
/// can never send that request to another item.
template <class Family>
class family_id {
 public:
  constexpr operator id_t() const noexcept { return value_; }  // NOLINT: implicit by design, reads as an id
  constexpr family_id(const family_id&) noexcept = default;

 private:
  friend Family;  // sets it with the request, and copies it with the whole family
  constexpr explicit family_id(id_t value) noexcept : value_(value) {}
  constexpr family_id& operator=(const family_id&) noexcept = default;

  id_t value_;
};
}  // namespace impl

/// One of several kinds of request, e.g. `std::vector<mtp::one_of<deposit, withdraw, audit>>`
/// for a batch mixing them. Built implicitly from any alternative; `id` is that request's id,
/// read-only: assigning a whole request (or family) is the one way to change it.
/// The item answers it with its handler for the request held (explicit or method message).
/// Response: the common response when every alternative has the same one, else a
/// std::variant whose alternative i is the response to R_i (mtp::unit for a void response),
/// so the variant's index() says which kind of request it answers.
template <class... R>
class one_of {
  static_assert(sizeof...(R) > 0, "mtp::one_of: name at least one request type");
  static_assert((request<R> && ...), "mtp::one_of: every alternative must be a request (an `id` and a `response_type`)");
  static_assert(((impl::count_of<R, R...> == 1) && ...), "mtp::one_of: each request type may appear once");

 public:
  using response_type = impl::family_response_t<R...>;
  using variant_type = std::variant<R...>;

  /// The target item: the id of the request held. Converts to mtp::id_t; cannot be assigned.
  impl::family_id<one_of> id;

  template <class T>
    requires(std::is_same_v<std::remove_cvref_t<T>, R> || ...)
  one_of(T&& r)  // NOLINT: implicit by design, so that batches can be written as lists
      : id(static_cast<id_t>(r.id)), message_(std::forward<T>(r)) {}

  /// The request held.
  [[nodiscard]] const variant_type& message() const noexcept { return message_; }
  /// Which alternative is held: i for R_i.
  [[nodiscard]] std::size_t index() const noexcept { return message_.index(); }

  friend bool operator==(const one_of& a, const one_of& b)
    requires(std::equality_comparable<R> && ...)
  {
    return a.message_ == b.message_;  // the ids follow from the requests
  }

 private:
  variant_type message_;
};

namespace impl {
template <class T>
inline constexpr bool is_family = false;
template <class... R>
inline constexpr bool is_family<one_of<R...>> = true;

template <class Item, class R>
decltype(auto) dispatch(Item& item, const R& r);

// Runs the request a family holds with std::visit, wrapping its response as the family's.
template <class Item, class... R>
response_t<one_of<R...>> dispatch_family(Item& item, const one_of<R...>& f) {
  using T = response_t<one_of<R...>>;
  return std::visit(
      [&item](const auto& r) -> T {
        using A = std::remove_cvref_t<decltype(r)>;
        if constexpr (all_same<response_t<R>...>) {
          if constexpr (std::is_void_v<T>) dispatch(item, r);
          else return dispatch(item, r);
        } else if constexpr (std::is_void_v<response_t<A>>) {
          dispatch(item, r);
          return T(std::in_place_index<index_of<A, R...>>);
        } else {
          return T(std::in_place_index<index_of<A, R...>>, dispatch(item, r));
        }
      },
      f.message());
}

// Calls a method message's member function, or the item's handler.
template <class R, class Item>
inline constexpr bool is_method_of = false;
template <class F, class Item>
inline constexpr bool is_method_of<method_call<F>, Item> =
    std::is_base_of_v<typename member_traits<F>::item, Item>;
template <auto M, class Item>
inline constexpr bool is_method_of<member_call<M>, Item> =
    std::is_base_of_v<typename member_traits<decltype(M)>::item, Item>;

template <class Item, class R>
concept handles_one = request<R> && (impl::is_method_of<R, Item> || requires(Item& item, const R& r) {
                                       { item.handle(r) } -> std::convertible_to<response_t<R>>;
                                     });
template <class Item, class R>
inline constexpr bool handles_all = handles_one<Item, R>;
template <class Item, class... R>
inline constexpr bool handles_all<Item, one_of<R...>> = (handles_one<Item, R> && ...);
}  // namespace impl

/// Item answers request R: an explicit message with a matching `handle`, a method message
/// naming one of Item's own member functions, or a family each of whose alternatives it
/// answers.
template <class Item, class R>
concept handles = request<R> && impl::handles_all<Item, R>;

namespace impl {
// Runs request r on item; the one place the message styles meet.
template <class Item, class R>
decltype(auto) dispatch(Item& item, const R& r) {
  if constexpr (is_method_call<R> || is_member_call<R>) return invoke_method(item, r);
  else if constexpr (is_family<R>) return dispatch_family(item, r);
  else return item.handle(r);
}

template <class Item, class R>
constexpr void check_handles_one() {
  if constexpr (is_method_call<R> || is_member_call<R>) {
    static_assert(is_method_of<R, Item>, "mtp: this method message names a member function of another class");
  } else {
    static_assert(requires(Item& item, const R& r) { item.handle(r); },
                  "mtp: the pool item has no `handle(const Request&)` for this request type "
                  "(the instantiation below names both types)");
  }
}

template <class Item, class R>
struct family_checker {
  static constexpr void check() { check_handles_one<Item, R>(); }
};
template <class Item, class... R>
struct family_checker<Item, one_of<R...>> {
  static constexpr void check() { (check_handles_one<Item, R>(), ...); }
};

// Gives a readable error naming both types when an item does not handle a request, or when
// the type is not a request at all.
template <class Item, class R>
constexpr void check_handles() {
  if constexpr (check_request<R>()) family_checker<Item, R>::check();
}
}  // namespace impl

}  // namespace mtp
