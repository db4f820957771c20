// SPDX-License-Identifier: MIT
#include <mtp/mtp.hpp>

struct ping {
  mtp::id_t id;
  using response_type = mtp::id_t;
};
struct item {
  item(mtp::id_t id) : id_(id) {}
  mtp::id_t handle(const ping&) const { return id_; }
  mtp::id_t id_;
};

int main() {
  mtp::thread_pool<item> pool({.workers = 2});
  pool.create(7);
  return pool.send(ping{7}) == 7 ? 0 : 1;
}
