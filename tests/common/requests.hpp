// SPDX-License-Identifier: MIT
// Requests that the items of many tests handle alike: a hold that keeps a worker inside a
// handler until the test releases it, and the small add, get, touch and fail_now requests.
// Only the requests live here: each item declares its own handlers, and what a handler answers
// (a running total, its id, ...) is the item's own.
#pragma once

#include <string>

#include <mtp/mtp.hpp>

#include "pool_test_util.hpp"

namespace mtp_test {

/// Keeps the worker inside the handler: the handler opens `started`, then waits for `release`
/// (hold_until_released does both). `Response` is what the handler answers once released.
template <class Response>
struct basic_hold {
  mtp::id_t id;
  gate* started;
  gate* release;
  using response_type = Response;
};
/// A hold that answers nothing.
using hold = basic_hold<void>;

/// The body of a hold handler: opens `started`, then waits for `release` (with no bound: the
/// test opens it, through an open_on_exit when an assertion returns early).
template <class Response>
void hold_until_released(const basic_hold<Response>& h) {
  h.started->open();
  h.release->wait();
}

/// Adds `amount` to the item's value and answers the new value.
struct add {
  mtp::id_t id;
  int amount;
  using response_type = int;
};

/// Asks the item for an int: its value, its id, ... as the item decides.
struct get {
  mtp::id_t id;
  using response_type = int;
};

/// Reaches the item and answers nothing.
struct touch {
  mtp::id_t id;
  using response_type = void;
};

/// The handler throws instead of answering.
struct fail_now {
  mtp::id_t id;
  using response_type = int;
};

/// A request and a response that own heap memory: the item answers the text in capitals.
/// Through a coroutine it is named before the co_await (README, "Known toolchain issues").
struct shout {
  mtp::id_t id;
  std::string text;
  using response_type = std::string;
};
inline std::string capitals(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

}  // namespace mtp_test
