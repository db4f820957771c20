// The testing seam: a concept that code using a pool can be written against, and a mock that
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
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ranges>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include <mtp/core/messages.hpp>
#include <mtp/core/result.hpp>

namespace mtp {

/// P answers requests of type R the way mtp::thread_pool does: send, send_batch, post.
template <class P, class R>
concept sends = request<R> && requires(P& p, const R& r, std::span<const R> batch) {
  { p.send(r) } -> std::same_as<response_t<R>>;
  { p.send_batch(batch) } -> std::same_as<std::vector<result<response_t<R>>>>;
  p.post(r);
};

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
    static_assert(sizeof...(Resp) == (std::is_void_v<response_t<R>> ? 0 : 1),
                  "mtp::mock_pool::expect: give a response, except for void responses");
    channel<R>().expected.push_back({std::move(request), result<response_t<R>>(std::forward<Resp>(response)...)});
  }
  /// Expects `request` and fails it with `e` (e.g. to test a caller's error handling).
  template <request R>
  void expect_error(R request, mtp::error e) {
    channel<R>().expected.push_back({std::move(request), result<response_t<R>>(std::move(e))});
  }

  /// Every request of type R received so far (send, send_batch, post, call), in order.
  template <request R>
  [[nodiscard]] const std::vector<R>& requests() { return channel<R>().received; }

  /// Throws mock_error listing mismatched requests and expectations never met.
  void verify() const {
    std::string report;
    for (const auto& [type, ch] : channels_) ch->describe_failures(report);
    if (!report.empty()) throw mock_error("mtp::mock_pool: expectations not met:\n" + report);
  }

  // ---- The pool surface ----------------------------------------------------------------

  template <request R>
  response_t<R> send(const R& r) {
    return answer(r).value();
  }

  template <class F, class... A>
    requires std::is_member_function_pointer_v<F>
  decltype(auto) call(id_t id, F fn, A&&... args) {
    return send(make_call(id, fn, std::forward<A>(args)...));
  }

  template <std::ranges::contiguous_range Range>
    requires request<std::ranges::range_value_t<Range>>
  auto send_batch(const Range& requests) {
    std::vector<result<response_t<std::ranges::range_value_t<Range>>>> out;
    out.reserve(std::ranges::size(requests));
    for (const auto& r : requests) out.push_back(answer(r));
    return out;
  }

  template <request R>
  result<void> post(R r) {
    (void)answer(r);
    return result<void>(unit{});
  }

  template <class... A>
  void create(id_t id, A&&...) {
    if (!items_.insert(id).second) throw pool_error(error{errc::duplicate_id, id, {}});
  }
  bool remove(id_t id) { return items_.erase(id) != 0; }
  /// Ids created and not removed.
  [[nodiscard]] const std::set<id_t>& items() const noexcept { return items_; }

 private:
  struct channel_base {
    virtual ~channel_base() = default;
    virtual void describe_failures(std::string& out) const = 0;
  };

  template <request R>
  struct typed_channel final : channel_base {
    struct expectation {
      R request;
      result<response_t<R>> response;
    };
    std::function<response_t<R>(const R&)> responder;
    std::deque<expectation> expected;
    std::vector<R> received;
    std::vector<std::string> failures;

    void describe_failures(std::string& out) const override {
      for (const auto& f : failures) out += "  " + f + "\n";
      for (const auto& e : expected) {
        out += "  expected request of type " + std::string(typeid(R).name()) + " for id " +
               std::to_string(static_cast<id_t>(e.request.id)) + " never arrived\n";
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
    ch.received.push_back(r);
    const id_t id = static_cast<id_t>(r.id);
    if (!ch.expected.empty()) {
      auto e = std::move(ch.expected.front());
      ch.expected.pop_front();
      if constexpr (std::equality_comparable<R>) {
        if (!(e.request == r)) {
          ch.failures.push_back("request #" + std::to_string(ch.received.size()) + " of type " + typeid(R).name() +
                                " for id " + std::to_string(id) + " differs from the one expected");
        }
      }
      return std::move(e.response);
    }
    if (!ch.responder) {
      const std::string why = std::string("mtp::mock_pool: no response scripted for a request of type ") +
                              typeid(R).name() + " to id " + std::to_string(id);
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
};

}  // namespace mtp
