// SPDX-License-Identifier: MIT
// Hierarchies: items that own child pools. Parents call down into their children; shutting
// a parent down destroys the children's items (on the children's threads) before the parent
// item's destruction completes.
#include "pool_test_util.hpp"
#include "requests.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

// An event log: who died, in which order, on which thread.
struct event {
  std::string what;  // "child", "parent-done"
  mtp::id_t parent;
  mtp::id_t id;
  std::thread::id thread;
};
std::mutex g_log_mutex;
std::vector<event> g_log;
void log_event(std::string what, mtp::id_t parent, mtp::id_t id) {
  std::lock_guard lock(g_log_mutex);
  g_log.push_back({std::move(what), parent, id, std::this_thread::get_id()});
}

mtp_test::lifetime_registry g_children;

/// When set, the child message numbered `at` (counting every child `get` from 1) waits in its
/// handler: `reached` opens, then it waits for `resume`.
struct child_pause {
  int at = 0;
  std::atomic<int> handled{0};
  mtp_test::gate reached;
  mtp_test::gate resume;
};
std::atomic<child_pause*> g_child_pause{nullptr};

using mtp_test::get;

class child {
 public:
  child(mtp::id_t id, mtp::id_t parent, int value) : id_(id), parent_(parent), value_(value) { g_children.born(key()); }
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  ~child() {
    g_children.died(key());
    log_event("child", parent_, id_);
  }
  int handle(const get&) const {
    if (child_pause* p = g_child_pause.load(); p != nullptr && p->handled.fetch_add(1) + 1 == p->at) {
      p->reached.open();
      p->resume.wait();
    }
    return value_;
  }

 private:
  mtp::id_t key() const { return parent_ * 1000 + id_; }
  mtp::id_t id_;
  mtp::id_t parent_;
  int value_;
};

using child_pool = mtp::thread_pool<child>;

struct sum_children {
  mtp::id_t id;
  using response_type = int;
};
struct stop_children {
  mtp::id_t id;
  using response_type = void;
};
struct child_threads {
  mtp::id_t id;
  using response_type = std::vector<std::thread::id>;
};

constexpr int k_children = 6;

class parent {
 public:
  explicit parent(mtp::id_t id) : done_(id), children_(std::make_unique<child_pool>(mtp_test::options(2))) {
    for (int c = 0; c < k_children; ++c) children_->create(static_cast<mtp::id_t>(c), id, c + 1);
  }
  parent(const parent&) = delete;
  parent& operator=(const parent&) = delete;

  // A blocking call from this pool's worker into the child pool: allowed.
  int handle(const sum_children&) {
    std::vector<get> reqs;
    for (int c = 0; c < k_children; ++c) reqs.push_back({static_cast<mtp::id_t>(c)});
    int total = 0;
    for (const auto& r : children_->send_batch(reqs)) total += r.value();
    return total + children_->send(get{0});
  }
  void handle(const stop_children&) { children_->shutdown(); }
  std::vector<std::thread::id> handle(const child_threads&) {
    return {std::this_thread::get_id()};
  }

 private:
  /// Declared before the child pool, so destroyed after it: marks the end of ~parent.
  struct done_marker {
    explicit done_marker(mtp::id_t id) : id(id) {}
    done_marker(const done_marker&) = delete;
    done_marker& operator=(const done_marker&) = delete;
    ~done_marker() { log_event("parent-done", id, id); }
    mtp::id_t id;
  };
  done_marker done_;
  std::unique_ptr<child_pool> children_;
};

using parent_pool = mtp::thread_pool<parent>;

class Hierarchy : public ::testing::Test {
 protected:
  void SetUp() override {
    g_child_pause = nullptr;
    g_children.reset();
    std::lock_guard lock(g_log_mutex);
    g_log.clear();
  }
};

TEST_F(Hierarchy, ParentHandlerCallsIntoItsChildPool) {
  parent_pool pool(mtp_test::options(2));
  for (mtp::id_t id = 1; id <= 4; ++id) pool.create(id);
  constexpr int expected = (k_children * (k_children + 1)) / 2 + 1;
  for (mtp::id_t id = 1; id <= 4; ++id) EXPECT_EQ(MTP_BOUNDED([&] { return pool.send(sum_children{id}); }), expected);
  const std::vector<sum_children> batch{{1}, {2}, {3}, {4}, {1}};
  const auto r = MTP_BOUNDED([&] { return pool.send_batch(batch); });
  for (const auto& x : r) EXPECT_EQ(x.value(), expected);
  EXPECT_EQ(g_children.alive(), 4u * k_children);
}

TEST_F(Hierarchy, ParentShutdownDestroysChildrenFirst) {
  std::map<mtp::id_t, std::thread::id> parent_thread;
  {
    parent_pool pool(mtp_test::options(2));
    for (mtp::id_t id = 1; id <= 4; ++id) pool.create(id);
    for (mtp::id_t id = 1; id <= 4; ++id) parent_thread[id] = pool.send(child_threads{id})[0];
    EXPECT_TRUE(pool.remove(2));  // one parent removed while the others live
    {
      std::lock_guard lock(g_log_mutex);
      ASSERT_EQ(g_log.size(), static_cast<std::size_t>(k_children) + 1);
      EXPECT_EQ(g_log.back().what, "parent-done");
    }
    MTP_BOUNDED([&] { pool.shutdown(); });
    EXPECT_EQ(g_children.alive(), 0u);
  }
  g_children.expect_all_died_once_on_own_thread();
  std::lock_guard lock(g_log_mutex);
  ASSERT_EQ(g_log.size(), 4u * (k_children + 1));
  for (mtp::id_t p = 1; p <= 4; ++p) {
    std::size_t done_at = g_log.size();
    int children_before = 0;
    for (std::size_t i = 0; i < g_log.size(); ++i) {
      if (g_log[i].parent != p) continue;
      if (g_log[i].what == "parent-done") {
        done_at = i;
        EXPECT_EQ(g_log[i].thread, parent_thread[p]) << "parent " << p << " destroyed on another thread";
      } else {
        EXPECT_LT(i, done_at) << "child " << g_log[i].id << " of parent " << p << " died after its parent";
        EXPECT_NE(g_log[i].thread, parent_thread[p]) << "a child died on its parent's thread, not its own";
        ++children_before;
      }
    }
    EXPECT_EQ(children_before, k_children) << "parent " << p;
  }
}

/// A parent that calls into a child pool it shares with other parents.
struct shared_parent {
  explicit shared_parent(mtp::id_t, child_pool* c) : children(c) {}
  child_pool* children;
  int ok = 0;
  int stopped = 0;
  void call_down(int rounds) {
    for (int i = 0; i < rounds; ++i) {
      try {
        (void)children->send(get{static_cast<mtp::id_t>(i % k_children)});
        ++ok;
      } catch (const mtp::pool_error& e) {
        if (e.code() == mtp::errc::pool_stopped) ++stopped;
      }
    }
  }
  int stopped_count() const { return stopped; }
  int ok_count() const { return ok; }
};

TEST_F(Hierarchy, ChildPoolStoppedWhileParentsAreBusy) {
  // A child pool shared by many parent handlers is shut down while they call into it: they
  // get pool_stopped (never a hang), and the parent pool keeps serving.
  // The 500th call down waits in its child handler until shutdown has begun, so that the child
  // pool stops part-way through, whatever the scheduling: every parent alternates between
  // the two child workers, so all of them soon wait behind the paused one.
  child_pause pause;  // outlives the child pool
  pause.at = 500;
  g_child_pause = &pause;
  auto children = std::make_unique<child_pool>(mtp_test::options(2));
  for (int c = 0; c < k_children; ++c) children->create(static_cast<mtp::id_t>(c), mtp::id_t{0}, c);
  mtp::thread_pool<shared_parent> parents(mtp_test::options(2));
  mtp_test::open_on_exit resumer(pause.resume);  // before the pools end, on every path
  for (mtp::id_t id = 0; id < 4; ++id) parents.create(id, children.get());
  // Each parent makes many calls down; the child pool stops part-way through.
  std::vector<mtp::call_t<&shared_parent::call_down>> work;
  for (mtp::id_t id = 0; id < 4; ++id) work.push_back(mtp::make_call(id, &shared_parent::call_down, 2000));
  auto running = parents.submit_batch(work);
  EXPECT_TRUE(pause.reached.wait_for(mtp_test::k_bound)) << "the calls down never reached the pause";
  auto stopping = std::async(std::launch::async, [&] { children->shutdown(); });
  EXPECT_TRUE(mtp_test::poll_until([&] {
    const auto refused = children->post(get{1});
    return refused.has_error() && refused.error().code == mtp::errc::pool_stopped;
  })) << "the child pool's shutdown did not begin";
  pause.resume.open();
  MTP_BOUNDED([&] { stopping.get(); });
  g_child_pause = nullptr;
  const auto done = MTP_BOUNDED([&] { return running.take(); });
  for (const auto& r : done) EXPECT_TRUE(r.has_value());
  int ok = 0;
  int stopped = 0;
  for (mtp::id_t id = 0; id < 4; ++id) {
    const int s = parents.call(id, &shared_parent::stopped_count);
    const int k = parents.call(id, &shared_parent::ok_count);
    EXPECT_EQ(s + k, 2000) << "a call down neither answered nor stopped";
    ok += k;
    stopped += s;
  }
  EXPECT_GT(stopped, 0) << "the child pool stopped after all calls (the test proved nothing)";
  EXPECT_EQ(g_children.alive(), 0u);
  // Parents still work, and the parent pool shuts down cleanly after its child pool.
  parents.call(1, &shared_parent::call_down, 3);
  EXPECT_EQ(parents.call(1, &shared_parent::stopped_count) + parents.call(1, &shared_parent::ok_count), 2003);
  MTP_BOUNDED([&] { parents.shutdown(); });
  g_children.expect_all_died_once_on_own_thread();
  EXPECT_EQ(ok + stopped, 8000);
}

TEST_F(Hierarchy, ParentStopsItsChildrenFromAHandlerAndShutsDownWhileBusy) {
  parent_pool pool(mtp_test::options(2));
  for (mtp::id_t id = 1; id <= 4; ++id) pool.create(id);
  pool.send(stop_children{3});  // a parent worker shuts a child pool down: allowed
  {
    std::lock_guard lock(g_log_mutex);
    EXPECT_EQ(g_log.size(), static_cast<std::size_t>(k_children)) << "child items of parent 3 not destroyed";
  }
  try {
    (void)pool.send(sum_children{3});
    ADD_FAILURE() << "a call into a stopped child pool succeeded";
  } catch (const mtp::pool_error& e) {
    EXPECT_EQ(e.code(), mtp::errc::pool_stopped);
  }
  // Many queued parent calls, each calling down; the parent pool shuts down meanwhile.
  std::vector<sum_children> work;
  for (int i = 0; i < 200; ++i) work.push_back({static_cast<mtp::id_t>(i % 2 == 0 ? 1 : 4)});
  auto running = pool.submit_batch(work);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(pool.post(sum_children{2}).has_value());
  MTP_BOUNDED([&] { pool.shutdown(); });
  const auto done = MTP_BOUNDED([&] { return running.take(); });
  for (const auto& r : done) EXPECT_EQ(r.value(), (k_children * (k_children + 1)) / 2 + 1);
  EXPECT_EQ(g_children.alive(), 0u);
  g_children.expect_all_died_once_on_own_thread();
}

}  // namespace
