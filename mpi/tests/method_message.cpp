// SPDX-License-Identifier: MIT
// Must not compile: a method message holds a member function pointer, an address that differs
// between processes, so a sharded pool refuses to send it. The test passes when the build
// fails with the static_assert's message, which points to pool.call<&Item::member>.
#include <mtp/mpi/sharded_pool.hpp>

struct item {
  explicit item(mtp::id_t) {}
  int twice(int x) { return 2 * x; }
};

int main(int argc, char** argv) {
  mtp::mpi::environment env(argc, argv);
  mtp::mpi::sharded_pool<item> pool;
  return pool.send(mtp::make_call(1, &item::twice, 4));
}
