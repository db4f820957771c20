// SPDX-License-Identifier: MIT
// A chat room: each room is an item holding its members and messages. Many client threads
// post into rooms concurrently; each room sees each client's messages in the order sent.
#include <mtp/mtp.hpp>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace {

struct join {
  mtp::id_t id;
  int member;
  using response_type = std::size_t;  // members now in the room
};
struct message {
  mtp::id_t id;
  int member;
  int seq;
  using response_type = void;
};
struct transcript {
  mtp::id_t id;
  using response_type = std::vector<std::pair<int, int>>;  // (member, seq) in arrival order
};

class room {
 public:
  room(mtp::id_t id, std::string topic) : topic_(std::move(topic)) { (void)id; }
  std::size_t handle(const join& j) {
    members_.push_back(j.member);
    return members_.size();
  }
  void handle(const message& m) { log_.emplace_back(m.member, m.seq); }
  std::vector<std::pair<int, int>> handle(const transcript&) const { return log_; }

 private:
  std::string topic_;
  std::vector<int> members_;
  std::vector<std::pair<int, int>> log_;
};

}  // namespace

int main() {
  constexpr int k_rooms = 8;
  constexpr int k_clients = 4;
  constexpr int k_messages = 500;
  mtp::thread_pool<room> pool({.workers = 2, .placement = mtp::plan_placement("none")});
  for (mtp::id_t r = 0; r < k_rooms; ++r) pool.create(r, "room " + std::to_string(r));

  std::vector<std::thread> clients;
  for (int c = 0; c < k_clients; ++c) {
    clients.emplace_back([&pool, c] {
      for (mtp::id_t r = 0; r < k_rooms; ++r) (void)pool.send(join{r, c});
      std::vector<message> burst;
      for (int s = 0; s < k_messages; ++s) burst.push_back({static_cast<mtp::id_t>(s % k_rooms), c, s});
      for (auto& result : pool.send_batch(burst)) result.value();
    });
  }
  for (auto& t : clients) t.join();

  bool ordered = true;
  std::size_t total = 0;
  for (mtp::id_t r = 0; r < k_rooms; ++r) {
    const auto log = pool.send(transcript{r});
    total += log.size();
    std::vector<int> last(k_clients, -1);
    for (auto [member, seq] : log) {
      ordered = ordered && seq > last[member];
      last[member] = seq;
    }
  }
  std::printf("%zu messages in %d rooms, per-client order %s\n", total, k_rooms, ordered ? "kept" : "BROKEN");
  return (ordered && total == std::size_t{k_clients} * k_messages) ? 0 : 1;
}
