// SPDX-License-Identifier: MIT
// The README's example, compiled and run as a test so that it cannot rot.
// !BEGIN-EXAMPLE
#include <mtp/mtp.hpp>

#include <cstdio>
#include <vector>

struct add {  // an explicit message: target id + response type
  mtp::id_t id;
  int amount;
  using response_type = int;
};

class counter {  // a pool item: built, used and destroyed on one worker thread
 public:
  counter(mtp::id_t id, int start) : id_(id), value_(start) {}
  int handle(const add& a) { return value_ += a.amount; }      // answers `add`
  int increment(int by) { return value_ += by; }                // a method message
  [[nodiscard]] mtp::id_t id() const { return id_; }

 private:
  mtp::id_t id_;
  int value_;  // plain state: no lock, no atomic
};

int main() {
  mtp::thread_pool<counter> pool;  // one pinned worker per core (MTP_AFFINITY can change it)

  std::vector<mtp::id_t> ids{1, 2, 3, 4};
  for (auto& created : pool.create_batch(ids, 100)) created.value();  // counter(id, 100)

  const int one = pool.send(add{1, 5});                  // one round trip: 105
  const int two = pool.call(2, &counter::increment, 7);  // a method message: 107

  std::vector<add> batch{{1, 1}, {2, 2}, {1, 3}, {3, 4}};
  std::vector<mtp::result<int>> replies = pool.send_batch(batch);  // in request order
  std::printf("%d %d | %d %d %d %d\n", one, two, replies[0].value(), replies[1].value(),
              replies[2].value(), replies[3].value());  // 105 107 | 106 109 109 104

  auto missing = pool.send_batch(std::vector<add>{{99, 1}});
  std::printf("%s\n", missing[0].error().message().c_str());  // mtp: no item with id 99 ...
  return replies[2].value() == 109 ? 0 : 1;
}
// !END-EXAMPLE
