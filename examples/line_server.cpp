// SPDX-License-Identifier: MIT
// A TCP line server on Asio C++20 coroutines with one pool item per connection.
//
// The pattern: the I/O thread accepts a connection, gives it an id and creates its item
// (pool.create); the connection's coroutine reads lines, sends each one to the item with
// co_await mtp::asio::async_send and writes the reply back; when the connection closes the
// item is removed (pool.remove). Everything the connection knows (a line counter, an inbox)
// lives in its item, on one worker thread: plain members, no lock. Items reach each other
// through mtp::this_pool<connection>() without going back to the I/O thread.
//
// Protocol (one reply line per line; the server greets with "welcome <id>"):
//   /tell <id> <text>  ->  sent to <id>        (the other connection gets "[<from>: <text>]")
//   /inbox             ->  inbox: [...] ...    or "inbox empty"
//   anything else      ->  #<n> <line>         (n counts this connection's lines)
// Notes waiting in the inbox are appended to the next reply. A note to an unknown id comes
// back as "[no connection <id>]".
//
//   example_line_server [port]     serve on 127.0.0.1 (port 0: ephemeral) until SIGINT/SIGTERM
//   example_line_server --self-test  two loopback clients check the replies; exit 0 if right
#include <mtp/asio.hpp>
#include <mtp/mtp.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read_until.hpp>
#include <asio/signal_set.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace {

using asio::ip::tcp;

struct line {  // one line from the client; the reply goes back to it
  mtp::id_t id;
  std::string text;
  using response_type = std::string;
};
struct note {  // from one connection's item to another's (from 0: the server)
  mtp::id_t id;
  mtp::id_t from;
  std::string text;
  using response_type = void;
};

class connection {  // a pool item: built, used and destroyed on one worker thread
 public:
  explicit connection(mtp::id_t id) : id_(id) {}

  std::string handle(const line& l) {
    ++lines_;
    std::string reply;
    if (l.text == "/inbox") reply = inbox_.empty() ? "inbox empty" : "inbox:";
    else if (l.text.starts_with("/tell ")) reply = tell(std::string_view(l.text).substr(6));
    else reply = "#" + std::to_string(lines_) + " " + l.text;
    for (const std::string& n : inbox_) reply += " " + n;
    inbox_.clear();
    return reply;
  }
  void handle(const note& n) {
    inbox_.push_back(n.from == 0 ? "[" + n.text + "]" : "[" + std::to_string(n.from) + ": " + n.text + "]");
  }

 private:
  std::string tell(std::string_view args) {  // "<id> <text>"
    mtp::id_t to = 0;
    const auto [end, ec] = std::from_chars(args.data(), args.data() + args.size(), to);
    if (ec != std::errc() || end == args.data() + args.size() || *end != ' ') return "error usage: /tell <id> <text>";
    // To a sibling item, without blocking this worker. send_async rather than post only to
    // learn of an unknown id: its callback runs on a worker of this pool, so it posts back.
    mtp::this_pool<connection>().send_async(
        note{to, id_, std::string(end + 1, args.data() + args.size())},
        [from = id_, to](const mtp::result<void>& r) {
          if (r.has_error() && r.error().code == mtp::errc::unknown_id) {
            (void)mtp::this_pool<connection>().post(note{from, 0, "no connection " + std::to_string(to)});
          }
        });
    return "sent to " + std::to_string(to);
  }

  mtp::id_t id_;
  std::uint64_t lines_ = 0;          // plain state: only this item's worker touches it
  std::vector<std::string> inbox_;
};

using pool_type = mtp::thread_pool<connection>;

asio::awaitable<void> serve(tcp::socket socket, pool_type& pool, mtp::id_t id) {
  try {
    pool.create(id);  // a short blocking round trip; the item is ready before the first line
    const std::string welcome = "welcome " + std::to_string(id) + "\n";
    co_await asio::async_write(socket, asio::buffer(welcome), asio::use_awaitable);
    std::string buffer;
    for (;;) {  // a line longer than 4096 bytes ends the connection (asio::error::not_found)
      const std::size_t n =
          co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer, 4096), '\n', asio::use_awaitable);
      std::string text = buffer.substr(0, n - 1);
      buffer.erase(0, n);
      if (!text.empty() && text.back() == '\r') text.pop_back();
      // Named before co_await: see README, "Known toolchain issues" (g++ 12 and temporaries).
      line msg{id, std::move(text)};
      std::string reply = co_await mtp::asio::async_send(pool, std::move(msg), asio::use_awaitable);
      reply += '\n';
      co_await asio::async_write(socket, asio::buffer(reply), asio::use_awaitable);
    }
  } catch (const std::exception&) {
    // End of stream, a reset, a line too long, or the pool stopping: the connection is over.
  }
  try {
    (void)pool.remove(id);  // destroys the item on its worker, after its queued messages
  } catch (const std::exception&) {
    // pool_stopped: the pool destroys its items itself
  }
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, pool_type& pool) {
  for (mtp::id_t next_id = 1;; ++next_id) {
    tcp::socket socket(acceptor.get_executor());
    try {
      socket = co_await acceptor.async_accept(asio::use_awaitable);
    } catch (const std::system_error&) {
      co_return;  // the acceptor was closed (kept short: a real server retries on EMFILE)
    }
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), pool, next_id), asio::detached);
  }
}

struct client {  // a blocking test client whose every read has a deadline
  asio::io_context io;
  tcp::socket socket{io};
  std::string buffer;

  explicit client(unsigned short port) { socket.connect({asio::ip::address_v4::loopback(), port}); }
  std::string read_line() {
    std::optional<std::error_code> ec;  // set once the read completes
    std::size_t n = 0;
    asio::async_read_until(socket, asio::dynamic_buffer(buffer), '\n', [&](std::error_code e, std::size_t k) {
      ec = e;
      n = k;
    });
    io.restart();
    io.run_for(std::chrono::seconds(3));  // returns as soon as the read completes
    if (!ec) {
      socket.close();
      io.run();  // lets the aborted read finish
      throw std::runtime_error("no reply within 3 s");
    }
    if (*ec) throw std::system_error(*ec);
    std::string l = buffer.substr(0, n - 1);
    buffer.erase(0, n);
    return l;
  }
  std::string ask(const std::string& text) {
    asio::write(socket, asio::buffer(text + "\n"));
    return read_line();
  }
};

int failures = 0;
void check(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "%s\n", what.c_str());
  ++failures;
}
void expect(const std::string& got, const std::string& want) {
  check(got == want, "got '" + got + "', expected '" + want + "'");
}

void client_script(unsigned short port) {
  client a(port);
  client b(port);
  const std::string ida = a.read_line().substr(8);  // "welcome <id>"
  const std::string idb = b.read_line().substr(8);
  expect(a.ask("hello"), "#1 hello");
  expect(a.ask("/tell " + idb + " hi from a"), "sent to " + idb);
  // B's next line is sent after A's reply, so it reaches B's item after the note.
  expect(b.ask("ping"), "#1 ping [" + ida + ": hi from a]");
  expect(b.ask("/inbox"), "inbox empty");
  expect(b.ask("/tell 99 anyone?"), "sent to 99");
  // The bounce takes two hops between workers, unordered with B's lines: poll for it.
  std::string inbox = b.ask("/inbox");
  for (int i = 0; i < 200 && inbox == "inbox empty"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    inbox = b.ask("/inbox");
  }
  expect(inbox, "inbox: [no connection 99]");
  expect(a.ask("/tell x"), "error usage: /tell <id> <text>");
  expect(a.ask("bye"), "#4 bye");
}

int self_test() {
  mtp::pool_options po;
  po.workers = 2;
  po.placement = mtp::plan_placement("none", 2);
  pool_type pool(po);
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
  asio::co_spawn(io, accept_loop(acceptor, pool), asio::detached);
  const unsigned short port = acceptor.local_endpoint().port();
  std::thread server([&io] { io.run_for(std::chrono::seconds(30)); });  // returns once out of work
  try {
    client_script(port);
  } catch (const std::exception& e) {
    check(false, std::string("client: ") + e.what());
  }
  asio::post(io, [&acceptor] { acceptor.close(); });  // the clients are gone: connections end too
  server.join();
  check(io.stopped(), "the server did not wind down");
  check(pool.stats().total_items() == 0, "items left after every connection closed");
  pool.shutdown();  // before the io_context goes: completions still in flight are queued there
  std::printf("line_server self-test: %s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "--self-test") return self_test();
  const auto port = static_cast<unsigned short>(argc > 1 ? std::stoi(argv[1]) : 0);
  pool_type pool;  // one pinned worker per core
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), port});
  asio::co_spawn(io, accept_loop(acceptor, pool), asio::detached);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const std::error_code&, int) {
    acceptor.close();
    pool.shutdown();  // first: every request in flight completes and is queued on io
    io.stop();        // then the connections' coroutines are destroyed with io (items with pool)
  });
  std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  io.run();
  return EXIT_SUCCESS;
}
