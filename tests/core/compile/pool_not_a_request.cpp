// SPDX-License-Identifier: MIT
// Must not compile, with the library's words for each entry point (not "constraints not
// satisfied"): CASE picks send, post, send_batch or submit_batch.
#include <mtp/mtp.hpp>
#include <vector>
struct ping {
  int target;
  using response_type = int;
};
struct item {
  explicit item(mtp::id_t) {}
  int handle(const ping&) { return 1; }
};
int main() {
  mtp::thread_pool<item> pool;
#if CASE == 1
  (void)pool.send(ping{1});
#elif CASE == 2
  (void)pool.post(ping{1});
#elif CASE == 3
  (void)pool.send_batch(std::vector<ping>{{1}});
#else
  auto b = pool.submit_batch(std::vector<ping>{{1}});
#endif
}
