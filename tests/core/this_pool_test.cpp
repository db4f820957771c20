// SPDX-License-Identifier: MIT
// mtp::this_pool(): a handler reaches the pool that runs it (to post to siblings), after a
// move too; clear errors off the pool's workers, on a worker of another pool type, and once
// an item has destroyed the pool object; pool_stopped during shutdown.
#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "pool_test_util.hpp"

namespace {

struct deposit {
  mtp::id_t id;
  long amount;
  using response_type = void;
};
struct transfer {  // moves `amount` from item `id` to item `to`
  mtp::id_t id;
  mtp::id_t to;
  long amount;
  using response_type = void;
};
struct balance {
  mtp::id_t id;
  using response_type = long;
};
struct where_am_i {  // the address of the pool object this_pool() names
  mtp::id_t id;
  using response_type = std::uintptr_t;
};
struct ask_own_worker {  // a blocking send from a handler to an item on its own worker
  mtp::id_t id;
  mtp::id_t to;
  using response_type = std::string;
};

std::atomic<int> g_destructor_stopped{0};  // destructor posts through this_pool answered pool_stopped
std::atomic<int> g_destructor_other{0};

class account {
 public:
  explicit account(mtp::id_t id, long start = 0, bool post_when_destroyed = false)
      : id_(id), balance_(start), post_(post_when_destroyed) {}
  account(const account&) = delete;
  account& operator=(const account&) = delete;
  ~account() {
    if (!post_) return;
    const mtp::result<void> r = mtp::this_pool<account>().post(deposit{id_ ^ 1, 1});
    if (r.has_error() && r.error().code == mtp::errc::pool_stopped) g_destructor_stopped.fetch_add(1);
    else g_destructor_other.fetch_add(1);
  }
  void handle(const deposit& d) { balance_ += d.amount; }
  void handle(const transfer& t) {
    balance_ -= t.amount;
    const mtp::result<void> sent = mtp::this_pool<account>().post(deposit{t.to, t.amount});
    if (!sent) balance_ += t.amount;  // not sent: keep the money
  }
  [[nodiscard]] long handle(const balance&) const { return balance_; }
  static std::uintptr_t handle(const where_am_i&) {
    return reinterpret_cast<std::uintptr_t>(&mtp::this_pool<account>());
  }
  static std::string handle(const ask_own_worker& a) {
    try {
      (void)mtp::this_pool<account>().send(balance{a.to});
      return "no error";
    } catch (const mtp::pool_error& e) {
      return mtp::to_string(e.code());
    }
  }

 private:
  mtp::id_t id_;
  long balance_;
  bool post_;
};

TEST(ThisPool, AHandlerPostsToASiblingThroughThePoolThatRunsIt) {
  mtp::thread_pool<account> pool(mtp_test::options(2));
  pool.create(1, 100L);
  pool.create(2, 0L);
  for (int i = 0; i < 10; ++i) pool.send(transfer{1, 2, 7});
  // The deposits were posted before each transfer answered: causal order puts them first.
  EXPECT_EQ(pool.send(balance{1}), 30);
  EXPECT_EQ(pool.send(balance{2}), 70);
}

TEST(ThisPool, NamesTheNewObjectAfterAMove) {
  mtp::thread_pool<account> first(mtp_test::options(2));
  first.create(1);
  EXPECT_EQ(first.send(where_am_i{1}), reinterpret_cast<std::uintptr_t>(&first));
  mtp::thread_pool<account> second(std::move(first));
  EXPECT_EQ(second.send(where_am_i{1}), reinterpret_cast<std::uintptr_t>(&second));
  auto third = std::make_unique<mtp::thread_pool<account>>(mtp_test::options(1));
  *third = std::move(second);  // move assignment: ends the pool third had, adopts this one
  EXPECT_EQ(third->send(where_am_i{1}), reinterpret_cast<std::uintptr_t>(third.get()));
}

TEST(ThisPool, OffTheWorkersItThrowsLogicErrorNamingTheProblem) {
  mtp::thread_pool<account> pool(mtp_test::options(1));
  try {
    (void)mtp::this_pool<account>();
    ADD_FAILURE() << "no exception";
  } catch (const std::logic_error& e) {
    EXPECT_TRUE(mtp_test::contains(e.what(), "not a worker of any pool")) << e.what();
    EXPECT_TRUE(mtp_test::contains(e.what(), "account")) << e.what();
  }
}

// An item of another pool type that asks for the account pool.
struct probe {
  mtp::id_t id;
  using response_type = std::string;
};
class stranger {
 public:
  explicit stranger(mtp::id_t) {}
  static std::string handle(const probe&) {
    try {
      (void)mtp::this_pool<account>();
      return "no error";
    } catch (const std::logic_error& e) {
      return e.what();
    }
  }
};

TEST(ThisPool, OnAWorkerOfAnotherPoolTypeItThrowsLogicError) {
  mtp::thread_pool<stranger> pool(mtp_test::options(1));
  pool.create(1);
  const std::string what = pool.send(probe{1});
  EXPECT_TRUE(mtp_test::contains(what, "another kind of pool")) << what;
  EXPECT_TRUE(mtp_test::contains(what, "stranger")) << what;
}

// A pool with hooks is named with its hooks type, from a handler and from a hook alike.
std::atomic<int> g_hook_found_pool{0};
struct named_with_hooks {
  mtp::id_t id;
  using response_type = bool;
};
class hooked {
 public:
  explicit hooked(mtp::id_t) {}
  static bool handle(const named_with_hooks&);
};
struct hooked_hooks {
  void on_worker_start(std::size_t) {
    (void)mtp::this_pool<hooked, hooked_hooks>();  // throws (and fails the test) if it cannot
    g_hook_found_pool.fetch_add(1);
  }
};
bool hooked::handle(const named_with_hooks&) {
  (void)mtp::this_pool<hooked, hooked_hooks>();
  try {
    (void)mtp::this_pool<hooked>();  // without its hooks: another pool type
    return false;
  } catch (const std::logic_error&) {
    return true;
  }
}

TEST(ThisPool, APoolWithHooksIsNamedWithThem) {
  g_hook_found_pool = 0;
  mtp::thread_pool<hooked, hooked_hooks> pool(mtp_test::options(2));
  pool.create(1);
  EXPECT_TRUE(pool.send(named_with_hooks{1}));
  // Each worker ran its hook before its first message; both have run one by now (create
  // went to one, and the other is checked by a message to an id on it).
  pool.create(2);
  EXPECT_TRUE(pool.send(named_with_hooks{2}));
  EXPECT_EQ(g_hook_found_pool.load(), 2);
}

TEST(ThisPool, ABlockingSendToItsOwnWorkerIsWouldDeadlock) {
  mtp::thread_pool<account> pool(mtp_test::options(2));
  pool.create(0);
  pool.create(2);  // with two workers, ids 0 and 2 share worker 0
  EXPECT_EQ(pool.send(ask_own_worker{0, 2}), "would_deadlock");
}

TEST(ThisPool, DuringShutdownCallsThroughItGetPoolStopped) {
  g_destructor_stopped = g_destructor_other = 0;
  {
    mtp::thread_pool<account> pool(mtp_test::options(2));
    for (mtp::id_t id = 0; id < 6; ++id) pool.create(id, 0L, true);
  }  // each destructor posts through this_pool() during ~thread_pool
  EXPECT_EQ(g_destructor_stopped.load(), 6);
  EXPECT_EQ(g_destructor_other.load(), 0);
}

// An item that holds the last owner of its own pool and drops it.
class keeper;
using keeper_pool = mtp::thread_pool<keeper>;
struct adopt {
  mtp::id_t id;
  std::shared_ptr<keeper_pool>* from;
  using response_type = void;
};
struct drop_and_ask {
  mtp::id_t id;
  using response_type = void;
};
mtp_test::gate* g_asked = nullptr;
std::string g_after_drop;  // written by the handler before it opens g_asked

class keeper {
 public:
  explicit keeper(mtp::id_t) {}
  void handle(const adopt& a) { pool_ = std::move(*a.from); }
  void handle(const drop_and_ask&) {
    pool_.reset();  // the last owner: the pool object is destroyed here, on its own worker
    try {
      (void)mtp::this_pool<keeper>();
      g_after_drop = "no error";
    } catch (const mtp::pool_error& e) {
      g_after_drop = mtp::to_string(e.code());
    }
    g_asked->open();
  }

 private:
  std::shared_ptr<keeper_pool> pool_;
};

TEST(ThisPool, AfterAnItemDestroyedThePoolObjectItThrowsPoolStopped) {
  mtp_test::gate asked;
  g_asked = &asked;
  auto pool = std::make_shared<keeper_pool>(mtp_test::options(2));
  pool->create(1);
  keeper_pool* const raw = pool.get();
  raw->send(adopt{1, &pool});
  ASSERT_EQ(pool, nullptr);
  ASSERT_TRUE(raw->post(drop_and_ask{1}).has_value());
  ASSERT_TRUE(asked.wait_for(mtp_test::k_bound));
  EXPECT_EQ(g_after_drop, "pool_stopped");
}

}  // namespace
