// SPDX-License-Identifier: MIT
// Hostile inputs and awkward situations: timeouts of every duration type, non-pure routers,
// a pool dropped by its own item, stuck handlers, full queues, absurd sizes.
#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <pthread.h>
#include <time.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <limits>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "pool_test_util.hpp"
#include "requests.hpp"

namespace {

using namespace std::chrono_literals;

struct get {
  mtp::id_t id;
  using response_type = int;
};
using hold = mtp_test::basic_hold<int>;
struct make_box {  // a move-only response
  mtp::id_t id;
  using response_type = std::unique_ptr<int>;
};

class item {
 public:
  explicit item(mtp::id_t id) : id_(id) {}
  int handle(const get&) const { return static_cast<int>(id_) * 10; }
  int handle(const hold& h) {
    mtp_test::hold_until_released(h);
    return 1;
  }
  std::unique_ptr<int> handle(const make_box&) { return std::make_unique<int>(static_cast<int>(id_)); }

 private:
  mtp::id_t id_;
};
using pool_t = mtp::thread_pool<item>;

// Holds worker 0 (item 0) inside a handler until the returned release gate opens.
struct held_worker {
  mtp_test::gate started, release;
  std::future<int> running;
  explicit held_worker(pool_t& pool) {
    running = std::async(std::launch::async, [&pool, this] { return pool.send(hold{0, &started, &release}); });
    EXPECT_TRUE(started.wait_for(mtp_test::k_bound));
  }
  ~held_worker() {
    release.open();
    if (running.valid()) running.wait();
  }
};

template <class Duration>
void expect_times_out(pool_t& pool, Duration timeout) {
  held_worker held(pool);
  MTP_EXPECT_POOL_ERROR(mtp::errc::timed_out, MTP_BOUNDED([&] { return pool.send(get{2}, timeout); }));
  const auto batch = MTP_BOUNDED([&] { return pool.send_batch(std::vector<get>{{2}, {1}}, timeout); });
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch[0].error().code, mtp::errc::timed_out);
}

TEST(Timeouts, EveryDurationTypeTimesOut) {
  pool_t pool(mtp_test::options(2));
  for (mtp::id_t id = 0; id < 4; ++id) pool.create(id);
  // 32-bit counts used to wrap when compared with a one-year cap converted to their type.
  expect_times_out(pool, std::chrono::duration<int, std::micro>(1000));
  expect_times_out(pool, std::chrono::duration<short, std::milli>(2));
  expect_times_out(pool, std::chrono::duration<double>(0.002));
  expect_times_out(pool, std::chrono::duration<float, std::milli>(1.5F));
  expect_times_out(pool, std::chrono::duration<long long, std::nano>(0));
  expect_times_out(pool, std::chrono::duration<int, std::milli>(-5));
}

TEST(Timeouts, HugeTimeoutsMeanForever) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  EXPECT_EQ(pool.send(get{1}, std::chrono::hours::max()), 10);
  EXPECT_EQ(pool.send(get{1}, std::chrono::nanoseconds::max()), 10);
  EXPECT_EQ(pool.send(get{1}, std::chrono::duration<int, std::micro>::max()), 10);
  EXPECT_EQ(pool.send(get{1}, std::chrono::duration<double>(1e300)), 10);
  EXPECT_EQ(pool.send_batch(std::vector<get>{{1}}, std::chrono::years(1000))[0].value(), 10);
}

TEST(Timeouts, TimedSendWithAMoveOnlyResponse) {
  pool_t pool(mtp_test::options(2));
  pool.create(3);
  std::unique_ptr<int> box = pool.send(make_box{3}, 10s);
  ASSERT_NE(box, nullptr);
  EXPECT_EQ(*box, 3);
}

TEST(Timeouts, BatchWaitForTheLargestDurationsWaits) {
  pool_t pool(mtp_test::options(2));
  for (mtp::id_t id = 0; id < 4; ++id) pool.create(id);
  std::array<mtp_test::gate, 4> entered;  // each wait's thread has begun
  std::vector<std::future<bool>> waits;
  std::vector<mtp::batch<int>> handles;
  {
    held_worker held(pool);
    for (int i = 0; i < 4; ++i) handles.push_back(pool.submit_batch(std::vector<get>{{2}, {1}}));
    auto* h = handles.data();
    auto* in = entered.data();
    waits.push_back(std::async(std::launch::async, [h, in] {
      in[0].open();
      return h[0].wait_for(std::chrono::nanoseconds::max());
    }));
    waits.push_back(std::async(std::launch::async, [h, in] {
      in[1].open();
      return h[1].wait_for(std::chrono::duration<int, std::micro>::max());
    }));
    waits.push_back(std::async(std::launch::async, [h, in] {
      in[2].open();
      return h[2].wait_until(std::chrono::system_clock::time_point::max());
    }));
    waits.push_back(std::async(std::launch::async, [h, in] {
      in[3].open();
      return h[3].wait_until(std::chrono::steady_clock::time_point::max());
    }));
    EXPECT_FALSE(handles[0].ready()) << "worker 0 is held: item 2's request cannot have run";
    // Worker 0 is released only once every wait has begun: a wait that begins after its batch
    // ended returns at once, whatever its duration.
    for (auto& e : entered) EXPECT_TRUE(e.wait_for(mtp_test::k_bound)) << "a wait never began";
    for (auto& w : waits) {
      EXPECT_EQ(w.wait_for(0s), std::future_status::timeout) << "a wait gave up while its batch could not end";
    }
  }  // releases worker 0
  for (auto& w : waits) EXPECT_TRUE(MTP_BOUNDED([&] { return w.get(); })) << "a wait gave up before the batch ended";
  for (auto& h : handles) EXPECT_EQ(h.take()[0].value(), 20);
}

TEST(Routing, ANonPureRouterIsAskedOncePerRequest) {
  std::atomic<int> calls{0};
  mtp::pool_options o = mtp_test::options(2);
  o.router = [&calls](mtp::id_t id, std::size_t workers) -> std::size_t {
    if (calls.fetch_add(1) % 3 == 2) throw std::runtime_error("flaky router");
    return id % workers;
  };
  pool_t pool(o);
  std::vector<get> requests;
  for (mtp::id_t id = 0; id < 31; ++id) requests.push_back({id % 4});
  for (mtp::id_t id = 0; id < 4; ++id) {
    while (true) {  // the router throws now and then: retry the create until it routes
      try {
        pool.create(id);
        break;
      } catch (const mtp::pool_error& e) {
        ASSERT_EQ(e.code(), mtp::errc::invalid_route);
      }
    }
  }
  const int before = calls.load();
  const auto results = pool.send_batch(requests);
  EXPECT_EQ(calls.load() - before, 31) << "the batch path must route each request exactly once";
  int routed = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].has_value() || results[i].has_error()) << i << " left pending";
    if (results[i].has_value()) {
      EXPECT_EQ(results[i].value(), static_cast<int>(requests[i].id) * 10);
      ++routed;
    } else {
      EXPECT_EQ(results[i].error().code, mtp::errc::invalid_route);
    }
  }
  EXPECT_GT(routed, 0);
  EXPECT_LT(routed, 31);
}

// ---- A pool dropped by its own item -----------------------------------------------------

class owner;
using owner_pool = mtp::thread_pool<owner>;
struct adopt {
  mtp::id_t id;
  std::shared_ptr<owner_pool>* from;  // moved into the item
  using response_type = void;
};
struct let_go {
  mtp::id_t id;
  using response_type = void;
};
std::atomic<int> g_owners_destroyed{0};
mtp_test::gate* g_all_destroyed = nullptr;

class owner {
 public:
  explicit owner(mtp::id_t) {}
  owner(const owner&) = delete;
  owner& operator=(const owner&) = delete;
  ~owner() {
    if (g_owners_destroyed.fetch_add(1) + 1 == 4) g_all_destroyed->open();
  }
  void handle(const adopt& a) { pool_ = std::move(*a.from); }
  void handle(const let_go&) { pool_.reset(); }  // the last owner: the pool ends here

 private:
  std::shared_ptr<owner_pool> pool_;
};

TEST(SelfDestruction, AnItemDroppingItsOwnPoolEndsItCleanly) {
  mtp_test::gate all_destroyed;
  g_all_destroyed = &all_destroyed;
  g_owners_destroyed = 0;
  auto pool = std::make_shared<owner_pool>(mtp_test::options(2));
  for (mtp::id_t id = 0; id < 4; ++id) pool->create(id);
  owner_pool* raw = pool.get();
  auto keep = pool;
  raw->send(adopt{1, &keep});  // item 1 now holds the only other reference
  pool.reset();
  ASSERT_TRUE(raw->post(let_go{1}).has_value());  // drops the last reference on worker 1
  EXPECT_TRUE(all_destroyed.wait_for(mtp_test::k_bound)) << "the items were not destroyed";
  EXPECT_EQ(g_owners_destroyed.load(), 4);
}

// ---- Stalls ------------------------------------------------------------------------------

TEST(Stalls, AStuckHandlerIsReportedAndNamedDuringShutdown) {
  mtp_test::diagnostic_sink sink;
  mtp::pool_options o = mtp_test::options(2);
  o.stall_threshold = 20ms;
  o.on_diagnostic = sink.callback();
  auto pool = std::make_unique<pool_t>(o);
  for (mtp::id_t id = 0; id < 4; ++id) pool->create(id);
  mtp_test::gate started, release;
  std::future<int> running;
  std::future<void> stopping;
  mtp_test::open_on_exit releaser(release);  // after the futures: opens before they are waited for
  running = std::async(std::launch::async, [&] { return pool->send(hold{2, &started, &release}); });
  ASSERT_TRUE(started.wait_for(mtp_test::k_bound));
  // Only the stuck message's reports are checked: another message may be reported as well
  // when its worker is pre-empted for longer than the threshold.
  const auto stuck = [](const mtp::diagnostic& d) { return d.item == mtp::id_t{2}; };
  const auto first = sink.wait_for_if(mtp::diagnostic::kind::stalled, 1, stuck);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first[0].worker, 0u);
  EXPECT_EQ(first[0].item, 2u);
  EXPECT_GE(first[0].running, 20ms);
  EXPECT_TRUE(mtp_test::contains(first[0].text, "item 2")) << first[0].text;
  EXPECT_EQ(pool->send(get{1}), 10) << "the other worker keeps serving";
  stopping = std::async(std::launch::async, [&] { pool->shutdown(); });
  const auto second = sink.wait_for_if(mtp::diagnostic::kind::stalled, 2, stuck);
  ASSERT_GE(second.size(), 2u);
  EXPECT_TRUE(mtp_test::contains(second[1].text, "shutdown is waiting")) << second[1].text;
  release.open();
  EXPECT_EQ(MTP_BOUNDED([&] { return running.get(); }), 1);
  MTP_BOUNDED([&] { stopping.get(); });
}

TEST(Stalls, ShortMessagesAreNotReported) {
  mtp_test::diagnostic_sink sink;
  mtp::pool_options o = mtp_test::options(2);
  // A worker descheduled mid-message for longer than the threshold would be reported, rightly:
  // the threshold is well above what a loaded machine stalls a thread for, and the loop runs
  // for several thresholds, so a detector that counted busy time across messages would fire.
  o.stall_threshold = 250ms;
  o.on_diagnostic = sink.callback();
  pool_t pool(o);
  for (mtp::id_t id = 0; id < 4; ++id) pool.create(id);
  const auto until = std::chrono::steady_clock::now() + 1s;  // several thresholds, many monitor ticks
  while (std::chrono::steady_clock::now() < until) EXPECT_EQ(pool.send(get{3}), 30);
  EXPECT_TRUE(sink.of_kind(mtp::diagnostic::kind::stalled).empty());
}

// ---- Full queues -------------------------------------------------------------------------

std::chrono::nanoseconds thread_cpu_time(std::thread::native_handle_type t) {
  clockid_t clock{};
  if (pthread_getcpuclockid(t, &clock) != 0) return {};
  timespec ts{};
  clock_gettime(clock, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

TEST(FullQueues, ShutdownSleepsWhileASenderWaitsForRoom) {
  mtp::pool_options o = mtp_test::options(2);
  o.queue_capacity = 1;
  pool_t pool(o);
  for (mtp::id_t id = 0; id < 4; ++id) pool.create(id);
  auto held = std::make_unique<held_worker>(pool);  // its request fills worker 0's queue of 1
  // This sender waits for room inside the sender gate. Shutdown starts only once it sleeps
  // there: a sender that came later would be refused instead.
  auto sender = std::async(std::launch::async, [&] { return pool.send(get{2}); });
  if (!mtp_test::poll_until([&] { return pool.stats().workers[0].senders_waiting == 1; })) {
    held.reset();  // before `sender` is waited for: a sender waiting for room needs worker 0
    FAIL() << "the sender never waited for room";
  }
  std::atomic<bool> done{false};
  std::thread stopper([&] {
    pool.shutdown();
    done = true;
  });
  // Give shutdown a measurement window while it waits for the sender, then read its CPU time.
  std::this_thread::sleep_for(300ms);
  const auto cpu = thread_cpu_time(stopper.native_handle());
  EXPECT_FALSE(done.load()) << "shutdown returned while a sender was inside the gate";
  EXPECT_LT(cpu, 100ms) << "shutdown spun while it waited";
  held.reset();  // releases worker 0: the sender gets room, shutdown completes
  int answer = 0;
  EXPECT_NO_THROW(answer = MTP_BOUNDED([&] { return sender.get(); }));  // a throw must not skip the join
  EXPECT_EQ(answer, 20);
  stopper.join();
}

TEST(FullQueues, SubmitBatchNeverBlocks) {
  mtp::pool_options o = mtp_test::options(2);
  o.queue_capacity = 2;
  pool_t pool(o);
  for (mtp::id_t id = 0; id < 4; ++id) pool.create(id);
  mtp::batch<int> handle;
  {
    held_worker held(pool);
    std::vector<get> requests(10, get{2});
    handle = MTP_BOUNDED([&] { return pool.submit_batch(requests); });  // returns though worker 0 is held
  }
  const auto results = MTP_BOUNDED([&] { return handle.take(); });
  int full = 0;
  for (const auto& r : results) {
    if (r.has_value()) EXPECT_EQ(r.value(), 20);
    else {
      EXPECT_EQ(r.error().code, mtp::errc::queue_full);
      ++full;
    }
  }
  EXPECT_GT(full, 0) << "10 requests cannot all fit a queue of 2";
}

// ---- Sizes and moves ---------------------------------------------------------------------

TEST(Sizes, AbsurdWorkerCountsGetAClearError) {
  for (const std::size_t workers : {std::numeric_limits<std::size_t>::max(), std::size_t{100000000000}}) {
    mtp::pool_options o;
    o.workers = workers;
    try {
      pool_t pool(o);
      ADD_FAILURE() << workers << " workers were accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(mtp_test::contains(e.what(), "limit")) << e.what();
    }
  }
}

TEST(Moves, APoolMovesWithItsItems) {
  pool_t first(mtp_test::options(2));
  first.create(7);
  pool_t second(std::move(first));
  EXPECT_EQ(second.send(get{7}), 70);
  pool_t third(mtp_test::options(1));
  third = std::move(second);
  EXPECT_EQ(third.send(get{7}), 70);
}

}  // namespace

// ---- Any range into a batch --------------------------------------------------------------

#include <deque>
#include <list>
#include <ranges>

namespace {

TEST(Ranges, EveryBatchFormTakesAnyInputRange) {
  pool_t pool(mtp_test::options(2));
  const std::list<mtp::id_t> ids{0, 1, 2, 3, 4, 5};
  for (const auto& r : pool.create_batch(ids)) EXPECT_TRUE(r.has_value());
  const std::deque<get> gets{{0}, {1}, {2}, {3}, {4}, {5}};
  const auto sent = pool.send_batch(gets);
  ASSERT_EQ(sent.size(), 6u);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(sent[i].value(), static_cast<int>(i) * 10);
  EXPECT_EQ(pool.send_batch(std::list<get>{{1}, {2}}, 10s)[1].value(), 20);
  EXPECT_EQ(pool.submit_batch(gets).take()[5].value(), 50);
#if !defined(__clang__) || __clang_major__ >= 15  // clang 14 cannot compile libstdc++ 12's views
  static const std::vector<int> base{5, 4, 3};
  const auto view = base | std::views::transform([](int i) { return get{static_cast<mtp::id_t>(i)}; });
  const auto from_view = pool.send_batch(view);
  EXPECT_EQ(from_view[0].value(), 50);
  EXPECT_EQ(from_view[2].value(), 30);
#endif
  const std::list<mtp::id_t> gone{0, 1, 99};
  const auto removed = pool.remove_batch(gone);
  EXPECT_TRUE(removed[0].has_value());
  EXPECT_EQ(removed[2].error().code, mtp::errc::unknown_id);
}

}  // namespace

// ---- Activation on first message and passivation ------------------------------------------

namespace {

std::atomic<int> g_grains_built{0};
std::atomic<int> g_grains_destroyed{0};
mtp_test::gate* g_two_destroyed = nullptr;

struct deposit {
  mtp::id_t id;
  int amount;
  using response_type = int;
};

class grain {  // a "virtual" item: it exists as soon as someone talks to it
 public:
  static constexpr bool activate_on_first_message = true;
  explicit grain(mtp::id_t id) {
    if (id == 13) throw std::runtime_error("unlucky");
    g_grains_built.fetch_add(1);
  }
  grain(const grain&) = delete;
  grain& operator=(const grain&) = delete;
  ~grain() {
    if (g_grains_destroyed.fetch_add(1) + 1 == 2 && g_two_destroyed != nullptr) g_two_destroyed->open();
  }
  int handle(const deposit& d) { return balance_ += d.amount; }

 private:
  int balance_ = 0;
};

struct passivation_hooks {
  static inline std::atomic<int> passivated{0};
  void on_passivate(mtp::id_t) { passivated.fetch_add(1); }
};

TEST(Activation, AFirstMessageBuildsTheItemInTheSameMessage) {
  g_grains_built = 0;
  mtp::thread_pool<grain> pool(mtp_test::options(2));
  EXPECT_EQ(pool.send(deposit{5, 10}), 10) << "one round trip, no create";
  EXPECT_EQ(pool.send(deposit{5, 1}), 11) << "the second message finds the same item";
  ASSERT_TRUE(pool.post(deposit{6, 1}).has_value());
  const auto batch = pool.send_batch(std::vector<deposit>{{7, 1}, {7, 2}, {8, 3}, {13, 1}});
  EXPECT_EQ(batch[1].value(), 3) << "in batch order";
  EXPECT_EQ(batch[3].error().code, mtp::errc::constructor_failed);
  EXPECT_EQ(pool.send(deposit{6, 0}), 1) << "the post activated item 6 first";
  EXPECT_EQ(pool.stats().total_items(), 4u);
  EXPECT_EQ(g_grains_built.load(), 4);
  EXPECT_FALSE(pool.remove(99)) << "remove does not activate";
}

TEST(Activation, IdleItemsArePassivatedAndComeBackFresh) {
  g_grains_destroyed = 0;
  passivation_hooks::passivated = 0;
  mtp_test::gate two_destroyed;
  g_two_destroyed = &two_destroyed;
  mtp::pool_options o = mtp_test::options(2);
  o.passivate_after = std::chrono::milliseconds(20);
  mtp::thread_pool<grain, passivation_hooks> pool(o);
  EXPECT_EQ(pool.send(deposit{1, 5}), 5);
  EXPECT_EQ(pool.send(deposit{2, 5}), 5);
  // Both items are destroyed without any further message: the idle workers wake to sweep.
  EXPECT_TRUE(two_destroyed.wait_for(mtp_test::k_bound)) << "idle items were not passivated";
  g_two_destroyed = nullptr;
  EXPECT_EQ(passivation_hooks::passivated.load(), 2);
  EXPECT_EQ(g_grains_destroyed.load(), 2);
  EXPECT_EQ(pool.send(deposit{1, 1}), 1) << "a passivated item comes back with fresh state";
}

struct id_probe_hooks {
  static inline std::atomic<int> with_id{0};
  void on_worker_start(std::size_t) { with_id.fetch_add(mtp::this_worker::current_id().has_value() ? 1 : 0); }
  void on_worker_stop(std::size_t) { with_id.fetch_add(mtp::this_worker::current_id().has_value() ? 1 : 0); }
};

TEST(CurrentId, EmptyOutsideMessagesOnAWorker) {
  using hooks = id_probe_hooks;
  {
    mtp::thread_pool<item, hooks> pool(mtp_test::options(2));
    pool.create(1);
    EXPECT_EQ(pool.send(get{1}), 10);
  }
  EXPECT_EQ(hooks::with_id.load(), 0) << "current_id() must be empty in on_worker_start/stop";
}

}  // namespace

// ---- Trace -------------------------------------------------------------------------------

#include <fstream>
#include <sstream>

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Trace, ShutdownWritesOneSlicePerMessageOnEachWorkersTrack) {
  const std::string path = ::testing::TempDir() + "mtp-trace-test.json";
  std::remove(path.c_str());
  mtp::pool_options o = mtp_test::options(2);
  o.trace_file = path;
  {
    pool_t pool(o);
    for (mtp::id_t id = 0; id < 4; ++id) pool.create(id);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(pool.send(get{3}), 30);
    (void)pool.send_batch(std::vector<get>{{0}, {1}, {2}});
    const std::string snapshot = path + ".now";
    pool.write_trace(snapshot);  // on demand, while running
    EXPECT_NE(read_file(snapshot).find("::get\""), std::string::npos);
    std::remove(snapshot.c_str());
  }
  const std::string json = read_file(path);
  ASSERT_FALSE(json.empty()) << "no trace written at shutdown";
  EXPECT_NE(json.find("\"traceEvents\""), std::string::npos);
  EXPECT_NE(json.find("\"name\":\"worker 0\""), std::string::npos);
  EXPECT_NE(json.find("\"name\":\"worker 1\""), std::string::npos);
  std::size_t gets = 0, creates = 0;
  for (std::size_t at = json.find("\"name\":\"(anonymous namespace)::get\""); at != std::string::npos;
       at = json.find("\"name\":\"(anonymous namespace)::get\"", at + 1)) {
    ++gets;
  }
  for (std::size_t at = json.find("\"name\":\"create\""); at != std::string::npos; at = json.find("\"name\":\"create\"", at + 1)) {
    ++creates;
  }
  EXPECT_EQ(gets, 13u) << "one slice per message";
  EXPECT_EQ(creates, 4u);
  EXPECT_NE(json.find("\"args\":{\"id\":3}"), std::string::npos);
  std::remove(path.c_str());
}

TEST(Trace, OffByDefault) {
  pool_t pool(mtp_test::options(2));
  EXPECT_THROW(pool.write_trace(::testing::TempDir() + "never.json"), std::logic_error);
}

}  // namespace
