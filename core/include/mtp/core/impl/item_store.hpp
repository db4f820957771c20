// SPDX-License-Identifier: MIT
// Internals: the typed worker of a thread_pool<Item, Hooks>, the store of the items routed to it,
// and how one message runs on it (hooks, trace, errors). Do not include directly; use
// <mtp/mtp.hpp>.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <mtp/core/impl/id_index.hpp>
#include <mtp/core/impl/slot_cache.hpp>
#include <mtp/core/impl/worker.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/options.hpp>
#include <mtp/core/result.hpp>

namespace mtp::impl {

template <class H>
concept has_before_message = requires(H& h, id_t id) { h.before_message(id); };
template <class H>
concept has_after_message = requires(H& h, id_t id) { h.after_message(id); };
template <class H>
concept has_worker_start = requires(H& h, std::size_t k) { h.on_worker_start(k); };
template <class H>
concept has_worker_stop = requires(H& h, std::size_t k) { h.on_worker_stop(k); };
template <class H>
concept has_passivate = requires(H& h, id_t id) { h.on_passivate(id); };

/// An item type that is built on the first message for an id that has no item (see
/// thread_pool: "Activation on first message").
template <class Item>
concept activates_on_first_message = requires {
  requires Item::activate_on_first_message;
} && std::is_constructible_v<Item, id_t>;

/// The worker of a thread_pool<Item, Hooks>: owns the items routed to it, each in a slot of
/// its own (so it never moves; its memory comes from a slot_cache) found through an id_index,
/// both touched only by its own thread, so items need no locks.
template <class Item, class Hooks>
class worker final : public worker_base {
 public:
  using item_type = Item;

  worker(pool_core& pool, std::size_t index, const Hooks& hooks)
      : worker_base(pool, index), hooks_(hooks), passivate_after_(pool.options().passivate_after) {}
  ~worker() override { stop_and_join(); }

  // Worker thread only, from here on.

  [[nodiscard]] Item* find(id_t id) noexcept {
    slot* const s = items_.find(id);
    if (s == nullptr) return nullptr;
    if (passivate_after_.count() > 0) s->touched = std::chrono::steady_clock::now();
    return &s->item;
  }

  /// About `n` items are about to be created here (a batch's share): makes room for them in
  /// the index at once rather than growing it step by step. Only a hint: without memory the
  /// creates grow it one by one and report what fails.
  void expect_items(std::size_t n) noexcept {
    try {
      items_.reserve(items_.size() + n);
    } catch (...) {
      // Each create reserves its own room again and fails alone if there is none.
    }
  }

  /// Runs `body` as the message for `id`: sets the current id and runs the hooks around it.
  /// If the hook or `body` throws, `fail` receives the error (`thrown` names what threw; the
  /// body may change it while it runs).
  /// `what` names the message in a trace (a type name, "create", "remove", ...).
  template <class Fail, class Body>
  void run_message(id_t id, const char* what, const errc& thrown, Fail&& fail, Body&& body) noexcept {
    begin_message(id);
    trace_begin(id, what);
    if constexpr (has_before_message<Hooks>) {
      try {
        hooks_.before_message(id);
      } catch (...) {
        fail(error{errc::hook_failed, id, std::current_exception()});
        after(id);
        trace_end();
        return;
      }
    }
    try {
      body();
    } catch (...) {
      fail(error{thrown, id, std::current_exception()});
    }
    after(id);
    trace_end();
  }

  template <class... A>
  Item& emplace_item(id_t id, A&&... args) {
    // The key is checked and the index's room taken before anything is built, so a duplicate
    // never runs the constructor and no allocation can fail after it; a throwing constructor
    // (or no memory for the slot) leaves the index unchanged.
    // The new life's number is known while the constructor runs, so that a timer the
    // constructor arms belongs to it (and one armed by a constructor that throws never fires).
    building_ = {id, ++generations_};
    struct done_building {
      std::pair<id_t, std::uint64_t>& b;
      ~done_building() { b = {}; }
    } done{building_};
    if (slot* const existing = items_.find(id)) return existing->item;
    items_.reserve(items_.size() + 1);
    slot* const s = slots_.make(id, std::forward<A>(args)...);
    s->generation = building_.second;
    items_.insert_reserved(id, s);
    set_item_count(items_.size());
    if (passivate_after_.count() > 0) s->touched = std::chrono::steady_clock::now();
    return s->item;
  }
  /// Which life of item `id` this is (each create, or activation, starts a new one), or 0 when
  /// it does not exist: a timer armed for one life does not fire in another (see timers).
  [[nodiscard]] std::uint64_t generation_of(id_t id) const noexcept {
    if (const slot* const s = items_.find(id)) return s->generation;
    return building_.first == id ? building_.second : 0;  // its constructor runs now
  }
  void erase_item(id_t id) noexcept {
    delete_slot(id);
    set_item_count(items_.size());
  }

  void report(diagnostic::kind what, std::string text, std::optional<error> e = std::nullopt) noexcept {
    try {
      pool().report({what, index(), std::move(text), std::move(e)});
    } catch (...) {
      // Out of memory building the report: nothing better to do than carry on.
    }
  }
  /// report() with a text that `make_text()` builds: out of memory there, the report is
  /// dropped and the worker carries on.
  template <class Text>
  void report_with(diagnostic::kind what, Text&& make_text, std::optional<error> e = std::nullopt) noexcept {
    try {
      report(what, make_text(), std::move(e));
    } catch (...) {
      // No memory for the text: nothing better to do than carry on.
    }
  }

 private:
  // Runs a hook that has no caller to fail: what it throws goes to the diagnostic hook.
  template <class F>
  void run_hook(const char* name, F&& hook) noexcept {
    try {
      hook();
    } catch (const std::exception& e) {
      report_with(diagnostic::kind::hook_failed, [&] { return std::string(name) + " threw: " + e.what(); });
    } catch (...) {
      report_with(diagnostic::kind::hook_failed, [&] { return std::string(name) + " threw a non-standard exception"; });
    }
  }

  void after(id_t id) noexcept {
    if constexpr (has_after_message<Hooks>) run_hook("after_message", [&] { hooks_.after_message(id); });
  }

  void on_start() noexcept override {
    if constexpr (has_worker_start<Hooks>) run_hook("on_worker_start", [&] { hooks_.on_worker_start(index()); });
  }

  void on_stop() noexcept override {
    // Items die on their own thread, one by one, each with its id readable in its destructor
    // and the message hooks around it, as for remove.
    // A destroyed item's place may take a later entry of its run (id_index::erase), so the walk
    // moves on only past empty places; none are filled behind it, since nothing is created now.
    while (!items_.empty()) {
      for (std::size_t i = 0; i < items_.capacity();) {
        const auto& e = items_.at(i);
        if (e.value == nullptr) {
          ++i;
        } else {
          destroy_item(e.id, "shutdown");
        }
      }
    }
    set_item_count(0);
    mark_idle();
    if constexpr (has_worker_stop<Hooks>) run_hook("on_worker_stop", [&] { hooks_.on_worker_stop(index()); });
  }

  // Destroys one item as a message of its own (hooks around it); what a hook throws has no
  // caller to go to.
  void destroy_item(id_t id, const char* why) noexcept {
    run_message(
        id, why, errc::hook_failed,
        [&](const error& e) {
          report_with(
              diagnostic::kind::hook_failed,
              [&] { return std::string("a message hook threw while the item was destroyed at ") + why; }, e);
        },
        [&] { delete_slot(id); });
    delete_slot(id);  // also when before_message threw: the item goes all the same
    set_item_count(items_.size());
  }

  // Passivation: at most k_passivate_per_round items per call, so that a sweep over many idle
  // items does not hold up the queue; what is left is swept again right after the next round.
  static constexpr std::size_t k_passivate_per_round = 256;

  time_point housekeeping(time_point now) noexcept override {
    if (passivate_after_.count() <= 0) return time_point::max();
    stale_.clear();
    bool more = false;
    for (std::size_t i = 0; i < items_.capacity(); ++i) {
      const auto& e = items_.at(i);
      if (e.value == nullptr || now - e.value->touched < passivate_after_) continue;
      if (stale_.size() == k_passivate_per_round) {
        more = true;
        break;
      }
      try {
        stale_.push_back(e.id);
      } catch (...) {
        break;  // no memory for the list: passivate what fits, the rest next time
      }
    }
    for (const id_t id : stale_) {
      if constexpr (has_passivate<Hooks>) run_hook("on_passivate", [&] { hooks_.on_passivate(id); });
      destroy_item(id, "passivation");
    }
    return more ? now : now + passivate_after_ / 4;
  }

  // An item and when a message last touched it (kept only when passivation is on).
  struct slot {
    template <class... A>
    explicit slot(id_t id, A&&... args) : item(id, std::forward<A>(args)...) {}
    Item item;
    time_point touched{};
    std::uint64_t generation = 0;
  };

  // Takes item `id` out of the index, then destroys it (if it was there): while its destructor
  // runs, the id is no longer found.
  void delete_slot(id_t id) noexcept { slots_.destroy(items_.erase(id)); }

  slot_cache<slot> slots_;  // the slots' memory, kept for the next creates (declared first: freed last)
  id_index<slot> items_;
  std::uint64_t generations_ = 0;
  std::pair<id_t, std::uint64_t> building_{};  // the item whose constructor runs, and its life
  Hooks hooks_;
  const std::chrono::nanoseconds passivate_after_;
  std::vector<id_t> stale_;  // the items one passivation round destroys, kept between rounds
};

}  // namespace mtp::impl
