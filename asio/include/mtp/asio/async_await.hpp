// SPDX-License-Identifier: MIT
// mtp::asio::async_await: any C++20 awaitable (mtp::async, mtp::async_create, ...) as an Asio
// asynchronous operation, so that the library's awaitables can be awaited inside an
// asio::awaitable (whose await_transform accepts only Asio's own awaitables) and completed
// with any completion token.
//
//   int v = co_await mtp::asio::async_await(mtp::async(pool, add{1, 2}, mtp::resume_inline_on_worker),
//                                           asio::use_awaitable);
//   auto aw = mtp::async(pool, add{1, 2}, mtp::resume_inline_on_worker);   // kept alive by the caller
//   mtp::asio::async_await(aw, asio::bind_executor(io, [](std::error_code ec, int v) {...}));
//   auto f = mtp::asio::async_await([&] { return mtp::async(pool, req, mtp::resume_inline_on_worker); },
//                                   asio::use_future);                    // a factory: owned
//   co_await mtp::asio::async_await([&](std::stop_token st) {               // Asio cancellation
//     return mtp::async(pool, req, mtp::resume_inline_on_worker, std::move(st)); }, asio::use_awaitable);
//
// The operation runs a small coroutine of its own that co_awaits the awaitable and then posts
// the completion to the handler's executor. Where that coroutine resumes is the awaitable's
// business; for the library's awaitables, mtp::resume_inline_on_worker is the natural choice:
// the coroutine only stores the result and posts, so it is short and never blocks (a scheduler
// works too, it only adds a hop).
//
// What it accepts, and who owns the awaitable:
//  - an rvalue of a movable awaitable: moved into the operation, which owns it;
//  - a factory: a callable taking a std::stop_token, or nothing, that returns the awaitable;
//    it is called when the operation starts, and the awaitable it returns lives in the
//    operation (this is how an immovable awaitable, such as the library's, is owned);
//  - an lvalue: awaited where it is; it must outlive the operation (until the handler runs);
//  - an rvalue of an immovable awaitable (the library's awaitables are immovable: the pool
//    writes into them): awaited where it is, which is safe only while the full-expression that
//    made it lasts, so it is accepted only with asio::use_awaitable (also bound, or wrapped in
//    redirect_error or as_tuple), as in `co_await mtp::asio::async_await(mtp::async(...),
//    asio::use_awaitable)`: the temporary lives until that co_await resumes. Do not keep the
//    returned asio::awaitable to co_await it later; use a factory for that, and for any other
//    token (a static_assert says so).
//
// The awaitable must not need a particular coroutine type: it is awaited from the operation's
// own coroutine, which has no await_transform (asio::awaitable itself cannot be awaited there).
//
// Completion signature, with T = std::remove_cvref_t of what co_await of the awaitable gives
// (await_result_t<A>) and the value V = send_value_t<T> (T, T{} on failure, when T is
// default-constructible, else std::optional<T>), following the adapter's convention
// (mtp/asio.hpp):
//   throwing tokens (is_throwing_token: use_awaitable, use_future, also bound)
//     void(std::exception_ptr, V), void(std::exception_ptr) for void: null on success, else
//     exactly what co_await of the awaitable threw, as itself (the item's own exception,
//     mtp::pool_error, ...): co_await and future::get() rethrow it.
//   every other token (callbacks, redirect_error, as_tuple, deferred, detached, ...)
//     void(std::error_code, V), void(std::error_code) for void: empty on success; else the
//     code() of a std::system_error (mtp::pool_error: the mtp code, `ec == mtp::errc::unknown_id`),
//     except mtp's errc::cancelled, which becomes asio::error::operation_aborted, as Asio
//     reports cancellation; any other exception: mtp::errc::handler_failed (the exception itself
//     travels only in the exception_ptr form; to keep it with any token, await
//     mtp::async_result, whose mtp::result<T> is then the value).
// These are send_signature<T> and throwing_send_signature<T>.
//
// Where the completion runs: as every operation of the adapter, posted to the handler's
// associated executor (asio::system_executor when it has none), never on a pool worker and
// never inside the initiating call, also when the awaitable was ready at once. The operation
// holds outstanding work on that executor until the handler has run, so io_context::run()
// does not return while it is in flight. The handler runs exactly once.
//
// Cancellation: through the std::stop_token of the library's awaitables. With a factory that
// takes a std::stop_token, the handler's associated cancellation slot (bind_cancellation_slot,
// awaitable operators, parallel groups) is connected to it: terminal and partial cancellation
// request stop, and a co_await of one request, create or remove then completes at once with
// errc::cancelled (operation_aborted in the error_code form, pool_error(cancelled) in the
// exception form), while a batch skips what has not started. Total cancellation (no side
// effect allowed) is ignored: a stopped request that had already started is dropped, which
// total cancellation does not allow. Without a handler slot the factory gets an empty
// std::stop_token. In the other forms the slot is not connected (the operation is not
// cancellable through Asio): cancel through the stop_token given to the awaitable. Emit the
// signal from the handler's executor, as Asio requires.
//
// Lifetimes: what the awaitable needs (for the library's: the pool) must outlive the
// operation. The executor's execution context (the io_context) must outlive it too: run it
// until the handler has run (the outstanding work sees to that) or do not destroy it while an
// operation is in flight. A completion already queued when the context is destroyed is
// destroyed unrun, as Asio's own are. (Unlike async_send, this cannot be relaxed in general:
// an awaitable awaited in place lives in the coroutine that the handler owns.)
//
// Allocation: the operation's coroutine frame comes from operator new (it also holds the
// handler, the awaitable in the owned forms and the result); the posted completion uses the
// handler's associated allocator.
#pragma once

// First: it sets up Asio (ASIO_STANDALONE, co_await on clang) before any Asio header.
#include <mtp/asio.hpp>

#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/bind_allocator.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <asio/execution.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/redirect_error.hpp>
#include <asio/system_executor.hpp>

#include <atomic>
#include <concepts>
#include <coroutine>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#include <mtp/core/result.hpp>

namespace mtp::asio {

namespace impl::await {

template <class A>
concept has_member_co_await = requires(A&& a) { static_cast<A&&>(a).operator co_await(); };
template <class A>
concept has_free_co_await = requires(A&& a) { operator co_await(static_cast<A&&>(a)); };

/// The awaiter that `co_await` of an expression of type A&& uses, in a coroutine without
/// await_transform.
template <class A>
struct awaiter {
  using type = A&&;
};
template <class A>
  requires has_member_co_await<A>
struct awaiter<A> {
  using type = decltype(std::declval<A>().operator co_await());
};
template <class A>
  requires(!has_member_co_await<A> && has_free_co_await<A>)
struct awaiter<A> {
  using type = decltype(operator co_await(std::declval<A>()));
};
template <class A>
using awaiter_t = typename awaiter<A>::type;

template <class A>
concept awaitable = requires(std::add_lvalue_reference_t<awaiter_t<A>> w) {
  { w.await_ready() } -> std::convertible_to<bool>;
  w.await_resume();
};

}  // namespace impl::await

/// What `co_await` of an A (an expression of type A&&: A& for an lvalue) gives.
template <class A>
using await_result_t = decltype(std::declval<std::add_lvalue_reference_t<impl::await::awaiter_t<A>>>().await_resume());

namespace impl::await {

/// What a factory returns, called with a std::stop_token if it takes one.
template <class F>
struct factory_result {};
template <class F>
  requires std::invocable<F, std::stop_token>
struct factory_result<F> {
  using type = std::invoke_result_t<F, std::stop_token>;
  static constexpr bool k_takes_stop = true;
};
template <class F>
  requires(!std::invocable<F, std::stop_token> && std::invocable<F>)
struct factory_result<F> {
  using type = std::invoke_result_t<F>;
  static constexpr bool k_takes_stop = false;
};

template <class F>
concept factory = !awaitable<F> && requires { typename factory_result<F>::type; } &&
                  awaitable<typename factory_result<F>::type>;

/// Whether the coroutine co_awaits an object of type A (A&: an lvalue) as an rvalue: when A
/// has an operator co_await (which may want one). Else it awaits the object as an lvalue (an
/// awaiter is used as an lvalue anyway): g++ 12 would copy an awaiter named by an xvalue or
/// by a function call, which the library's immovable awaiters do not allow, so the operand is
/// always a named reference or a cast of one.
template <class A>
inline constexpr bool k_await_rvalue = !std::is_lvalue_reference_v<A> && (has_member_co_await<A> || has_free_co_await<A>);

/// The three ways the operation holds what it awaits (see the top of this header): object()
/// is what the coroutine awaits (k_rvalue: as an rvalue); a factory builds it in the coroutine.
template <class A>
struct owned {
  using result_type = await_result_t<A>;
  static constexpr bool k_factory = false;
  static constexpr bool k_takes_stop = false;
  static constexpr bool k_rvalue = k_await_rvalue<A>;
  A a;
  A& object() noexcept { return a; }
};
template <class A>  // A: T& for an lvalue, T for an immovable rvalue
struct in_place {
  using result_type = await_result_t<A>;
  static constexpr bool k_factory = false;
  static constexpr bool k_takes_stop = false;
  static constexpr bool k_rvalue = k_await_rvalue<A>;
  std::remove_reference_t<A>* p;
  std::remove_reference_t<A>& object() const noexcept { return *p; }
};
template <class F>
struct made {
  using awaitable_type = typename factory_result<F>::type;
  using result_type = await_result_t<awaitable_type>;
  static constexpr bool k_factory = true;
  static constexpr bool k_takes_stop = factory_result<F>::k_takes_stop;
  static constexpr bool k_rvalue = k_await_rvalue<awaitable_type>;
  F f;
  awaitable_type make(std::stop_token stop) {
    if constexpr (k_takes_stop) {
      return std::invoke(std::move(f), std::move(stop));
    } else {
      return std::invoke(std::move(f));
    }
  }
};

/// Tokens whose operation is started and awaited within the co_await expression that names
/// it: asio::use_awaitable, also bound or wrapped in redirect_error or as_tuple.
template <class Token>
struct awaited_at_once : std::false_type {};
#if defined(ASIO_HAS_CO_AWAIT)
template <class Executor>
struct awaited_at_once<::asio::use_awaitable_t<Executor>> : std::true_type {};
#endif
template <class T, class Executor>
struct awaited_at_once<::asio::executor_binder<T, Executor>> : awaited_at_once<T> {};
template <class T, class Allocator>
struct awaited_at_once<::asio::allocator_binder<T, Allocator>> : awaited_at_once<T> {};
template <class T, class Slot>
struct awaited_at_once<::asio::cancellation_slot_binder<T, Slot>> : awaited_at_once<T> {};
template <class T>
struct awaited_at_once<::asio::redirect_error_t<T>> : awaited_at_once<T> {};
template <class T>
struct awaited_at_once<::asio::experimental::as_tuple_t<T>> : awaited_at_once<T> {};

/// The error_code form of what the awaitable threw (see the top of this header).
inline std::error_code error_code_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error& se) {
    if (se.code() == mtp::make_error_code(errc::cancelled)) {
      return ::asio::error::make_error_code(::asio::error::operation_aborted);
    }
    return se.code();
  } catch (...) {
    return mtp::make_error_code(errc::handler_failed);
  }
}

/// The cancellation slot's handler: terminal and partial cancellation request stop.
struct stopper {
  std::stop_source stop;
  void operator()(::asio::cancellation_type type) noexcept {
    constexpr auto prompt = ::asio::cancellation_type::terminal | ::asio::cancellation_type::partial;
    if ((type & prompt) != ::asio::cancellation_type::none) stop.request_stop();
  }
};

template <class Handler, class T, bool Throwing>
class promise;

/// The operation's coroutine: created suspended, given the handler, then resumed; it frees
/// itself (its frame) in the completion it posts, or when that completion is destroyed unrun.
template <class Handler, class T, bool Throwing>
struct task {
  using promise_type = promise<Handler, T, Throwing>;
  std::coroutine_handle<promise_type> handle;
};

/// What co_return hands over: the value (T not void) or nothing.
template <class T>
class result_base {
 public:
  using value_type = send_value_t<T>;  // the completion's value argument

  template <class U>
  void return_value(U&& u) {
    value_.emplace(std::forward<U>(u));
  }

 protected:
  value_type take_value() {
    if (!value_) return value_type{};
    return value_type(std::move(*value_));
  }

 private:
  std::optional<T> value_;
};
template <>
class result_base<void> {
 public:
  void return_void() noexcept {}
};

template <class Handler, class T, bool Throwing>
class promise : public result_base<T> {
 public:
  using executor_type = ::asio::associated_executor_t<Handler, ::asio::system_executor>;
  using work_type = std::decay_t<decltype(::asio::prefer(std::declval<const executor_type&>(),
                                                         ::asio::execution::outstanding_work.tracked))>;
  using slot_type = ::asio::associated_cancellation_slot_t<Handler>;
  using allocator_type = ::asio::associated_allocator_t<Handler>;
  using handle_type = std::coroutine_handle<promise>;

  task<Handler, T, Throwing> get_return_object() noexcept { return {handle_type::from_promise(*this)}; }
  std::suspend_always initial_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { error_ = std::current_exception(); }

  struct final_awaiter {
    [[nodiscard]] bool await_ready() const noexcept { return false; }
    void await_suspend(handle_type h) noexcept { h.promise().post_completion(h); }
    void await_resume() const noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }

  /// The initiating call's part, while the coroutine waits at its start: takes the handler and
  /// the outstanding work, and connects the handler's slot to `stop` when it has a state (a
  /// factory taking a std::stop_token, and a connected slot).
  template <class H>
  void start(H&& h, std::stop_source stop) {
    handler_.emplace(std::forward<H>(h));
    work_.emplace(::asio::prefer(::asio::get_associated_executor(*handler_, ::asio::system_executor()),
                                 ::asio::execution::outstanding_work.tracked));
    slot_ = ::asio::get_associated_cancellation_slot(*handler_);
    if (stop.stop_possible() && slot_.is_connected()) slot_.template emplace<stopper>(stopper{std::move(stop)});
  }

 private:
  /// Runs the handler on its executor and frees the coroutine first (as Asio asks); frees it
  /// unrun if the executor is destroyed with the completion still queued.
  class completer {
   public:
    explicit completer(handle_type h) noexcept : h_(h) {}
    completer(completer&& other) noexcept : h_(std::exchange(other.h_, {})) {}
    completer& operator=(completer&&) = delete;
    completer(const completer&) = delete;
    completer& operator=(const completer&) = delete;
    ~completer() {
      if (h_) {
        h_.promise().wait_posted();
        h_.promise().disconnect();
        h_.destroy();
      }
    }
    void operator()() {
      const handle_type h = std::exchange(h_, {});
      promise& p = h.promise();
      p.wait_posted();
      p.disconnect();
      Handler handler(std::move(*p.handler_));
      if constexpr (std::is_void_v<T>) {
        first_type first = p.first_arg();
        h.destroy();  // also lets go of the outstanding work: this function is still queued work
        std::move(handler)(std::move(first));
      } else {
        first_type first = p.first_arg();
        typename result_base<T>::value_type value = p.take_value();
        h.destroy();
        std::move(handler)(std::move(first), std::move(value));
      }
    }

   private:
    handle_type h_;
  };

  using first_type = std::conditional_t<Throwing, std::exception_ptr, std::error_code>;

  first_type first_arg() const {
    if (!error_) return first_type{};
    if constexpr (Throwing) {
      return error_;
    } else {
      return error_code_of(error_);
    }
  }
  void disconnect() noexcept {
    if (slot_.is_connected()) slot_.clear();
  }

  /// The final suspension: posts the completion, then says so. The completion waits for
  /// that before it touches the frame: the posting thread may still be inside asio::post
  /// (waking the context's thread) when the completion runs, and nothing may free the frame,
  /// the work it holds or the context before it is out.
  void post_completion(handle_type h) noexcept {
    ::asio::post(*work_, ::asio::bind_allocator(::asio::get_associated_allocator(*handler_), completer(h)));
    posted_.store(true, std::memory_order_release);  // the last touch of the frame on this side
  }
  void wait_posted() const noexcept {
    // acquire: pairs with the release above.
    while (!posted_.load(std::memory_order_acquire)) std::this_thread::yield();
  }

  std::optional<Handler> handler_;
  std::optional<work_type> work_;
  slot_type slot_;
  std::exception_ptr error_;
  std::atomic<bool> posted_{false};
};

/// The coroutine's body: awaits what the source holds (built here, for a factory) and hands
/// the outcome to the promise (co_return, also of a void expression, or unhandled_exception).
template <class Handler, class T, bool Throwing, class Source>
task<Handler, T, Throwing> run(Source src, std::stop_token stop) {
  if constexpr (Source::k_factory) {
    // Named, not a temporary inside the co_await (README, "Known toolchain issues").
    auto aw = src.make(std::move(stop));
    if constexpr (Source::k_rvalue) {
      co_return co_await static_cast<decltype(aw)&&>(aw);
    } else {
      co_return co_await aw;
    }
  } else {
    auto& x = src.object();
    if constexpr (Source::k_rvalue) {
      co_return co_await static_cast<std::remove_reference_t<decltype(x)>&&>(x);
    } else {
      co_return co_await x;
    }
  }
}

template <class T, bool Throwing>
struct initiate {
  template <class Handler, class Source>
  void operator()(Handler&& handler, Source src) const {
    using handler_type = std::decay_t<Handler>;
    std::stop_source stop(std::nostopstate);
    if constexpr (Source::k_takes_stop) {
      if (::asio::get_associated_cancellation_slot(handler).is_connected()) stop = std::stop_source();
    }
    const std::stop_token token = stop.get_token();
    const auto co = run<handler_type, T, Throwing>(std::move(src), token);
    try {
      co.handle.promise().start(std::forward<Handler>(handler), std::move(stop));
    } catch (...) {
      co.handle.destroy();
      throw;
    }
    co.handle.resume();
  }
};

}  // namespace impl::await

/// Awaits `a` (an awaitable, or a factory returning one) as an Asio asynchronous operation:
/// completes with send_signature<T>, or throwing_send_signature<T> for a throwing token
/// (is_throwing_token), T being what co_await of the awaitable gives, on the handler's
/// executor. Who owns the awaitable, cancellation and lifetimes: see the top of this header.
template <class A, class Token>
  requires impl::await::awaitable<A> || impl::await::factory<std::decay_t<A>>
auto async_await(A&& a, Token&& token) {
  constexpr bool throwing = is_throwing_token_v<Token>;
  if constexpr (impl::await::factory<std::decay_t<A>>) {
    using source = impl::await::made<std::decay_t<A>>;
    using T = std::remove_cvref_t<typename source::result_type>;
    using signature = std::conditional_t<throwing, throwing_send_signature<T>, send_signature<T>>;
    return ::asio::async_initiate<Token, signature>(impl::await::initiate<T, throwing>{}, token,
                                                    source{std::forward<A>(a)});
  } else if constexpr (!std::is_lvalue_reference_v<A> && std::is_constructible_v<std::remove_cvref_t<A>, A&&>) {
    using source = impl::await::owned<std::remove_cvref_t<A>>;
    using T = std::remove_cvref_t<typename source::result_type>;
    using signature = std::conditional_t<throwing, throwing_send_signature<T>, send_signature<T>>;
    return ::asio::async_initiate<Token, signature>(impl::await::initiate<T, throwing>{}, token,
                                                    source{std::forward<A>(a)});
  } else {
    static_assert(std::is_lvalue_reference_v<A> || impl::await::awaited_at_once<std::decay_t<Token>>::value,
                  "mtp::asio::async_await: an immovable temporary awaitable (mtp::async, ...) is awaited in "
                  "place, which only asio::use_awaitable inside the same co_await expression allows; with "
                  "this token pass a factory ([&] { return mtp::async(...); }) or an lvalue that outlives "
                  "the operation");
    using source = impl::await::in_place<A>;
    using T = std::remove_cvref_t<typename source::result_type>;
    using signature = std::conditional_t<throwing, throwing_send_signature<T>, send_signature<T>>;
    return ::asio::async_initiate<Token, signature>(impl::await::initiate<T, throwing>{}, token,
                                                    source{std::addressof(a)});
  }
}

}  // namespace mtp::asio
