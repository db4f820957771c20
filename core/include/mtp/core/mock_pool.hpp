// SPDX-License-Identifier: MIT
// The testing seam: concepts that code using a pool can be written against, and a mock that
// answers with scripted responses, records what it got, and checks it against expectations.
// The mock has no threads: everything runs on the caller, in call order.
//
//     template <mtp::sends<get_balance> Pool>
//     long total(Pool& pool, std::span<const get_balance> accounts);   // real pool or mock
//
//     mtp::mock_pool<account> mock;
//     mock.expect(get_balance{7}, 100L);                 // exactly this request, in this order
//     mock.on<get_balance>([](const get_balance&) { return 5L; });   // any other one
//     total(mock, ...);
//     mock.verify();                                    // throws mtp::mock_error on a mismatch
//
// The pool's surface, one concept per capability, is in <mtp/core/concepts.hpp> (included by
// <mtp/mtp.hpp>, so that production code is written against it without the mock); each is
// satisfied by mtp::thread_pool and by mtp::mock_pool.
//
// A test seam never passes silently: expect(request, response) needs a request type with ==
// (a compile error says so otherwise; expect<R>(matcher, response) takes a predicate
// instead), and create checks at compile time that the item is constructible from
// (id, args...), as the real pool does.
//
// What verify() reports names types as written in source and shows the requests involved:
// each value is printed with its std::formatter where <format> has one, else with operator<<,
// else, for a trivially copyable type, as its bytes in hex; other values are said to be
// unprintable.
#pragma once

#include <any>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <ranges>
#include <set>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>
#include <version>
#if defined(__cpp_lib_format)
#include <format>
#endif

#include <mtp/core/batch.hpp>
#include <mtp/core/concepts.hpp>
#include <mtp/core/impl/type_name.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/result.hpp>

namespace mtp {

namespace impl {
template <class T>
inline constexpr bool is_mock_create_request = false;
template <class... A>
inline constexpr bool is_mock_create_request<create_request<A...>> = true;

// ---- Printing the values in a failure report ---------------------------------------------------

#if defined(__cpp_lib_format)
/// T has an enabled std::formatter (C++23's std::formattable, spelled for C++20).
template <class T>
concept mock_formattable =
    std::semiregular<std::formatter<T, char>> &&
    requires(const std::formatter<T, char>& f, const T& v, std::format_context& ctx) { f.format(v, ctx); };
#else
template <class T>
concept mock_formattable = false;  // this standard library has no <format>
#endif

template <class T>
concept mock_streamable = requires(std::ostream& os, const T& v) { os << v; };

/// T can be shown in a report: as text, or as its bytes.
template <class T>
concept mock_printable = mock_formattable<T> || mock_streamable<T> || std::is_trivially_copyable_v<T>;

inline constexpr std::size_t k_mock_max_bytes = 64;  // bytes shown of a value printed as bytes

/// `v` for a failure report: formatted, streamed, or its bytes in hex ("bytes: 01 00 ...").
template <class T>
std::string mock_print(const T& v) {
  if constexpr (mock_formattable<T>) {
#if defined(__cpp_lib_format)
    return std::format("{}", v);
#endif
  } else if constexpr (mock_streamable<T>) {
    std::ostringstream os;
    os << v;
    return std::move(os).str();
  } else if constexpr (std::is_trivially_copyable_v<T>) {
    constexpr char digits[] = "0123456789abcdef";
    const auto* bytes = reinterpret_cast<const unsigned char*>(std::addressof(v));
    const std::size_t shown = sizeof(T) < k_mock_max_bytes ? sizeof(T) : k_mock_max_bytes;
    std::string out = "bytes:";
    for (std::size_t i = 0; i < shown; ++i) {
      out += ' ';
      out += digits[bytes[i] >> 4];
      out += digits[bytes[i] & 0xF];
    }
    if (shown < sizeof(T)) out += " ...";
    return out;
  } else {
    return "(no operator<< or std::formatter: cannot be printed)";
  }
}

/// Create arguments for a failure report, comma-separated; nothing unless each can be printed.
template <class... A>
std::optional<std::string> mock_print_args(const A&... args) {
  if constexpr ((mock_printable<A> && ...)) {
    if constexpr (sizeof...(A) == 0) {
      return std::string("(no arguments)");
    } else {
      std::string out;
      bool first = true;
      ((out += (first ? "" : ", "), out += mock_print(args), first = false), ...);
      return out;
    }
  } else {
    return std::nullopt;
  }
}
}  // namespace impl

/// An expectation the mock saw broken, or a request it had no answer for.
class mock_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// A thread-free stand-in for thread_pool<Item>. Not thread-safe: drive it from one thread.
template <class Item>
class mock_pool {
 public:
  using item_type = Item;

  // ---- Scripting ---------------------------------------------------------------------------

  /// Answers every request of type R not matched by an expectation with `responder(request)`.
  /// A responder that throws fails that request exactly as a throwing handler would.
  template <request R, class F>
  void on(F&& responder) {
    channel<R>().responder = std::forward<F>(responder);
  }

  /// Expects `request` next among requests of its type (compared with ==) and answers it with
  /// `response`. Expectations of one type are consumed in the order they were declared.
  template <request R, class... Resp>
  void expect(R request, Resp&&... response) {
    static_assert(std::equality_comparable<R>,
                  "mtp::mock_pool::expect: this request type has no ==, so the mock could not check that the "
                  "request it gets is the one expected. Give it one (e.g. `friend bool operator==(const R&, "
                  "const R&) = default;`; method messages have one when their arguments do), or pass a "
                  "predicate: mock.expect<R>([](const R& r) { return ...; }, response)");
    static_assert(sizeof...(Resp) == (std::is_void_v<response_t<R>> ? 0 : 1),
                  "mtp::mock_pool::expect: give a response, except for void responses");
    auto& ch = channel<R>();
    ch.expected.push_back({std::optional<R>(std::move(request)), {}, make_response<R>(std::forward<Resp>(response)...)});
  }
  /// Expects a request of type R for which `matcher(request)` is true next among requests of
  /// its type, and answers it with `response`.
  template <request R, std::predicate<const R&> M, class... Resp>
  void expect(M matcher, Resp&&... response) {
    static_assert(sizeof...(Resp) == (std::is_void_v<response_t<R>> ? 0 : 1),
                  "mtp::mock_pool::expect: give a response, except for void responses");
    channel<R>().expected.push_back({std::nullopt, std::function<bool(const R&)>(std::move(matcher)),
                                     make_response<R>(std::forward<Resp>(response)...)});
  }
  /// Expects `request` and fails it with `e` (e.g. to test a caller's error handling).
  template <request R>
  void expect_error(R request, mtp::error e) {
    static_assert(std::equality_comparable<R>,
                  "mtp::mock_pool::expect_error: this request type has no ==, so the mock could not check "
                  "that the request it gets is the one expected");
    channel<R>().expected.push_back({std::optional<R>(std::move(request)), {}, result<response_t<R>>(std::move(e))});
  }

  /// Expects the next create (create, or one element of create_batch) to be for `id` with
  /// exactly these arguments (same types after decay, compared with ==). It succeeds, unless
  /// `.fail(error)` is called on what this returns.
  class create_expectation {
   public:
    /// The create fails with `e` (e.g. errc::constructor_failed with an exception).
    void fail(mtp::error e) { outcome_ = std::move(e); }

   private:
    friend class mock_pool;
    id_t id_ = 0;
    std::any args_;
    const std::type_info* args_type_ = &typeid(void);
    std::optional<std::string> (*print_args_)(const std::any&) = nullptr;  // the arguments, if printable
    result<void> outcome_ = unit{};
  };
  template <class... A>
  create_expectation& expect_create(id_t id, A&&... args) {
    using tuple = std::tuple<std::decay_t<A>...>;
    static_assert(std::equality_comparable<tuple> && (std::equality_comparable<std::decay_t<A>> && ...),
                  "mtp::mock_pool::expect_create: the arguments need == so that the mock can check them");
    create_expectation& e = create_expected_.emplace_back();
    e.id_ = id;
    e.args_ = tuple(std::forward<A>(args)...);
    e.args_type_ = &typeid(tuple);
    e.print_args_ = [](const std::any& a) {
      return std::apply([](const auto&... v) { return impl::mock_print_args(v...); }, std::any_cast<const tuple&>(a));
    };
    return e;
  }
  /// Runs `f(id)` for every create not matched by an expectation, before the item is added:
  /// if it throws, the create fails with errc::constructor_failed and that exception, as a
  /// throwing constructor would.
  template <class F>
  void on_create(F&& f) {
    on_create_ = std::forward<F>(f);
  }

  // ---- Checking ----------------------------------------------------------------------------

  /// Every request of type R received so far (send, send_batch, submit_batch, post, call), in
  /// order. Needs a copyable R (the mock keeps copies).
  template <request R>
  [[nodiscard]] const std::vector<R>& requests() {
    static_assert(std::is_copy_constructible_v<R>, "mtp::mock_pool::requests: the mock keeps copies of copyable requests only");
    return channel<R>().received;
  }

  /// Throws mock_error listing mismatched requests and expectations never met.
  void verify() const {
    std::string report;
    for (const auto& f : create_failures_) report += "  " + f + "\n";
    for (const auto& e : create_expected_) {
      report += "  expected create of id " + std::to_string(e.id_) + " never arrived\n";
    }
    for (const auto& [type, ch] : channels_) ch->describe_failures(report);
    if (!report.empty()) throw mock_error("mtp::mock_pool: expectations not met:\n" + report);
  }

  // ---- The pool surface: the same members as mtp::thread_pool ------------------------------

  template <class R>
  impl::response_of_t<R> send(const R& r) {
    if constexpr (impl::check_request<R>()) {
      impl::check_handles<Item, R>();
      return answer(r).value();
    } else {
      return {};
    }
  }

  /// The mock answers at once: a timeout is never reached (script errc::timed_out with
  /// expect_error to test a caller's handling of it).
  template <class R, class Rep, class Period>
  impl::response_of_t<R> send(const R& r, std::chrono::duration<Rep, Period>) {
    return send(r);
  }

  template <class F, class... A>
    requires std::is_member_function_pointer_v<F>
  decltype(auto) call(id_t id, F fn, A&&... args) {
    return send(make_call(id, fn, std::forward<A>(args)...));
  }
  template <auto Member, class... A>
    requires std::is_member_function_pointer_v<decltype(Member)>
  decltype(auto) call(id_t id, A&&... args) {
    return send(make_call<Member>(id, std::forward<A>(args)...));
  }

  template <std::ranges::contiguous_range Range>
  std::vector<result<impl::response_of_t<std::ranges::range_value_t<Range>>>> send_batch(const Range& requests) {
    using R = std::ranges::range_value_t<Range>;
    std::vector<result<impl::response_of_t<R>>> out;
    if constexpr (impl::check_request<R>()) {
      impl::check_handles<Item, R>();
      out.reserve(std::ranges::size(requests));
      for (const auto& r : requests) out.push_back(answer(r));
    }
    return out;
  }

  template <request R>
  void send_batch(std::span<const R> requests, std::span<result<response_t<R>>> out) {
    if (out.size() != requests.size()) {
      throw std::invalid_argument("mtp::mock_pool::send_batch: output span size differs from the batch size");
    }
    for (std::size_t i = 0; i < requests.size(); ++i) out[i] = answer(requests[i]);
  }

  template <std::ranges::contiguous_range Range, class Rep, class Period>
  std::vector<result<impl::response_of_t<std::ranges::range_value_t<Range>>>> send_batch(
      const Range& requests, std::chrono::duration<Rep, Period>) {
    return send_batch(requests);
  }

  /// Answers every request at once and returns a finished mtp::batch.
  template <class R>
  batch<impl::response_of_t<R>> submit_batch(std::vector<R> requests) {
    using T = impl::response_of_t<R>;
    auto state = std::make_unique<impl::async_state<T>>();  // its completion starts done
    state->refs.store(1, std::memory_order_relaxed);         // only the handle: no worker shares it
    state->destroy = [](impl::shared_control* c) noexcept { delete static_cast<impl::async_state<T>*>(c); };
    if constexpr (impl::check_request<R>()) {
      impl::check_handles<Item, R>();
      state->results.reserve(requests.size());
      for (const auto& r : requests) state->results.push_back(answer(r));
    }
    return batch<T>(state.release());
  }

  template <class R>
  result<void> post(R r) {
    if constexpr (impl::check_request<R>()) {
      impl::check_handles<Item, R>();
      (void)answer(r);
      return result<void>(unit{});
    } else {
      return result<void>();
    }
  }

  /// As thread_pool::create: throws pool_error(duplicate_id), or what the scripted outcome
  /// says; checks at compile time that Item(id, args...) is a constructor.
  template <class... A>
  void create(id_t id, A&&... args) {
    check_constructible<A&&...>();
    do_create(id, std::forward<A>(args)...).value();
  }
  template <class... A>
  std::vector<result<void>> create_batch(std::span<const id_t> ids, const A&... args) {
    check_constructible<const A&...>();
    std::vector<result<void>> out;
    out.reserve(ids.size());
    for (id_t id : ids) out.push_back(do_create(id, args...));
    return out;
  }
  template <std::ranges::contiguous_range Range>
    requires impl::is_mock_create_request<std::ranges::range_value_t<Range>>
  std::vector<result<void>> create_batch(const Range& requests) {
    std::vector<result<void>> out;
    out.reserve(std::ranges::size(requests));
    for (const auto& r : requests) {
      out.push_back(std::apply(
          [&](const auto&... a) {
            check_constructible<decltype(a)...>();
            return do_create(r.id, a...);
          },
          r.args));
    }
    return out;
  }

  bool remove(id_t id) { return items_.erase(id) != 0; }
  std::vector<result<void>> remove_batch(std::span<const id_t> ids) {
    std::vector<result<void>> out;
    out.reserve(ids.size());
    for (id_t id : ids) out.push_back(remove(id) ? result<void>(unit{}) : result<void>(error{errc::unknown_id, id, {}}));
    return out;
  }
  /// Ids created and not removed.
  [[nodiscard]] const std::set<id_t>& items() const noexcept { return items_; }

 private:
  template <class... A>
  static constexpr void check_constructible() {
    static_assert(std::is_constructible_v<Item, id_t, A...>,
                  "mtp: the pool item has no constructor Item(mtp::id_t, Args...) for these arguments");
  }

  template <request R, class... Resp>
  static result<response_t<R>> make_response(Resp&&... response) {
    if constexpr (std::is_void_v<response_t<R>>) return result<void>(unit{});
    else return result<response_t<R>>(std::forward<Resp>(response)...);
  }

  /// The received and expected create arguments, each on its own line where it can be printed.
  template <class... A>
  static std::string describe_args(const create_expectation& e, const A&... received) {
    std::string out;
    if (auto text = impl::mock_print_args(received...)) out += "\n    received: " + *text;
    if (auto text = e.print_args_(e.args_)) out += "\n    expected: " + *text;
    return out;
  }

  template <class... A>
  result<void> do_create(id_t id, A&&... args) {
    if (!create_expected_.empty()) {
      create_expectation e = std::move(create_expected_.front());
      create_expected_.pop_front();
      using tuple = std::tuple<std::decay_t<A>...>;
      const tuple* expected = std::any_cast<tuple>(&e.args_);
      const std::string n = std::to_string(++creates_);
      if (e.id_ != id) {
        create_failures_.push_back("create #" + n + " was for id " + std::to_string(id) + ", expected id " +
                                   std::to_string(e.id_));
      } else if (expected == nullptr) {
        create_failures_.push_back("create #" + n + " (id " + std::to_string(id) + ") had arguments of types " +
                                   impl::type_name(typeid(tuple)) + ", expected " + impl::type_name(*e.args_type_) +
                                   describe_args(e, args...));
      } else if constexpr (std::equality_comparable<tuple>) {
        if (!(*expected == tuple(args...))) {
          create_failures_.push_back("create #" + n + " (id " + std::to_string(id) +
                                     ") had arguments different from the ones expected" + describe_args(e, args...));
        }
      }
      if (e.outcome_.has_error()) return e.outcome_;
      if (!items_.insert(id).second) return error{errc::duplicate_id, id, {}};
      return unit{};
    }
    ++creates_;
    if (items_.contains(id)) return error{errc::duplicate_id, id, {}};
    if (on_create_) {
      try {
        on_create_(id);
      } catch (...) {
        return error{errc::constructor_failed, id, std::current_exception()};
      }
    }
    items_.insert(id);
    return unit{};
  }

  struct channel_base {
    virtual ~channel_base() = default;
    virtual void describe_failures(std::string& out) const = 0;
  };

  template <request R>
  struct typed_channel final : channel_base {
    struct expectation {
      std::optional<R> request;               // compared with ==, or
      std::function<bool(const R&)> matcher;  // a predicate
      result<response_t<R>> response;
    };
    std::function<response_t<R>(const R&)> responder;
    std::deque<expectation> expected;
    std::vector<R> received;
    std::size_t count = 0;
    std::vector<std::string> failures;

    void describe_failures(std::string& out) const override {
      for (const auto& f : failures) out += "  " + f + "\n";
      for (const auto& e : expected) {
        out += "  expected request of type " + impl::type_name(typeid(R));
        if (e.request) out += " for id " + std::to_string(static_cast<id_t>(e.request->id));
        out += " never arrived\n";
        if (e.request) out += "    expected: " + impl::mock_print(*e.request) + "\n";
      }
    }
  };

  template <request R>
  typed_channel<R>& channel() {
    auto& slot = channels_[std::type_index(typeid(R))];
    if (!slot) slot = std::make_unique<typed_channel<R>>();
    return static_cast<typed_channel<R>&>(*slot);
  }

  template <request R>
  result<response_t<R>> answer(const R& r) {
    auto& ch = channel<R>();
    if constexpr (std::is_copy_constructible_v<R>) ch.received.push_back(r);
    ++ch.count;
    const id_t id = static_cast<id_t>(r.id);
    if (!ch.expected.empty()) {
      auto e = std::move(ch.expected.front());
      ch.expected.pop_front();
      bool matches = false;
      if (e.request) {
        if constexpr (std::equality_comparable<R>) matches = *e.request == r;
      } else {
        matches = e.matcher(r);
      }
      if (!matches) {
        std::string why = "request #" + std::to_string(ch.count) + " of type " + impl::type_name(typeid(R)) +
                          " for id " + std::to_string(id) + " differs from the one expected\n    received: " +
                          impl::mock_print(r);
        if (e.request) why += "\n    expected: " + impl::mock_print(*e.request);  // a matcher shows nothing
        ch.failures.push_back(std::move(why));
      }
      return std::move(e.response);
    }
    if (!ch.responder) {
      const std::string why = "mtp::mock_pool: no response scripted for a request of type " +
                              impl::type_name(typeid(R)) + " to id " + std::to_string(id) +
                              "\n    received: " + impl::mock_print(r);
      ch.failures.push_back(why);
      return error{errc::handler_failed, id, std::make_exception_ptr(mock_error(why))};
    }
    try {
      if constexpr (std::is_void_v<response_t<R>>) {
        ch.responder(r);
        return result<void>(unit{});
      } else {
        return ch.responder(r);
      }
    } catch (...) {
      return error{errc::handler_failed, id, std::current_exception()};
    }
  }

  std::map<std::type_index, std::unique_ptr<channel_base>> channels_;
  std::set<id_t> items_;
  std::deque<create_expectation> create_expected_;
  std::vector<std::string> create_failures_;
  std::function<void(id_t)> on_create_;
  std::size_t creates_ = 0;
};

}  // namespace mtp
