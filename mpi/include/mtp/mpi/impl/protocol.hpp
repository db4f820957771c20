// SPDX-License-Identifier: MIT
// The messages sharded pools exchange: their header and kinds, results on the wire, and the
// compile-time checks of what a request may carry across ranks.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include <mtp/core/forwarding.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/result.hpp>
#include <mtp/mpi/environment.hpp>
#include <mtp/mpi/wire.hpp>

namespace mtp::mpi::impl {

enum class kind : std::uint8_t { call = 1, post = 2, reply = 3 };

struct header {
  kind what;
  std::uint8_t pad[3];
  std::uint32_t count;
  std::uint64_t op;    // the registered operation (call and post)
  std::uint64_t call;  // the caller's call number, echoed by the reply
};

// A result on the wire: [u8 0][value], or [u8 1][u8 code][u64 id][u8 has exception]
// then [i32 rank thrown on][type][what].
template <class T>
void put_result(wire::writer& w, const result<T>& r, int here) {
  if (r.has_value()) {
    w.pod(std::uint8_t{0});
    if constexpr (!std::is_void_v<T>) wire::put(w, r.value());
    return;
  }
  const error& e = r.error();
  w.pod(std::uint8_t{1});
  w.pod(static_cast<std::uint8_t>(e.code));
  w.pod(static_cast<std::uint64_t>(e.id));
  w.pod(static_cast<std::uint8_t>(e.exception ? 1 : 0));
  if (e.exception) {
    std::string type, what;
    w.pod(static_cast<std::int32_t>(describe(e.exception, here, type, what)));
    w.str(type);
    w.str(what);
  }
}

// Reads a result into `slot`; a large value goes through the heap, not the stack.
template <class T>
void read_result(wire::reader& in, result<T>& slot) {
  if (in.pod<std::uint8_t>() == 0) {
    if constexpr (std::is_void_v<T>) {
      slot.emplace();
    } else if constexpr (std::is_trivially_copyable_v<T> && sizeof(T) > wire::k_stack_max) {
      const wire::decoded<T> v(in, 1);  // in the message where aligned: one copy, into the slot
      slot.emplace(*v.begin());
    } else {
      slot.emplace(wire::get<T>(in));
    }
    return;
  }
  error e;
  e.code = static_cast<errc>(in.pod<std::uint8_t>());
  e.id = in.pod<std::uint64_t>();
  if (in.pod<std::uint8_t>() != 0) {
    const int thrown_on = in.pod<std::int32_t>();
    std::string type = in.str();
    std::string what = in.str();
    e.exception = std::make_exception_ptr(remote_error(thrown_on, std::move(type), std::move(what)));
  }
  slot.set_error(std::move(e));
}

template <class Tuple>
inline constexpr bool no_pointers = true;
template <class... S>
inline constexpr bool no_pointers<std::tuple<S...>> = (!std::is_pointer_v<S> && ...);

template <class R>
constexpr void check_remote_request() {
  static_assert(!mtp::is_method_call_v<R>,
                "mtp::mpi: method messages (make_call) hold a member function pointer, which differs between "
                "processes; use pool.call<&Item::member>(id, args...) or an explicit message struct");
  if constexpr (mtp::is_member_call_v<R>) {
    static_assert(no_pointers<typename R::traits::args>,
                  "mtp::mpi: this member function takes a pointer, which would cross ranks as an address; take a "
                  "value (std::string, ...) instead");
  }
  static_assert(wire::cannot_cross_ranks<R>::ok);
  if constexpr (!std::is_void_v<response_t<R>>) static_assert(wire::cannot_cross_ranks<response_t<R>>::ok);
}

}  // namespace mtp::mpi::impl
