// SPDX-License-Identifier: MIT
// The session server (session_server.hpp) as a program:
//   example_session_server [port [io_threads [idle_ms]]]
//       listen on 127.0.0.1:port (0: ephemeral), print the port, serve until SIGINT or SIGTERM;
//       a connection with no command for idle_ms (default 30000; 0: never) is closed
//   example_session_server --self-test
//       start on an ephemeral port, run a short client session against it, exit 0 if the
//       replies are right
// Try it: `example_session_server 0`, then `nc 127.0.0.1 <port>` and type `add 5`, `get`, `quit`.
#include "session_server.hpp"

#include <asio/connect.hpp>
#include <asio/read_until.hpp>
#include <asio/signal_set.hpp>
#include <asio/write.hpp>

#include <csignal>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

int self_test() {
  session_server::server srv({.port = 0, .io_threads = 1, .workers = 2});
  srv.start();
  asio::io_context io;
  asio::ip::tcp::socket sock(io);
  sock.connect({asio::ip::make_address("127.0.0.1"), srv.port()});
  const std::vector<std::pair<std::string, std::string>> script{
      {"add 5", "ok 5"}, {"add -2", "ok 3"}, {"get", "value 3"}, {"hello", "error unknown command"},
      {"add x", "error bad number"}, {"add 9223372036854775807", "error overflow"}, {"get", "value 3"},
      {"quit", "bye"}};
  std::string buffer;
  int failures = 0;
  for (const auto& [command, expected] : script) {
    asio::write(sock, asio::buffer(command + "\n"));
    const std::size_t n = asio::read_until(sock, asio::dynamic_buffer(buffer), '\n');
    const std::string reply = buffer.substr(0, n - 1);
    buffer.erase(0, n);
    if (reply != expected) {
      std::fprintf(stderr, "'%s': got '%s', expected '%s'\n", command.c_str(), reply.c_str(), expected.c_str());
      ++failures;
    }
  }
  std::printf("session_server self-test: %s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--self-test") return self_test();
  session_server::options o;
  if (argc > 1) o.port = static_cast<unsigned short>(std::stoi(argv[1]));
  if (argc > 2) o.io_threads = static_cast<std::size_t>(std::stoul(argv[2]));
  if (argc > 3) o.idle_timeout = std::chrono::milliseconds(std::stoll(argv[3]));
  session_server::server srv(o);
  srv.start();
  std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(srv.port()));
  std::fflush(stdout);
  // Serve until SIGINT or SIGTERM, then stop cleanly (sessions are destroyed on their workers).
  asio::io_context signals_io;
  asio::signal_set signals(signals_io, SIGINT, SIGTERM);
  signals.async_wait([](const std::error_code&, int) {});
  signals_io.run();
  srv.stop();
  return EXIT_SUCCESS;
}
