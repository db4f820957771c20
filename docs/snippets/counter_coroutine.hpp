// SPDX-License-Identifier: MIT
// The counter context (counter.hpp) for C++20 coroutines without a framework: a scheduler to
// resume through, and the coroutine type whose body a scope=coroutine fragment is.
#pragma once

#include <mtp/core/awaitable.hpp>

#include <coroutine>

#include "counter.hpp"

namespace mtp_snippets {

// The scheduler a coroutine resumes through: posts the handle to the caller's own loop.
struct loop_scheduler {
  void operator()(std::coroutine_handle<> h) const;
};
inline constexpr loop_scheduler resume_on{};

// A minimal coroutine type: starts at once, frees itself at the end.
struct snippet_coroutine {
  struct promise_type {
    snippet_coroutine get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept {}
  };
};

}  // namespace mtp_snippets
