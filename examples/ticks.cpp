// SPDX-License-Identifier: MIT
// A small simulation on timers: every particle is a pool item that moves itself one step per
// tick. On its start message it schedules its own ticks with post_every (through
// mtp::this_pool, on its own worker), and after its last tick it cancels its own timer.
//
// The particles move on a line between two walls, bouncing off them, in integer steps: the
// program waits (bounded) until every particle reports all its ticks, prints a checksum of the
// positions, and exits 0 when they equal a plain serial computation of the same motion. A tick
// the timer could not keep (a busy worker) is skipped, not run late in a burst, so the wall
// time may vary; the number of steps, and thus every position, does not.
#include <mtp/mtp.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr std::int64_t k_length = 10'000;  // the walls are at 0 and k_length
constexpr int k_particles = 1000;
constexpr int k_ticks = 100;
constexpr auto k_period = 1ms;

// The motion, shared by the items and the serial check.
struct body {
  std::int64_t x;
  std::int64_t v;
};
body initial(mtp::id_t id) {
  const auto i = static_cast<std::int64_t>(id);
  return {(i * 7919) % k_length, (i * 31) % 19 - 9};  // speeds from -9 to 9
}
void step(body& b) {
  b.x += b.v;
  if (b.x < 0) {
    b.x = -b.x;
    b.v = -b.v;
  } else if (b.x > k_length) {
    b.x = 2 * k_length - b.x;
    b.v = -b.v;
  }
}

// ---- The particle: a pool item ---------------------------------------------------------------

struct start {
  mtp::id_t id;
  int ticks;
  using response_type = void;
};
struct tick {
  mtp::id_t id;
  using response_type = void;
};
struct status {
  int ticks;
  std::int64_t x;
};
struct status_of {
  mtp::id_t id;
  using response_type = status;
};

class particle {
 public:
  explicit particle(mtp::id_t id) : id_(id), body_(initial(id)) {}
  ~particle() { every_.cancel(); }  // harmless when it already stopped

  void handle(const start& s) {
    left_ = s.ticks;
    if (left_ > 0) every_ = mtp::this_pool<particle>().post_every(k_period, tick{id_});
  }
  void handle(const tick&) {
    step(body_);
    ++ticks_;
    if (--left_ == 0) every_.cancel();  // from its own tick: no other starts
  }
  [[nodiscard]] status handle(const status_of&) const { return {ticks_, body_.x}; }

 private:
  mtp::id_t id_;
  body body_;
  mtp::timer every_;
  int left_ = 0;
  int ticks_ = 0;
};

std::uint64_t checksum(const std::vector<std::int64_t>& xs) {  // FNV-1a over the positions
  std::uint64_t h = 14695981039346656037ull;
  for (const std::int64_t x : xs) {
    h ^= static_cast<std::uint64_t>(x);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

int main() {
  mtp::thread_pool<particle> pool;
  std::vector<mtp::id_t> ids;
  std::vector<start> starts;
  std::vector<status_of> polls;
  for (int i = 0; i < k_particles; ++i) {
    const mtp::id_t id = static_cast<mtp::id_t>(i) + 1;
    ids.push_back(id);
    starts.push_back({id, k_ticks});
    polls.push_back({id});
  }
  for (auto& created : pool.create_batch(ids)) created.value();
  for (auto& started : pool.send_batch(starts)) started.value();  // every particle ticks now

  // Poll every few milliseconds, at most about 10 s, until every particle has all its ticks.
  std::vector<std::int64_t> positions(ids.size());
  bool done = false;
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while (!done && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(5ms);
    done = true;
    const std::vector<mtp::result<status>> replies = pool.send_batch(polls);
    for (std::size_t i = 0; i < replies.size(); ++i) {
      const status& s = replies[i].value();
      positions[i] = s.x;
      if (s.ticks < k_ticks) done = false;
    }
  }
  if (!done) {
    std::fprintf(stderr, "ticks: not every particle finished its %d ticks within 10 s\n", k_ticks);
    return EXIT_FAILURE;
  }

  std::vector<std::int64_t> expected(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    body b = initial(ids[i]);
    for (int t = 0; t < k_ticks; ++t) step(b);
    expected[i] = b.x;
  }
  const bool same = positions == expected;
  std::printf("ticks: %d particles x %d ticks, checksum %016llx (%s the serial run)\n", k_particles, k_ticks,
              static_cast<unsigned long long>(checksum(positions)), same ? "matches" : "DIFFERS from");
  return same ? EXIT_SUCCESS : EXIT_FAILURE;
}
