// SPDX-License-Identifier: MIT
// A tiny consumer of the installed package, built with find_package (CMakeLists.txt here) and
// with pkg-config alone: the pool, the version header and the test header must all work.
#include <mtp/mtp.hpp>
#include <mtp/testing.hpp>

#include <cstdio>
#include <cstring>

static_assert(MTP_VERSION_MAJOR >= 0 && MTP_VERSION_MINOR >= 0 && MTP_VERSION_PATCH >= 0);

struct ping {
  mtp::id_t id;
  using response_type = mtp::id_t;
  friend bool operator==(const ping&, const ping&) = default;
};
struct item {
  explicit item(mtp::id_t id) : id_(id) {}
  mtp::id_t handle(const ping&) const { return id_; }
  mtp::id_t id_;
};

int main() {
  mtp::thread_pool<item> pool({.workers = 2});
  pool.create(7);
  const bool pooled = pool.send(ping{7}) == 7;

  mtp::mock_pool<item> mock;
  mock.on<ping>([](const ping& p) { return p.id; });
  const bool mocked = mock.send(ping{3}) == 3 && mock.requests<ping>().size() == 1;
  mock.verify();

  std::printf("messaging_thread_pool %s: pool %s, mock %s\n", MTP_VERSION_STRING,
              pooled ? "ok" : "FAILED", mocked ? "ok" : "FAILED");
  return pooled && mocked && std::strlen(MTP_VERSION_STRING) >= 5 ? 0 : 1;
}
