// SPDX-License-Identifier: MIT
// Item lifecycle: construction, duplicate ids, throwing constructors, create_batch, remove,
// re-creation, and the one-thread-per-item guarantee.
#include "pool_test_util.hpp"

#include <atomic>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

mtp_test::lifetime_registry g_life;
std::atomic<int> g_constructions{0};

struct where_am_i {
  mtp::id_t id;
  using response_type = std::thread::id;
};
struct get_value {
  mtp::id_t id;
  using response_type = std::string;
};

/// An item that remembers its constructor's thread and reports every lifetime to g_life.
class item {
 public:
  item(mtp::id_t id, int start) : id_(id), value_(std::to_string(start)) { born(); }
  item(mtp::id_t id, std::string text, int n) : id_(id), value_(text + ":" + std::to_string(n)) { born(); }
  item(mtp::id_t id, std::unique_ptr<int> moved) : id_(id), value_("moved:" + std::to_string(*moved)) { born(); }
  /// Throws when asked to: no item may remain.
  item(mtp::id_t id, bool fail) : id_(id), value_("ok") {
    ++g_constructions;
    if (fail) throw std::runtime_error("constructor refused item " + std::to_string(id));
    g_life.born(id_);
  }
  item(const item&) = delete;
  item& operator=(const item&) = delete;
  ~item() { g_life.died(id_); }

  std::thread::id handle(const where_am_i&) const { return std::this_thread::get_id(); }
  std::string handle(const get_value&) const { return value_; }
  void handle(const mtp_test::run_fn& r) { r.fn(); }
  std::thread::id constructed_on() const { return ctor_thread_; }
  std::thread::id current_thread() { return std::this_thread::get_id(); }

 private:
  void born() {
    ++g_constructions;
    g_life.born(id_);
  }
  mtp::id_t id_;
  std::string value_;
  std::thread::id ctor_thread_ = std::this_thread::get_id();
};

using pool_t = mtp::thread_pool<item>;

class Items : public ::testing::Test {
 protected:
  void SetUp() override {
    g_life.reset();
    g_constructions = 0;
  }
};

TEST_F(Items, ConstructorHandlersAndDestructorRunOnOneThread) {
  constexpr mtp::id_t n = 24;
  std::map<mtp::id_t, std::thread::id> seen;
  {
    pool_t pool(mtp_test::options(2));
    for (mtp::id_t id = 0; id < n; ++id) pool.create(id, static_cast<int>(id));
    for (mtp::id_t id = 0; id < n; ++id) {
      const std::thread::id born = pool.call(id, &item::constructed_on);
      EXPECT_NE(born, std::this_thread::get_id());
      EXPECT_EQ(pool.send(where_am_i{id}), born) << "explicit message, id " << id;
      EXPECT_EQ(pool.call(id, &item::current_thread), born) << "method message, id " << id;
      seen[id] = born;
    }
    std::vector<where_am_i> batch;
    for (mtp::id_t id = 0; id < n; ++id) batch.push_back({id});
    const auto results = pool.send_batch(batch);
    ASSERT_EQ(results.size(), n);
    for (mtp::id_t id = 0; id < n; ++id) EXPECT_EQ(results[id].value(), seen[id]) << "batch, id " << id;
    // Ids on different workers live on different threads; ids on one worker share it.
    EXPECT_NE(seen[0], seen[1]);
    EXPECT_EQ(seen[0], seen[2]);
    for (mtp::id_t id = 0; id < n; id += 3) EXPECT_TRUE(pool.remove(id));  // destroyed by remove
  }  // the rest are destroyed by the pool's destructor
  g_life.expect_all_died_once_on_own_thread();
  for (mtp::id_t id = 0; id < n; ++id) {
    const auto r = g_life.find(id);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->born_on, seen[id]);
    EXPECT_EQ(r->died_on, seen[id]) << "id " << id << " destroyed on another thread";
  }
}

TEST_F(Items, DuplicateIdFailsWithoutRunningTheConstructorAgain) {
  pool_t pool(mtp_test::options(2));
  pool.create(7, 1);
  ASSERT_EQ(g_constructions.load(), 1);
  MTP_EXPECT_POOL_ERROR(mtp::errc::duplicate_id, pool.create(7, 2));
  const auto e = mtp_test::pool_error_of([&] { pool.create(7, 3); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->id(), 7u);
  EXPECT_TRUE(mtp_test::contains(e->what(), "7"));
  EXPECT_EQ(g_constructions.load(), 1) << "the constructor ran for a duplicate id";
  EXPECT_EQ(pool.send(get_value{7}), "1") << "the first item was replaced";
  EXPECT_EQ(pool.stats().total_items(), 1u);
}

TEST_F(Items, ThrowingConstructorGivesErrorAndNoItem) {
  pool_t pool(mtp_test::options(2));
  try {
    pool.create(5, true);
    ADD_FAILURE() << "create did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(mtp_test::contains(e.what(), "constructor refused item 5")) << e.what();
  }
  EXPECT_EQ(g_constructions.load(), 1);
  EXPECT_EQ(pool.stats().total_items(), 0u);
  MTP_EXPECT_POOL_ERROR(mtp::errc::unknown_id, pool.send(get_value{5}));
  // The id is free: a constructor that succeeds now adds the item.
  pool.create(5, false);
  EXPECT_EQ(pool.send(get_value{5}), "ok");

  // In a batch, only the failing ids fail.
  const std::vector<mtp::create_request<bool>> reqs{{10, {false}}, {11, {true}}, {12, {false}}, {13, {true}}};
  const auto results = pool.create_batch(std::span<const mtp::create_request<bool>>(reqs));
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].has_value());
  EXPECT_TRUE(results[2].has_value());
  for (std::size_t i : {1u, 3u}) {
    ASSERT_TRUE(results[i].has_error());
    EXPECT_EQ(results[i].error().code, mtp::errc::constructor_failed);
    EXPECT_EQ(results[i].error().id, reqs[i].id);
    EXPECT_TRUE(mtp_test::contains(results[i].error().message(), "constructor refused item " + std::to_string(reqs[i].id)))
        << results[i].error().message();
    EXPECT_THROW(results[i].value(), std::runtime_error);
  }
  EXPECT_EQ(pool.stats().total_items(), 3u);  // 5, 10, 12
  MTP_EXPECT_POOL_ERROR(mtp::errc::unknown_id, pool.send(get_value{11}));
}

TEST_F(Items, CreateBatchWithSharedArguments) {
  pool_t pool(mtp_test::options(2));
  const std::vector<mtp::id_t> ids{1, 2, 3, 2, 4, 5};  // 2 twice: the second is a duplicate
  const std::string text = "shared";
  const auto results = pool.create_batch(std::span<const mtp::id_t>(ids), text, 9);
  ASSERT_EQ(results.size(), ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i == 3) {
      ASSERT_TRUE(results[i].has_error());
      EXPECT_EQ(results[i].error().code, mtp::errc::duplicate_id);
      EXPECT_EQ(results[i].error().id, 2u);
    } else {
      EXPECT_TRUE(results[i].has_value()) << "i=" << i;
    }
  }
  EXPECT_EQ(g_constructions.load(), 5);
  for (mtp::id_t id : {1, 2, 3, 4, 5}) EXPECT_EQ(pool.send(get_value{id}), "shared:9");
  EXPECT_EQ(text, "shared") << "shared arguments must be copied, not moved from";
}

TEST_F(Items, EmptyCreateAndRemoveBatchesReturnAtOnce) {
  pool_t pool(mtp_test::options(2));
  const auto created = MTP_BOUNDED([&] { return pool.create_batch(std::span<const mtp::id_t>(), 1); });
  EXPECT_TRUE(created.empty());
  const auto removed = MTP_BOUNDED([&] { return pool.remove_batch(std::span<const mtp::id_t>()); });
  EXPECT_TRUE(removed.empty());
  EXPECT_EQ(g_constructions.load(), 0);
}

TEST_F(Items, CreateBatchWithCreateRequests) {
  pool_t pool(mtp_test::options(2));
  std::vector<mtp::create_request<std::string, int>> reqs;
  // Built with += rather than "n" + std::to_string(...): g++ 12 raises a false -Wrestrict there.
  auto label = [](mtp::id_t id) {
    std::string s = "n";
    s += std::to_string(id);
    return s;
  };
  for (mtp::id_t id = 100; id < 140; ++id) reqs.push_back({id, {label(id), static_cast<int>(id * 2)}});
  const auto results = pool.create_batch(std::span<const mtp::create_request<std::string, int>>(reqs));
  ASSERT_EQ(results.size(), reqs.size());
  for (const auto& r : results) EXPECT_TRUE(r.has_value());
  for (mtp::id_t id = 100; id < 140; ++id) {
    EXPECT_EQ(pool.send(get_value{id}), label(id) + ":" + std::to_string(id * 2));
  }
  EXPECT_EQ(pool.stats().total_items(), 40u);
}

TEST_F(Items, CreateMovesRvalueArguments) {
  pool_t pool(mtp_test::options(2));
  pool.create(3, std::make_unique<int>(42));
  EXPECT_EQ(pool.send(get_value{3}), "moved:42");
}

TEST_F(Items, RemoveMissingIdAndRecreateAfterRemove) {
  pool_t pool(mtp_test::options(2));
  EXPECT_FALSE(pool.remove(77));
  pool.create(77, 1);
  EXPECT_TRUE(pool.remove(77));
  EXPECT_FALSE(pool.remove(77)) << "removed twice";
  MTP_EXPECT_POOL_ERROR(mtp::errc::unknown_id, pool.send(get_value{77}));
  auto r = g_life.find(77);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->destroyed, 1);
  EXPECT_FALSE(r->alive);

  pool.create(77, 2);  // same id again: a fresh item
  EXPECT_EQ(pool.send(get_value{77}), "2");
  r = g_life.find(77);
  EXPECT_EQ(r->constructed, 2);
  EXPECT_TRUE(r->alive);

  const std::vector<mtp::id_t> ids{77, 78, 77};
  const auto results = pool.remove_batch(std::span<const mtp::id_t>(ids));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].has_value());
  ASSERT_TRUE(results[1].has_error());
  EXPECT_EQ(results[1].error().code, mtp::errc::unknown_id);
  EXPECT_EQ(results[1].error().id, 78u);
  ASSERT_TRUE(results[2].has_error()) << "second remove of 77 in one batch must find it gone";
  EXPECT_EQ(results[2].error().code, mtp::errc::unknown_id);
  EXPECT_EQ(pool.stats().total_items(), 0u);
  EXPECT_EQ(g_life.alive(), 0u);
  g_life.expect_all_died_once_on_own_thread();
}

TEST_F(Items, RequestsAfterCreateSeeTheItemAndRemoveRunsAfterQueuedMessages) {
  // From one thread: create, posts, remove, create again run in the order sent.
  pool_t pool(mtp_test::options(2));
  std::atomic<int> ran{0};
  pool.create(9, 0);
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(pool.post(mtp_test::run_fn{9, [&ran] { ran.fetch_add(1, std::memory_order_relaxed); }}));
  }
  EXPECT_TRUE(pool.remove(9));
  EXPECT_EQ(ran.load(), 100) << "remove overtook messages queued before it";
}

TEST_F(Items, MessagesQueuedWhenTheItemIsRemovedGetUnknownId) {
  // One thread removes the item while another keeps sending to it. Each of the sender's
  // requests either ran before the remove (a value) or after it (unknown_id), and since one
  // sender's messages run in order, once one says unknown_id all later ones do too.
  pool_t pool(mtp_test::options(2));
  pool.create(5, 7);
  constexpr int k_requests = 20000;
  std::vector<mtp::result<std::string>> results;
  std::atomic<bool> sending{false};
  std::thread sender([&] {
    std::vector<get_value> one{{5}};
    results.reserve(k_requests);
    sending.store(true, std::memory_order_release);
    for (int i = 0; i < k_requests; ++i) results.push_back(std::move(pool.send_batch(one)[0]));
  });
  {
    mtp_test::join_on_exit joiner(sender);  // also when remove throws
    while (!sending.load(std::memory_order_acquire)) std::this_thread::yield();
    EXPECT_TRUE(MTP_BOUNDED([&] { return pool.remove(5); }));
  }
  ASSERT_EQ(results.size(), static_cast<std::size_t>(k_requests));
  bool gone = false;
  int answered = 0;
  for (int i = 0; i < k_requests; ++i) {
    if (results[i].has_value()) {
      ++answered;
      EXPECT_FALSE(gone) << "request " << i << " ran after an earlier one found the item removed";
      EXPECT_EQ(results[i].value(), "7");
    } else {
      ASSERT_EQ(results[i].error().code, mtp::errc::unknown_id) << results[i].error().message();
      gone = true;
    }
  }
  RecordProperty("answered_before_remove", answered);  // where the remove landed, for the record
  EXPECT_EQ(pool.send_batch(std::vector<get_value>{{5}})[0].error().code, mtp::errc::unknown_id);
  const auto life = g_life.find(5);
  ASSERT_TRUE(life.has_value());
  EXPECT_EQ(life->destroyed, 1);
  EXPECT_TRUE(g_life.errors().empty());
}

}  // namespace
