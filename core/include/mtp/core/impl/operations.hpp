// SPDX-License-Identifier: MIT
// Internals: the operations, what a worker does with each input of a message: send a request
// to its item, create items, remove them. Each runs on the item's worker (serve side) and
// writes its result into the caller's slot. Do not include directly; use <mtp/mtp.hpp>.
#pragma once

#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <mtp/core/impl/item_store.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/result.hpp>

namespace mtp::impl {

/// An operation that creates items: a worker about to run a share of n of them makes room for
/// n more items at once (worker::expect_items).
template <class Op>
concept creates_items = requires {
  requires Op::k_creates;
};

/// Send request R to its item.
template <class R>
struct request_op {
  using input = R;
  using output = response_t<R>;
  static constexpr bool k_control = false;  // counts against a bounded queue
  static id_t id_of(const R& r) noexcept { return static_cast<id_t>(r.id); }

  template <class W>
  void apply(W& w, const R& r, result<output>& out) const noexcept {
    const id_t id = id_of(r);
    auto* item = w.find(id);
    constexpr bool activates = activates_on_first_message<typename W::item_type>;
    if (!activates && item == nullptr) {
      out.set_error(error{errc::unknown_id, id, {}});
      return;
    }
    errc thrown = errc::handler_failed;
    w.run_message(
        id, typeid(R).name(), thrown, [&](error e) { out.set_error(std::move(e)); },
        [&] {
          if constexpr (activates) {
            if (item == nullptr) {  // built here, in the same message, on this worker
              thrown = errc::constructor_failed;
              item = &w.emplace_item(id);
              thrown = errc::handler_failed;
            }
          }
          if constexpr (std::is_void_v<output>) {
            dispatch(*item, r);
            out.emplace();
          } else {
            out.emplace(dispatch(*item, r));
          }
        });
  }
};

/// Create items from ids, all with the same constructor arguments (a tuple of references).
/// `Single`: there is exactly one id, so rvalue arguments may be moved into the item.
template <class Args, bool Single>
struct create_op {
  using input = id_t;
  using output = void;
  static constexpr bool k_control = true;  // never held back by a bounded queue
  static constexpr bool k_creates = true;  // a batch's share reserves its room at once
  static id_t id_of(id_t id) noexcept { return id; }

  Args* args;

  template <class W>
  void apply(W& w, id_t id, result<void>& out) const noexcept {
    if (w.find(id) != nullptr) {
      out.set_error(error{errc::duplicate_id, id, {}});
      return;
    }
    w.run_message(
        id, "create", errc::constructor_failed, [&](error e) { out.set_error(std::move(e)); },
        [&] {
          auto build = [&](auto&&... a) { w.emplace_item(id, std::forward<decltype(a)>(a)...); };
          if constexpr (Single) std::apply(build, std::move(*args));
          else std::apply(build, std::as_const(*args));
          out.emplace();
        });
  }
};

/// Create items each from its own create_request.
template <class... A>
struct create_each_op {
  using input = create_request<A...>;
  using output = void;
  static constexpr bool k_control = true;
  static constexpr bool k_creates = true;
  static id_t id_of(const input& r) noexcept { return r.id; }

  template <class Item>
  static constexpr void check() {
    static_assert(std::is_constructible_v<Item, id_t, const A&...>,
                  "mtp: the pool item has no constructor Item(mtp::id_t, Args...) for these arguments");
  }

  template <class W>
  void apply(W& w, const input& r, result<void>& out) const noexcept {
    create_op<const std::tuple<A...>, false>{&r.args}.apply(w, r.id, out);
  }
  /// A request the operation owns alone (create_async): its arguments move into the item.
  template <class W>
  void apply(W& w, input& r, result<void>& out) const noexcept {
    create_op<std::tuple<A...>, true>{&r.args}.apply(w, r.id, out);
  }
};

template <class T>
struct create_each_op_for;
template <class... A>
struct create_each_op_for<create_request<A...>> {
  using type = create_each_op<A...>;
};

/// Remove items: each is destroyed on its worker, after the messages queued before it.
struct remove_op {
  using input = id_t;
  using output = void;
  static constexpr bool k_control = true;
  static id_t id_of(id_t id) noexcept { return id; }

  template <class W>
  void apply(W& w, id_t id, result<void>& out) const noexcept {
    if (w.find(id) == nullptr) {
      out.set_error(error{errc::unknown_id, id, {}});
      return;
    }
    w.run_message(id, "remove", errc::handler_failed, [&](error e) { out.set_error(std::move(e)); }, [&] {
      w.erase_item(id);
      out.emplace();
    });
  }
};

}  // namespace mtp::impl
