// SPDX-License-Identifier: MIT
// A pool with static storage, used from main, ended at process exit: its destructor sends its
// stop markers after main's thread-local destructors ran, so from a thread whose node cache is
// gone. Usage: mtp_exit_static_pool return|exit
#include <mtp/mtp.hpp>

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

struct tick {
  mtp::id_t id;
  using response_type = void;
};
struct count {
  mtp::id_t id;
  using response_type = int;
};

class item {
 public:
  explicit item(mtp::id_t) {}
  item(const item&) = delete;
  item& operator=(const item&) = delete;
  ~item() {
    std::printf("destroyed after %d ticks\n", ticks_);
    std::fflush(stdout);
  }
  void handle(const tick&) { ++ticks_; }
  int handle(const count&) const { return ticks_; }

 private:
  int ticks_ = 0;
};

mtp::pool_options one_worker() {
  mtp::pool_options o;
  o.workers = 1;
  o.placement = mtp::plan_placement("none", 1);
  return o;
}

mtp::thread_pool<item> g_pool(one_worker());

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || (std::string_view(argv[1]) != "return" && std::string_view(argv[1]) != "exit")) {
    std::fprintf(stderr, "usage: %s return|exit\n", argv[0]);
    return 2;
  }
  g_pool.create(1);
  for (int i = 0; i < 999; ++i) {
    if (!g_pool.post(tick{1}).has_value()) return 1;
  }
  if (g_pool.send(count{1}) != 999) return 1;
  if (!g_pool.post(tick{1}).has_value()) return 1;  // the 1000th message, answered during the pool's end
  if (std::string_view(argv[1]) == "exit") std::exit(0);
  return 0;
}
