// SPDX-License-Identifier: MIT
// Introspection: worker_count, stats() (items, messages processed, queue depth), placement,
// and an idle pool's workers burning no CPU.
#include "pool_test_util.hpp"
#include "requests.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace {

using mtp_test::hold;

struct touch {
  mtp::id_t id;
  using response_type = long;  // the worker's kernel thread id
};

struct item {
  explicit item(mtp::id_t) {}
  long handle(const touch&) const { return static_cast<long>(::syscall(SYS_gettid)); }
  void handle(const hold& h) const { mtp_test::hold_until_released(h); }
};

using pool_t = mtp::thread_pool<item>;

TEST(Introspection, WorkerCountAndPlacement) {
  pool_t two(mtp_test::options(2));
  EXPECT_EQ(two.worker_count(), 2u);
  EXPECT_EQ(two.stats().workers.size(), 2u);
  EXPECT_EQ(two.placement().workers.size(), 2u);
  pool_t three(mtp_test::options(3));
  EXPECT_EQ(three.worker_count(), 3u);
  const auto s = three.stats();
  ASSERT_EQ(s.workers.size(), 3u);
  for (std::size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(s.workers[k].index, k);
    EXPECT_FALSE(s.workers[k].pinned) << "placement \"none\" pins nothing";
    EXPECT_TRUE(s.workers[k].placement.cpus.empty());
  }
}

TEST(Introspection, ItemCountsAndMessagesProcessed) {
  pool_t pool(mtp_test::options(2));
  EXPECT_EQ(pool.stats().total_items(), 0u);
  EXPECT_EQ(pool.stats().total_messages(), 0u);
  std::vector<mtp::id_t> ids;
  for (mtp::id_t id = 0; id < 11; ++id) ids.push_back(id);  // 6 even (worker 0), 5 odd
  for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(ids))) ASSERT_TRUE(r.has_value());
  auto s = pool.stats();
  EXPECT_EQ(s.workers[0].items, 6u);
  EXPECT_EQ(s.workers[1].items, 5u);
  EXPECT_EQ(s.total_items(), 11u);
  EXPECT_EQ(s.workers[0].messages_processed, 6u);
  EXPECT_EQ(s.workers[1].messages_processed, 5u);

  for (int i = 0; i < 7; ++i) (void)pool.send(touch{2});
  const std::vector<touch> batch{{1}, {3}, {5}, {4}};
  (void)pool.send_batch(batch);
  EXPECT_TRUE(pool.remove(0));
  s = pool.stats();
  EXPECT_EQ(s.workers[0].messages_processed, 6u + 7u + 1u + 1u);
  EXPECT_EQ(s.workers[1].messages_processed, 5u + 3u);
  EXPECT_EQ(s.total_messages(), 23u);
  EXPECT_EQ(s.workers[0].items, 5u);
  EXPECT_EQ(s.total_items(), 10u);
  EXPECT_EQ(s.workers[0].queue_depth, 0u);
  EXPECT_EQ(s.workers[1].queue_depth, 0u);
}

TEST(Introspection, QueueDepthWhileAWorkerIsHeld) {
  pool_t pool(mtp_test::options(2));
  for (mtp::id_t id = 0; id < 4; ++id) pool.create(id);
  mtp_test::gate started;
  mtp_test::gate release;
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(hold{0, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(std::chrono::seconds(30)));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(pool.post(touch{2}).has_value());
  auto pending = pool.submit_batch(std::vector<touch>{{0}, {2}, {1}});  // one envelope per worker
  // Worker 1 keeps serving while worker 0 is held.
  EXPECT_GT(MTP_BOUNDED([&] { return pool.send(touch{3}); }), 0);
  auto s = pool.stats();
  EXPECT_EQ(s.workers[0].queue_depth, 6u) << "5 posts and one batch share queued behind the held handler";
  EXPECT_EQ(s.workers[1].queue_depth, 0u);
  EXPECT_FALSE(pending.ready());
  const std::uint64_t processed_while_held = s.workers[0].messages_processed;
  release.open();
  const auto results = MTP_BOUNDED([&] { return pending.take(); });
  for (const auto& r : results) EXPECT_TRUE(r.has_value());
  s = pool.stats();
  EXPECT_EQ(s.workers[0].queue_depth, 0u);
  EXPECT_EQ(s.workers[0].messages_processed, processed_while_held + 1 + 5 + 2)
      << "the held post, 5 posts and the batch's 2 requests";
}

/// utime + stime of one thread of this process, in clock ticks.
long long thread_cpu_ticks(long tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');  // the name may hold spaces; fields follow the ')'
  if (close == std::string::npos) return -1;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  long long utime = 0;
  long long stime = 0;
  // Fields after the name start at field 3 (state); utime is field 14, stime field 15.
  for (int f = 3; f <= 15 && rest >> field; ++f) {
    if (f == 14) utime = std::stoll(field);
    if (f == 15) stime = std::stoll(field);
  }
  return utime + stime;
}

TEST(Introspection, IdlePoolBurnsNoCpu) {
  mtp::pool_options o = mtp_test::options(2);
  o.worker_spin = std::chrono::milliseconds(1);
  pool_t pool(std::move(o));
  for (mtp::id_t id = 0; id < 64; ++id) pool.create(id);
  // A burst, then learn the workers' kernel thread ids.
  std::vector<touch> burst;
  for (int i = 0; i < 20'000; ++i) burst.push_back({static_cast<mtp::id_t>(i % 64)});
  (void)pool.send_batch(burst);
  const long tid0 = pool.send(touch{0});
  const long tid1 = pool.send(touch{1});
  ASSERT_NE(tid0, tid1);
  ASSERT_GE(thread_cpu_ticks(tid0), 0);
  // Past the spin budget (1 ms), the workers sleep. This test measures a time window, so it
  // sleeps on purpose (the wait is the measurement, not a synchronisation).
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const long long before = thread_cpu_ticks(tid0) + thread_cpu_ticks(tid1);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const long long after = thread_cpu_ticks(tid0) + thread_cpu_ticks(tid1);
  const long hz = ::sysconf(_SC_CLK_TCK);
  const double burnt_ms = 1000.0 * static_cast<double>(after - before) / static_cast<double>(hz);
  EXPECT_LT(burnt_ms, 50.0) << "idle workers used " << burnt_ms << " ms of CPU in 500 ms";
  // And they wake up again.
  EXPECT_EQ(MTP_BOUNDED([&] { return pool.send(touch{0}); }), tid0);
}

}  // namespace
