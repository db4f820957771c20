// SPDX-License-Identifier: MIT
// Must not compile: the real pool could not construct this item either.
#include <mtp/core/mock_pool.hpp>
#include <string>
struct item {
  item(mtp::id_t, int) {}
};
int main() {
  mtp::mock_pool<item> pool;
  pool.create(1, std::string("not an int"));
}
