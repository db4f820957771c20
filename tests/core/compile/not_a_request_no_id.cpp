// SPDX-License-Identifier: MIT
// Must not compile, saying what the type lacks.
#include <mtp/core/mock_pool.hpp>
struct ping {
  int target;
  using response_type = int;
};
struct item {
  explicit item(mtp::id_t) {}
  int handle(const ping&) { return 1; }
};
int main() {
  mtp::mock_pool<item> pool;
  (void)pool.send(ping{1});
}
