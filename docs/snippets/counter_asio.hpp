// SPDX-License-Identifier: MIT
// The counter context (counter.hpp) with Asio: an io_context, and coroutines that are Asio's
// own awaitables.
#pragma once

#include <mtp/asio.hpp>

#include <asio/awaitable.hpp>
#include <asio/bind_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <exception>
#include <future>
#include <system_error>

#include "counter.hpp"

namespace mtp_snippets {

extern asio::io_context io;

// Fragments with scope=coroutine are the body of one of these.
using snippet_coroutine = asio::awaitable<void>;

}  // namespace mtp_snippets
