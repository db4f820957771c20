// SPDX-License-Identifier: MIT
// A pool of sessions answering a request that owns heap memory (a line of text), awaited from
// Asio coroutines.
#pragma once

#include <mtp/asio.hpp>
#include <mtp/mtp.hpp>

#include <asio/awaitable.hpp>
#include <asio/use_awaitable.hpp>

#include <string>
#include <utility>

namespace mtp_snippets {

struct line_msg {
  mtp::id_t id;
  std::string line;
  using response_type = std::string;
};

class session {
 public:
  explicit session(mtp::id_t) {}
  std::string handle(const line_msg& m) { return m.line; }
};

extern mtp::thread_pool<session> pool;
extern mtp::id_t id;
extern std::string line;

// Fragments with scope=coroutine are the body of one of these.
using snippet_coroutine = asio::awaitable<void>;

}  // namespace mtp_snippets
