// SPDX-License-Identifier: MIT
// Must not compile: a request holding a std::string with no cereal serialize function cannot
// cross ranks. The test passes when the build fails with the static_assert's message.
#include <string>

#include <mtp/mpi/sharded_pool.hpp>

struct opaque {
  mtp::id_t id;
  std::string text;  // not trivially copyable, and no serialize()
  using response_type = int;
};
struct item {
  explicit item(mtp::id_t) {}
  int handle(const opaque&) { return 0; }
};

int main(int argc, char** argv) {
  mtp::mpi::environment env(argc, argv);
  mtp::mpi::sharded_pool<item> pool;
  return pool.send(opaque{1, "x"});
}
