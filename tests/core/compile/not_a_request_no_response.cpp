// SPDX-License-Identifier: MIT
// Must not compile, saying what the type lacks.
#include <mtp/core/mock_pool.hpp>
#include <vector>
struct ping {
  mtp::id_t id;
};
struct item {
  explicit item(mtp::id_t) {}
  int handle(const ping&) { return 1; }
};
int main() {
  mtp::mock_pool<item> pool;
  (void)pool.post(ping{1});
}
