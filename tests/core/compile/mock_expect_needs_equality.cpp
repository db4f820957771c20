// SPDX-License-Identifier: MIT
// Must not compile: the mock could not check that the request matches the expectation.
#include <mtp/core/mock_pool.hpp>
struct opaque {};
struct ping {
  mtp::id_t id;
  opaque payload;
  using response_type = int;
};
struct item {
  explicit item(mtp::id_t) {}
  int handle(const ping&) { return 1; }
};
int main() {
  mtp::mock_pool<item> pool;
  pool.expect(ping{1, {}}, 5);
}
