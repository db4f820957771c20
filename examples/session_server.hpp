// SPDX-License-Identifier: MIT
// A line-based TCP session server on Asio where every connection is a pool item.
//
// Each connection's state (a running total and a command count) lives in a pool item that is
// created when the connection is accepted and removed when it closes: plain members, no lock.
// The I/O threads only read lines, parse them and co_await the pool (mtp::asio::async_send
// with asio::use_awaitable); the reply is written by the same connection coroutine, so
// replies come back in command order. They never wait for a worker: the connection coroutine
// co_awaits the session's creation (mtp::asio::async_create) and starts its removal without
// waiting for it (thread_pool::remove_async), so a busy worker holds back only its own
// sessions, never the I/O thread that serves the others.
//
// Protocol (one command per line, '\n' or "\r\n"; one reply line per command):
//   add N    ->  ok <total>        (N a signed 64-bit integer; overflow -> error overflow)
//   get      ->  value <total>
//   quit     ->  bye               (then the server closes the connection)
//   other    ->  error <reason>    (the connection stays open)
// A line longer than max_line bytes gets "error line too long" and the connection is closed.
//
// Idle sessions (options::idle_timeout, default 30 s; 0: never): a connection that sends no
// command for that long is closed by the server. The limit is the item's own: each session
// owns an mtp::timeout, made in its constructor and re-armed by every command. When it fires,
// the session marks itself expired (a command still in flight gets "error session expired")
// and calls the callback the server gave it at creation. The item lives on a worker and never
// touches the socket: the callback only posts the close to the connection's I/O thread, where
// the connection coroutine runs too, so the close never races with its reads and writes. The
// pending read then fails, and the coroutine removes the session as for any closed
// connection. The posted close holds the socket weakly: a connection that ended meanwhile is
// left alone.
//
// Threads: each I/O thread runs an io_context of its own, and each connection lives on one of
// them (dealt in turn as they are accepted). A connection's coroutine and its idle close thus
// run on one thread, one after another, without a strand; and the pool's completions for a
// context's own executor travel in bulk (one posted drain for all those that finished
// meanwhile), where a strand would take one post per completion. The price: a connection is
// served only by its own thread, so a thread that is busy, or waits for a CPU, holds up its
// connections while another thread may have nothing to do (with one shared context, either
// thread could serve any connection).
//
// design::mutex_in_io_threads is the conventional design kept for comparison (benchmarks):
// the same sessions in one map behind a mutex, run directly on the I/O threads (no idle limit).
#pragma once

#include <mtp/asio.hpp>
#include <mtp/mtp.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace session_server {

// ---- The session: a pool item ---------------------------------------------------------------

struct add_cmd {
  mtp::id_t id;
  std::int64_t amount;
  using response_type = std::int64_t;
};
struct get_cmd {
  mtp::id_t id;
  using response_type = std::int64_t;
};
struct expire {  // from the session's own timeout: no command for the idle limit
  mtp::id_t id;
  using response_type = void;
};

/// How long a session may stay idle, and what it does then (design::pool).
struct idle_policy {
  std::chrono::milliseconds after{0};  // 0: never
  std::function<void()> on_idle;       // called once, on the session's worker
};

/// Called on the session's worker as the session is built (tests hold the worker with it).
using open_hook = std::function<void(mtp::id_t)>;

class session {
 public:
  explicit session(mtp::id_t id) : id_(id) {}  // no idle limit
  /// On the session's worker (mtp::asio::async_create): arms the idle timeout.
  session(mtp::id_t id, idle_policy idle, const open_hook& on_open = {}) : id_(id), idle_(std::move(idle)) {
    if (on_open) on_open(id);
    if (idle_.after.count() > 0) {
      timeout_ = mtp::this_pool<session>().make_timeout(expire{id});
      timeout_.rearm(idle_.after);
    }
  }
  std::int64_t handle(const add_cmd& c) {
    touch();
    std::int64_t next = 0;
    if (__builtin_add_overflow(total_, c.amount, &next)) throw std::overflow_error("overflow");
    return total_ = next;
  }
  std::int64_t handle(const get_cmd&) {
    touch();
    return total_;
  }
  void handle(const expire&) {
    expired_ = true;  // the connection is being closed: no command is served any more
    if (idle_.on_idle) idle_.on_idle();
  }
  [[nodiscard]] mtp::id_t id() const noexcept { return id_; }

 private:
  void touch() {
    if (expired_) throw std::runtime_error("session expired");
    ++commands_;
    if (idle_.after.count() > 0) timeout_.rearm(idle_.after);  // pushes the idle deadline back
  }

  mtp::id_t id_;
  std::int64_t total_ = 0;       // plain state: only this item's worker touches it
  std::uint64_t commands_ = 0;
  idle_policy idle_;
  mtp::timeout timeout_;         // armed while idle_.after > 0 and not expired
  bool expired_ = false;
};

// ---- Parsing (on the I/O thread) ------------------------------------------------------------

struct quit_cmd {};
struct bad_cmd {
  std::string reason;
};
using command = std::variant<add_cmd, get_cmd, quit_cmd, bad_cmd>;

inline command parse(std::string_view line, mtp::id_t id) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line == "get") return get_cmd{id};
  if (line == "quit") return quit_cmd{};
  if (line.starts_with("add ")) {
    const std::string_view arg = line.substr(4);
    std::int64_t n = 0;
    const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), n);
    if (ec == std::errc() && end == arg.data() + arg.size() && !arg.empty()) return add_cmd{id, n};
    return bad_cmd{"bad number"};
  }
  return bad_cmd{"unknown command"};
}

// ---- The server -----------------------------------------------------------------------------

enum class design { pool, mutex_in_io_threads };

struct options {
  unsigned short port = 0;       // 0: an ephemeral port (see server::port())
  std::size_t io_threads = 1;     // at least 1 (0 counts as 1)
  std::size_t workers = 0;       // pool workers; 0: the pool's default
  design mode = design::pool;
  std::size_t max_line = 1024;
  std::chrono::milliseconds idle_timeout{30'000};  // design::pool: close a connection idle this long; 0: never
  open_hook on_open{};           // design::pool: called on the worker as each session is built
};

class server {
 public:
  explicit server(options o) : options_(o), acceptor_(std::in_place, context(0)) {
    if (options_.mode == design::pool) {
      mtp::pool_options po;
      po.workers = options_.workers;
      if (options_.workers != 0) po.placement = mtp::plan_placement("none", options_.workers);
      pool_ = std::make_unique<mtp::thread_pool<session>>(po);
    }
    const asio::ip::tcp::endpoint where(asio::ip::make_address("127.0.0.1"), options_.port);
    acceptor_->open(where.protocol());
    acceptor_->set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor_->bind(where);
    acceptor_->listen();
  }
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  ~server() {
    stop();
    // The accept that stop() left pending (on context 0) holds a socket of the context it was
    // accepting for: the acceptor goes first, then the contexts from the first to the last,
    // so that each handler left unrun is destroyed while the context of its socket still is.
    acceptor_.reset();
    for (auto& io : io_) io.reset();
  }

  /// The port it listens on (127.0.0.1).
  [[nodiscard]] unsigned short port() const { return acceptor_->local_endpoint().port(); }

  /// Starts accepting and runs the I/O threads in the background.
  void start() {
    asio::co_spawn(context(0), accept_loop(), asio::detached);
    for (auto& io : io_) {
      threads_.emplace_back([&io] {
        const auto busy = asio::make_work_guard(*io);  // runs until stop(), even with no connection
        io->run();
      });
    }
  }

  /// Stops: the pool first (every request in flight completes and its completion is queued on
  /// its connection's io_context), then the I/O threads; open connections are closed.
  void stop() {
    if (stopped_.exchange(true)) return;
    if (pool_) pool_->shutdown();
    for (auto& io : io_) io->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  /// Sessions alive (pool items, or map entries).
  [[nodiscard]] std::size_t sessions() const {
    if (pool_) {
      std::size_t n = 0;
      for (const auto& w : pool_->stats().workers) n += w.items;
      return n;
    }
    std::lock_guard lock(m_);
    return map_.size();
  }
  [[nodiscard]] std::uint64_t connections_accepted() const noexcept { return accepted_.load(); }
  /// Connections closed because their session was idle for options::idle_timeout.
  [[nodiscard]] std::uint64_t idle_closes() const noexcept { return idle_closes_.load(); }

 private:
  // One context per I/O thread, made before the threads start and kept until the server ends.
  static std::vector<std::unique_ptr<asio::io_context>> make_contexts(std::size_t n) {
    std::vector<std::unique_ptr<asio::io_context>> contexts;
    for (std::size_t i = 0; i < std::max<std::size_t>(n, 1); ++i) {
      contexts.push_back(std::make_unique<asio::io_context>(1));  // 1: one thread runs it
    }
    return contexts;
  }
  asio::io_context& context(std::size_t i) { return *io_[i % io_.size()]; }

  asio::awaitable<void> accept_loop() {
    for (std::size_t turn = 0;; ++turn) {
      asio::ip::tcp::socket socket(context(turn));
      try {
        // The connection's context: its coroutine, and an idle close, run on that one thread.
        socket = co_await acceptor_->async_accept(context(turn).get_executor(), asio::use_awaitable);
      } catch (const std::system_error& e) {
        if (e.code() == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
        continue;  // e.g. out of descriptors: keep serving the others
      }
      accepted_.fetch_add(1);
      const asio::any_io_executor where = socket.get_executor();
      asio::co_spawn(where, serve(std::move(socket), next_id_.fetch_add(1)), asio::detached);
    }
  }

  asio::awaitable<void> serve(asio::ip::tcp::socket accepted, mtp::id_t id) {
    // Shared with the session's idle close, which may still be queued once this has ended.
    const auto connection = std::make_shared<asio::ip::tcp::socket>(std::move(accepted));
    asio::ip::tcp::socket& socket = *connection;
    if (!co_await open_session(id, connection)) co_return;  // the server is stopping
    std::string buffer;
    try {
      for (;;) {
        std::size_t n = 0;
        bool too_long = false;
        try {
          n = co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer, options_.max_line), '\n',
                                              asio::use_awaitable);
        } catch (const std::system_error& e) {
          if (e.code() != asio::error::not_found) throw;  // eof, reset: the client is gone
          too_long = true;
        }
        if (too_long) {
          static constexpr std::string_view reply = "error line too long\n";
          co_await asio::async_write(socket, asio::buffer(reply), asio::use_awaitable);
          break;
        }
        const command cmd = parse(std::string_view(buffer.data(), n - 1), id);
        buffer.erase(0, n);
        const std::string reply = co_await execute(cmd);
        co_await asio::async_write(socket, asio::buffer(reply), asio::use_awaitable);
        if (std::holds_alternative<quit_cmd>(cmd)) break;
      }
    } catch (const std::exception&) {
      // The connection failed or the server stops: the session goes away below.
    }
    close_session(id);
  }

  asio::awaitable<std::string> execute(const command& cmd) {
    if (const auto* bad = std::get_if<bad_cmd>(&cmd)) co_return "error " + bad->reason + "\n";
    if (std::holds_alternative<quit_cmd>(cmd)) co_return "bye\n";
    const bool is_add = std::holds_alternative<add_cmd>(cmd);
    std::string prefix = is_add ? "ok " : "value ";
    try {
      std::int64_t v = 0;
      if (pool_) {
        if (is_add) v = co_await mtp::asio::async_send(*pool_, std::get<add_cmd>(cmd), asio::use_awaitable);
        else v = co_await mtp::asio::async_send(*pool_, std::get<get_cmd>(cmd), asio::use_awaitable);
      } else {
        std::lock_guard lock(m_);
        session& s = map_.at(is_add ? std::get<add_cmd>(cmd).id : std::get<get_cmd>(cmd).id);
        v = is_add ? s.handle(std::get<add_cmd>(cmd)) : s.handle(std::get<get_cmd>(cmd));
      }
      co_return prefix + std::to_string(v) + "\n";
    } catch (const std::exception& e) {
      prefix = std::string("error ") + e.what() + "\n";
    }
    co_return prefix;
  }

  // The session is built on its worker while this coroutine waits (the I/O thread serves
  // other connections meanwhile); it is ready, its idle timeout armed, before the first command.
  // False when it could not be created (the server is stopping).
  asio::awaitable<bool> open_session(mtp::id_t id, const std::shared_ptr<asio::ip::tcp::socket>& connection) {
    if (pool_) {
      auto create = mtp::make_create(id, idle_policy{options_.idle_timeout, idle_close(connection)}, options_.on_open);
      std::error_code ec;
      co_await mtp::asio::async_create(*pool_, std::move(create), asio::redirect_error(asio::use_awaitable, ec));
      co_return !ec;
    }
    std::lock_guard lock(m_);
    map_.emplace(id, session(id));
    co_return true;
  }
  // What an expired session calls, on its worker: post the close to the connection's thread.
  std::function<void()> idle_close(const std::shared_ptr<asio::ip::tcp::socket>& connection) {
    return [this, where = connection->get_executor(), weak = std::weak_ptr(connection)] {
      asio::post(where, [this, weak] {
        const auto socket = weak.lock();
        if (!socket || !socket->is_open()) return;  // the connection ended meanwhile
        std::error_code ignored;
        socket->close(ignored);  // the coroutine's pending read fails; it removes the session
        idle_closes_.fetch_add(1);
      });
    };
  }

  // Fire-and-forget: nothing here depends on the outcome (the session exists; pool_stopped
  // means the pool destroys its items itself), and per-sender order already puts the removal
  // after every command this connection sent. Waiting would only keep the coroutine and its
  // socket alive for a round trip. The empty callback runs on the worker (or here, if the
  // pool has stopped); no Asio completion is needed.
  void close_session(mtp::id_t id) noexcept {
    if (pool_) {
      try {
        pool_->remove_async(id, [](mtp::result<void>&&) noexcept {});
      } catch (const std::exception&) {
        // no memory for the request: the pool destroys the session when it shuts down
      }
    } else {
      std::lock_guard lock(m_);
      map_.erase(id);
    }
  }

  options options_;
  std::unique_ptr<mtp::thread_pool<session>> pool_;  // outlives the io_context's handlers
  mutable std::mutex m_;                              // the conventional design only
  std::unordered_map<mtp::id_t, session> map_;
  std::vector<std::unique_ptr<asio::io_context>> io_ = make_contexts(options_.io_threads);  // one per I/O thread
  std::optional<asio::ip::tcp::acceptor> acceptor_;  // on context 0; reset before the contexts
  std::vector<std::thread> threads_;
  std::atomic<mtp::id_t> next_id_{1};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> idle_closes_{0};
  std::atomic<bool> stopped_{false};
};

}  // namespace session_server
