// SPDX-License-Identifier: MIT
// Hooks: per-worker copies, the order and count of hook calls, this_worker inside handlers,
// constructors and destructors, and hooks that throw.
#include "pool_test_util.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

struct ping {
  mtp::id_t id;
  using response_type = std::size_t;  // this_worker::index() in the handler
};
struct whoami {
  mtp::id_t id;
  using response_type = std::optional<mtp::id_t>;  // this_worker::current_id() in the handler
};

std::atomic<int> g_handler_runs{0};

std::mutex g_ids_mutex;
std::map<mtp::id_t, std::optional<mtp::id_t>> g_ctor_ids;  // current_id() seen by constructors
std::map<mtp::id_t, std::optional<mtp::id_t>> g_dtor_ids;  // current_id() seen by destructors

class item {
 public:
  explicit item(mtp::id_t id) : id_(id) {
    std::lock_guard lock(g_ids_mutex);
    g_ctor_ids[id] = mtp::this_worker::current_id();
  }
  item(const item&) = delete;
  item& operator=(const item&) = delete;
  ~item() {
    std::lock_guard lock(g_ids_mutex);
    g_dtor_ids[id_] = mtp::this_worker::current_id();
  }
  std::size_t handle(const ping&) {
    ++g_handler_runs;
    return mtp::this_worker::index().value_or(999);
  }
  std::optional<mtp::id_t> handle(const whoami&) {
    ++g_handler_runs;
    return mtp::this_worker::current_id();
  }

 private:
  mtp::id_t id_;
};

// ---- A recording hooks type ------------------------------------------------------------------

/// What each worker's hooks copy saw, published when the worker stops.
struct worker_report {
  std::thread::id thread;
  int starts = 0;
  int stops = 0;
  int before = 0;
  int after = 0;
  int unbalanced = 0;      // after without before, or before twice
  int wrong_id = 0;        // hook id differs from this_worker::current_id()
  int wrong_worker = 0;    // this_worker::index() differs from the copy's worker
  bool fresh_copy = false; // the copy had not been started before
  int tag = 0;             // copied from the prototype
};

std::mutex g_reports_mutex;
std::map<std::size_t, worker_report> g_reports;
std::atomic<int> g_reports_published{0};

struct recording_hooks {
  static constexpr std::size_t k_none = ~std::size_t{0};
  std::size_t worker = k_none;
  int tag = 0;
  worker_report r;
  bool inside = false;

  void on_worker_start(std::size_t k) {
    r.fresh_copy = worker == k_none && r.starts == 0;
    worker = k;
    ++r.starts;
    r.thread = std::this_thread::get_id();
    r.tag = tag;
    if (mtp::this_worker::index() != k) ++r.wrong_worker;
  }
  void before_message(mtp::id_t id) {
    ++r.before;
    if (inside) ++r.unbalanced;
    inside = true;
    if (mtp::this_worker::current_id() != id) ++r.wrong_id;
    if (mtp::this_worker::index() != worker) ++r.wrong_worker;
    if (std::this_thread::get_id() != r.thread) ++r.wrong_worker;
  }
  void after_message(mtp::id_t id) {
    ++r.after;
    if (!inside) ++r.unbalanced;
    inside = false;
    if (mtp::this_worker::current_id() != id) ++r.wrong_id;
  }
  void on_worker_stop(std::size_t k) {
    ++r.stops;
    if (k != worker) ++r.wrong_worker;
    std::lock_guard lock(g_reports_mutex);
    g_reports[k] = r;
    ++g_reports_published;
  }
};

class Hooks : public ::testing::Test {
 protected:
  void SetUp() override {
    g_handler_runs = 0;
    std::lock_guard lock(g_reports_mutex);
    g_reports.clear();
    g_reports_published = 0;
    std::lock_guard lock2(g_ids_mutex);
    g_ctor_ids.clear();
    g_dtor_ids.clear();
  }
};

TEST_F(Hooks, EachWorkerHasItsOwnCopyAndSeesEveryMessage) {
  recording_hooks prototype;
  prototype.tag = 17;
  {
    mtp::thread_pool<item, recording_hooks> pool(mtp_test::options(2), prototype);
    // 10 creates on worker 0 (even ids), 5 on worker 1.
    for (mtp::id_t id = 0; id < 20; id += 2) pool.create(id);
    for (mtp::id_t id = 1; id < 10; id += 2) pool.create(id);
    // Worker 0: 10 sends, a batch of 4, 3 posts. Worker 1: 7 sends.
    for (int i = 0; i < 10; ++i) EXPECT_EQ(pool.send(ping{2}), 0u);
    for (int i = 0; i < 7; ++i) EXPECT_EQ(pool.send(ping{3}), 1u);
    const std::vector<ping> batch{{0}, {2}, {4}, {6}};
    for (const auto& r : pool.send_batch(batch)) EXPECT_EQ(r.value(), 0u);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool.post(ping{8}).has_value());
    // Unknown ids and duplicates do not reach the item: no hooks for them.
    EXPECT_THROW((void)pool.send(ping{1000}), mtp::pool_error);
    EXPECT_THROW(pool.create(2), mtp::pool_error);
    // Removes: 2 on worker 0, 1 on worker 1.
    EXPECT_TRUE(pool.remove(0));
    EXPECT_TRUE(pool.remove(2));
    EXPECT_TRUE(pool.remove(1));
  }
  ASSERT_EQ(g_reports_published.load(), 2);
  std::lock_guard lock(g_reports_mutex);
  const worker_report& w0 = g_reports.at(0);
  const worker_report& w1 = g_reports.at(1);
  for (const worker_report* w : {&w0, &w1}) {
    EXPECT_TRUE(w->fresh_copy) << "a worker's hooks copy was already used by another worker";
    EXPECT_EQ(w->starts, 1);
    EXPECT_EQ(w->stops, 1);
    EXPECT_EQ(w->tag, 17) << "hooks copies are not copies of the prototype";
    EXPECT_EQ(w->before, w->after);
    EXPECT_EQ(w->unbalanced, 0);
    EXPECT_EQ(w->wrong_id, 0);
    EXPECT_EQ(w->wrong_worker, 0);
  }
  EXPECT_NE(w0.thread, w1.thread);
  EXPECT_EQ(w0.before, 10 + 10 + 4 + 3 + 2 + 8)
      << "creates, sends, batch, posts, removes, and the 8 items destroyed at shutdown on worker 0";
  EXPECT_EQ(w1.before, 5 + 7 + 1 + 4) << "creates, sends, removes, and the 4 destroyed at shutdown on worker 1";
  EXPECT_EQ(prototype.r.starts, 0) << "the prototype itself was used";
}

TEST_F(Hooks, CurrentIdInHandlerConstructorAndDestructor) {
  EXPECT_FALSE(mtp::this_worker::is_worker());
  EXPECT_FALSE(mtp::this_worker::current_id().has_value());
  EXPECT_FALSE(mtp::this_worker::index().has_value());
  {
    mtp::thread_pool<item> pool(mtp_test::options(2));
    for (mtp::id_t id = 100; id < 110; ++id) pool.create(id);
    for (mtp::id_t id = 100; id < 110; ++id) EXPECT_EQ(pool.send(whoami{id}), std::optional<mtp::id_t>(id));
    const std::vector<whoami> batch{{105}, {101}, {105}, {108}};
    const auto r = pool.send_batch(batch);
    for (std::size_t i = 0; i < batch.size(); ++i) EXPECT_EQ(r[i].value(), std::optional<mtp::id_t>(batch[i].id));
    EXPECT_TRUE(pool.remove(103));  // destroyed by remove; the rest by shutdown
  }
  std::lock_guard lock(g_ids_mutex);
  ASSERT_EQ(g_ctor_ids.size(), 10u);
  ASSERT_EQ(g_dtor_ids.size(), 10u);
  for (mtp::id_t id = 100; id < 110; ++id) {
    EXPECT_EQ(g_ctor_ids[id], std::optional<mtp::id_t>(id)) << "constructor of " << id;
    EXPECT_EQ(g_dtor_ids[id], std::optional<mtp::id_t>(id)) << "destructor of " << id;
  }
}

// ---- Hooks that throw ------------------------------------------------------------------------

struct throwing_hooks {
  bool throw_on_start = false;
  bool throw_on_stop = false;
  mtp::id_t refuse_before = 13;  // before_message throws for this id
  mtp::id_t refuse_after = 14;   // after_message throws for this id

  void on_worker_start(std::size_t k) {
    if (throw_on_start && k == 0) throw std::runtime_error("start hook refused");
  }
  void on_worker_stop(std::size_t k) {
    if (throw_on_stop && k == 1) throw 7;
  }
  void before_message(mtp::id_t id) {
    if (id == refuse_before) throw std::runtime_error("before hook refused " + std::to_string(id));
  }
  void after_message(mtp::id_t id) {
    if (id == refuse_after) throw std::logic_error("after hook refused " + std::to_string(id));
  }
};

mtp::pool_options with_sink(mtp_test::diagnostic_sink& sink) {
  mtp::pool_options o = mtp_test::options(2);
  o.on_diagnostic = sink.callback();
  return o;
}

TEST_F(Hooks, BeforeMessageThrowingOnCreateAddsNoItem) {
  mtp_test::diagnostic_sink sink;
  throwing_hooks hooks;
  hooks.refuse_before = 12;
  hooks.refuse_after = 1000;
  mtp::thread_pool<item, throwing_hooks> pool(with_sink(sink), hooks);
  try {
    pool.create(12);
    ADD_FAILURE() << "create did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(mtp_test::contains(e.what(), "before hook refused 12")) << e.what();
  }
  const std::vector<mtp::id_t> ids{12, 13};
  const auto r = pool.create_batch(std::span<const mtp::id_t>(ids));
  ASSERT_TRUE(r[0].has_error());
  EXPECT_EQ(r[0].error().code, mtp::errc::hook_failed);
  EXPECT_EQ(r[0].error().id, 12u);
  EXPECT_TRUE(r[1].has_value());
  EXPECT_EQ(pool.stats().total_items(), 1u);
  std::lock_guard lock(g_ids_mutex);
  EXPECT_EQ(g_ctor_ids.count(12), 0u) << "the constructor ran although before_message threw";
  EXPECT_EQ(g_ctor_ids.count(13), 1u);
}

// A hooks type whose refusal can be switched on after the items exist.
std::atomic<bool> g_refuse_armed{false};
struct armed_hooks {
  void before_message(mtp::id_t id) {
    if (g_refuse_armed.load() && id == 5) throw std::runtime_error("hook says no to 5");
  }
};

TEST_F(Hooks, BeforeMessageThrowingGivesHookFailed) {
  g_refuse_armed = false;
  mtp::thread_pool<item, armed_hooks> pool(mtp_test::options(2));
  pool.create(5);
  pool.create(6);
  g_refuse_armed = true;
  const int runs = g_handler_runs.load();
  const std::vector<ping> batch{{6}, {5}, {6}};
  const auto r = pool.send_batch(batch);
  EXPECT_EQ(r[0].value(), 0u);
  EXPECT_EQ(r[2].value(), 0u);
  ASSERT_TRUE(r[1].has_error());
  EXPECT_EQ(r[1].error().code, mtp::errc::hook_failed);
  EXPECT_EQ(r[1].error().id, 5u);
  EXPECT_TRUE(mtp_test::contains(r[1].error().message(), "hook says no to 5")) << r[1].error().message();
  EXPECT_EQ(g_handler_runs.load(), runs + 2) << "the handler ran although before_message threw";
  EXPECT_THROW((void)pool.send(ping{5}), std::runtime_error);
  EXPECT_EQ(g_handler_runs.load(), runs + 2);
  // remove is refused too, and the item stays.
  EXPECT_THROW((void)pool.remove(5), std::runtime_error);
  EXPECT_EQ(pool.stats().total_items(), 2u);
  g_refuse_armed = false;
  EXPECT_EQ(pool.send(ping{5}), 1u) << "the refused item is gone";
}

TEST_F(Hooks, AfterMessageThrowingGoesToTheDiagnosticHook) {
  mtp_test::diagnostic_sink sink;
  throwing_hooks hooks;
  hooks.refuse_before = 1000;
  mtp::thread_pool<item, throwing_hooks> pool(with_sink(sink), hooks);
  pool.create(14);
  EXPECT_EQ(pool.send(ping{14}), 0u) << "an after_message failure must not fail the request";
  EXPECT_EQ(pool.send(ping{14}), 0u);
  const auto d = sink.wait_for(mtp::diagnostic::kind::hook_failed, 3);  // create + 2 sends
  ASSERT_GE(d.size(), 3u);
  for (const auto& x : d) {
    EXPECT_TRUE(mtp_test::contains(x.text, "after hook refused 14")) << x.text;
    EXPECT_EQ(x.worker, 0u);
  }
  EXPECT_EQ(pool.stats().total_items(), 1u);
}

TEST_F(Hooks, WorkerStartAndStopThrowingGoToTheDiagnosticHook) {
  mtp_test::diagnostic_sink sink;
  throwing_hooks hooks;
  hooks.throw_on_start = true;
  hooks.throw_on_stop = true;
  hooks.refuse_before = 1000;
  hooks.refuse_after = 1000;
  {
    mtp::thread_pool<item, throwing_hooks> pool(with_sink(sink), hooks);
    const auto d = sink.wait_for(mtp::diagnostic::kind::hook_failed, 1);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].worker, 0u);
    EXPECT_TRUE(mtp_test::contains(d[0].text, "start hook refused")) << d[0].text;
    // Worker 0 serves anyway.
    pool.create(0);
    pool.create(1);
    EXPECT_EQ(pool.send(ping{0}), 0u);
    EXPECT_EQ(pool.send(ping{1}), 1u);
  }
  const auto d = sink.of_kind(mtp::diagnostic::kind::hook_failed);
  ASSERT_EQ(d.size(), 2u) << "on_worker_stop's throw was not reported";
  EXPECT_EQ(d[1].worker, 1u);
}

}  // namespace
