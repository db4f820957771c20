// SPDX-License-Identifier: MIT
// mtp::mpi::sharded_pool across ranks: run under mpirun with 2, 3 and 4 ranks.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <mtp/core/awaitable.hpp>
#include <mtp/core/concepts.hpp>
#include <mtp/mpi/impl/thread_scratch.hpp>
#include <mtp/mpi/sharded_pool.hpp>

#include "items.hpp"
#include "run_loop.hpp"

namespace {
using namespace mtp_mpi_test;
using mtp::errc;
using pool_t = mtp::mpi::sharded_pool<item>;

int g_rank = 0;

#define MTP_MPI_EXPECT_CODE(code_, ...)                 \
  do {                                                  \
    try {                                               \
      (void)(__VA_ARGS__);                              \
      ADD_FAILURE() << "no pool_error thrown";          \
    } catch (const mtp::pool_error& e) {                \
      EXPECT_EQ(e.code(), code_) << e.what();           \
    }                                                   \
  } while (false)

mtp::mpi::sharded_options small() {
  mtp::mpi::sharded_options o;
  o.local.workers = 2;
  o.local.stall_threshold = std::chrono::nanoseconds(0);
  return o;
}

// Polls `pred` (1 ms apart) until it holds or 30 s pass; returns whether it held.
template <class P>
bool poll_until(P pred) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Waits for a callback.
struct latch {
  std::mutex m;
  std::condition_variable cv;
  int left;
  explicit latch(int n) : left(n) {}
  void count_down() {
    std::lock_guard l(m);
    if (--left == 0) cv.notify_all();
  }
  void wait() {
    std::unique_lock l(m);
    cv.wait(l, [&] { return left == 0; });
  }
};

// An asynchronous call's callback: what it got, on which thread, and whether that thread was a
// pool worker. get() waits for it.
template <class V>
struct completion {
  std::promise<V> value;
  std::thread::id thread;
  bool on_worker = false;
  auto callback() {
    return [this](V&& v) {
      thread = std::this_thread::get_id();
      on_worker = mtp::this_worker::is_worker();
      value.set_value(std::move(v));
    };
  }
  V get() { return value.get_future().get(); }
};

// "ok", or the error's code: what the checks of results compare (safe on either).
template <class T>
std::string code_of(const mtp::result<T>& r) {
  return r.has_value() ? std::string("ok") : std::string(mtp::to_string(r.error().code));
}
}  // namespace

// The gate that hold waits on and release opens, one per process.
struct hold_gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  void reset() {
    std::lock_guard l(m);
    open = false;
  }
  int release() {
    std::lock_guard l(m);
    open = true;
    cv.notify_all();
    return 1;
  }
  int wait() {
    std::unique_lock l(m);
    return cv.wait_for(l, std::chrono::seconds(30), [&] { return open; }) ? 1 : 0;
  }
} g_hold;

mtp_mpi_test::item::item(mtp::id_t id, const hold&) : item(id, 0L, "held") { total_ = g_hold.wait(); }
int mtp_mpi_test::item::handle(const where&) const { return g_rank; }
int mtp_mpi_test::item::handle(const hold&) { return g_hold.wait(); }
int mtp_mpi_test::item::handle(const release&) { return g_hold.release(); }
int mtp_mpi_test::item::handle(const slow& s) {
  std::this_thread::sleep_for(std::chrono::microseconds(s.micros));
  return s.micros;
}

std::atomic<const pool_t*> g_this_pool{nullptr};  // the pool forward's handler expects to find
int mtp_mpi_test::item::handle(const forward& f) {
  pool_t& pool = mtp::mpi::this_pool<item>();
  pool.post(add{f.to, f.amount}).value();
  return &pool == g_this_pool.load() ? 1 : 0;
}
int mtp_mpi_test::item::handle(const relay& r) { return mtp::mpi::this_pool<item>().send(boom{r.to}); }
void mtp_mpi_test::item::handle(const hop& h) {
  ++total_;
  if (h.left > 0) (void)mtp::mpi::this_pool<item>().post(hop{(h.id + 1) % h.items, h.items, h.left - 1});
}
int mtp_mpi_test::item::handle(const quiesce_inside&) {
  try {
    mtp::mpi::this_pool<item>().quiesce();
    return 0;
  } catch (const mtp::pool_error& e) {
    return static_cast<int>(e.code());
  }
}

TEST(Sharded, ItemsReachTheirOwnPoolWithThisPool) {
  pool_t other(small());  // a second pool of the same item type: each item must find its own
  pool_t pool(small());
  g_this_pool = &pool;
  const int ranks = pool.ranks();
  const mtp::id_t n = static_cast<mtp::id_t>(2 * ranks);
  if (pool.rank() == 0) {
    for (mtp::id_t i = 0; i < n; ++i) pool.create(i, 0L);
  }
  pool.barrier();
  // Every rank makes every item pass 5 to the next one, wherever it lives.
  std::vector<forward> passes;
  for (mtp::id_t i = 0; i < n; ++i) passes.push_back({i, (i + 1) % n, 5});
  for (const auto& r : pool.send_batch(passes)) EXPECT_EQ(r.value(), 1);
  // The posts travel on their own: wait until every item has its share from every rank.
  std::vector<get> gets;
  for (mtp::id_t i = 0; i < n; ++i) gets.push_back({i});
  EXPECT_TRUE(poll_until([&] {
    for (const auto& r : pool.send_batch(gets)) {
      if (r.value() != 5L * ranks) return false;
    }
    return true;
  }));
  pool.barrier();
  // On a plain pool's worker it names the problem.
  mtp::thread_pool<item> plain(small().local);
  plain.create(1, 0L);
  EXPECT_THROW((void)plain.send(forward{1, 1, 5}), std::logic_error);
  pool.barrier();
}

// Timers forward to the owning rank; a remote cancellation arrives before later messages.
TEST(Sharded, TimersFireOnTheOwningRankAndCancelAcrossRanks) {
  using namespace std::chrono_literals;
  pool_t pool(small());
  const int ranks = pool.ranks();
  const mtp::id_t n = static_cast<mtp::id_t>(2 * ranks);
  if (pool.rank() == 0) {
    for (mtp::id_t i = 0; i < n; ++i) pool.create(i, 0L);
  }
  pool.barrier();
  std::vector<mtp::mpi::sharded_timer> timers;
  for (mtp::id_t i = 0; i < n; ++i) timers.push_back(pool.post_after(2ms, add{i, 1}));
  std::vector<get> gets;
  for (mtp::id_t i = 0; i < n; ++i) gets.push_back({i});
  EXPECT_TRUE(poll_until([&] {
    for (const auto& r : pool.send_batch(gets)) {
      if (r.value() != ranks) return false;
    }
    return true;
  })) << "every rank's timer reached every item";
  EXPECT_THROW((void)pool.post_every(0ms, add{0, 1}), std::invalid_argument);
  pool.barrier();
  // Rank 0 ticks an item on the last rank, then cancels: no tick runs after the reply that
  // follows the cancellation.
  if (pool.rank() == 0 && ranks > 1) {
    const mtp::id_t remote = static_cast<mtp::id_t>(ranks - 1);  // id % ranks == ranks - 1
    mtp::mpi::sharded_timer every = pool.post_every(1ms, add{remote, 1});
    EXPECT_TRUE(poll_until([&] { return pool.send(get{remote}) >= ranks + 3; }));
    EXPECT_TRUE(every.cancel());
    const long after = pool.send(get{remote});
    mtp::mpi::sharded_timer probe = pool.post_after(20ms, add{remote, 1000});
    EXPECT_TRUE(poll_until([&] { return pool.send(get{remote}) >= after + 1000; }));
    EXPECT_EQ(pool.send(get{remote}), after + 1000) << "a tick ran after the cancellation";
  }
  pool.barrier();
}

TEST(Sharded, ItemsLiveOnTheirRank) {
  pool_t pool(small());
  const int ranks = pool.ranks();
  if (pool.rank() == 0) {
    std::vector<mtp::id_t> ids;
    for (mtp::id_t i = 0; i < 40; ++i) ids.push_back(i);
    for (const auto& r : pool.create_batch(ids, 10L)) ASSERT_TRUE(r.has_value());
  }
  pool.barrier();
  std::vector<where> w;
  for (mtp::id_t i = 0; i < 40; ++i) w.push_back({i});
  const auto rs = pool.send_batch(w);
  ASSERT_EQ(rs.size(), 40u);
  for (mtp::id_t i = 0; i < 40; ++i) EXPECT_EQ(rs[i].value(), static_cast<int>(i % ranks)) << i;
  EXPECT_EQ(pool.send(where{static_cast<mtp::id_t>(ranks - 1)}), ranks - 1);
  pool.barrier();
  // every rank adds rank+1 to every item, one batch each; then the totals agree
  std::vector<add> adds;
  for (mtp::id_t i = 0; i < 40; ++i) adds.push_back({i, pool.rank() + 1});
  for (const auto& r : pool.send_batch(adds)) ASSERT_TRUE(r.has_value());
  pool.barrier();
  const long expect = 10 + ranks * (ranks + 1) / 2;
  std::vector<get> gets;
  for (mtp::id_t i = 0; i < 40; ++i) gets.push_back({i});
  for (const auto& r : pool.send_batch(gets)) EXPECT_EQ(r.value(), expect);
  pool.barrier();
}

TEST(Sharded, CreateRemoveAndErrorCodesAcrossRanks) {
  pool_t pool(small());
  const mtp::id_t remote = static_cast<mtp::id_t>((pool.rank() + 1) % pool.ranks()) + 1000 * (pool.rank() + 1) *
                                                                                           static_cast<mtp::id_t>(pool.ranks());
  ASSERT_EQ(pool.rank_of(remote), (pool.rank() + 1) % pool.ranks());
  pool.create(remote, 5L, std::string("named"));
  // duplicate
  try {
    pool.create(remote, 1L);
    FAIL() << "no duplicate_id";
  } catch (const mtp::pool_error& e) {
    EXPECT_EQ(e.code(), errc::duplicate_id);
    EXPECT_EQ(e.id(), remote);
  }
  // the constructor throws on the other rank
  try {
    pool.create(remote + static_cast<mtp::id_t>(pool.ranks()), -1L, std::string("bad"));
    FAIL() << "no exception";
  } catch (const mtp::mpi::remote_error& e) {
    EXPECT_EQ(e.type_name(), "std::domain_error");
    EXPECT_EQ(e.remote_what(), "negative start for bad");
    EXPECT_EQ(e.rank(), pool.rank_of(remote));
  }
  const auto made = pool.create_batch(std::vector<mtp::id_t>{remote, remote + 2 * static_cast<mtp::id_t>(pool.ranks())}, -3L);
  EXPECT_EQ(made[0].error().code, errc::duplicate_id);
  EXPECT_EQ(made[1].error().code, errc::constructor_failed);
  EXPECT_THROW(std::rethrow_exception(made[1].error().exception), mtp::mpi::remote_error);
  // the cereal path
  EXPECT_EQ(pool.send(note{remote, "a"}), (std::vector<std::string>{"named:a"}));
  EXPECT_EQ(pool.send(note{remote, "b"}), (std::vector<std::string>{"named:a", "named:b"}));
  // handler throws
  try {
    (void)pool.send(boom{remote});
    FAIL() << "no exception";
  } catch (const mtp::mpi::remote_error& e) {
    EXPECT_EQ(e.type_name(), "std::invalid_argument");
    EXPECT_EQ(e.remote_what(), "boom " + std::to_string(remote));
    EXPECT_EQ(std::string(e.what()), "std::invalid_argument: boom " + std::to_string(remote));
  }
  const auto mixed = pool.send_batch(std::vector<boom>{{remote}, {remote + 1}});
  EXPECT_EQ(mixed[0].error().code, errc::handler_failed);
  EXPECT_EQ(mixed[1].error().code, errc::unknown_id);
  EXPECT_EQ(mixed[1].error().id, remote + 1);
  // unknown id, single form
  try {
    (void)pool.send(get{remote + 1});
    FAIL();
  } catch (const mtp::pool_error& e) {
    EXPECT_EQ(e.code(), errc::unknown_id);
  }
  // the item still works after its handler threw; remove, then it is unknown
  EXPECT_EQ(pool.send(add{remote, 1}), 6);
  EXPECT_TRUE(pool.remove(remote));
  EXPECT_FALSE(pool.remove(remote));
  EXPECT_EQ(pool.send_batch(std::vector<get>{{remote}})[0].error().code, errc::unknown_id);
  pool.barrier();
}

// A remote create runs on the owning rank's local pool like any other message: while one
// constructor waits, the same source rank's other messages (a create on another worker, a
// request) are served. Rank 0's item 1 (on rank 1) waits in its constructor for the release
// that rank 0 then sends to another item on rank 1.
TEST(Sharded, ARemoteCreateHoldsUpNoOtherMessage) {
  auto o = small();
  o.router = [](mtp::id_t id, int ranks) { return static_cast<int>((id / 8) % static_cast<mtp::id_t>(ranks)); };
  pool_t pool(std::move(o));
  g_hold.reset();
  pool.barrier();
  if (pool.rank() == 0) {
    const mtp::id_t held = 8;  // on rank 1, as the ids up to 15
    mtp::id_t other = held + 1;  // on the other worker (rank 1's local pool routes as this one)
    while (other < 16 && pool.local().worker_of(other) == pool.local().worker_of(held)) ++other;
    if (other == 16) {
      ADD_FAILURE() << "ids 8 to 15 all route to one worker";
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      auto creating = std::async(std::launch::async, [&] { pool.create(held, hold{held}); });
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // its constructor waits by now
      pool.create(other, 0L);
      EXPECT_EQ(pool.send(release{other}), 1);
      creating.get();
      EXPECT_EQ(pool.send(get{held}), 1) << "the constructor was released, not timed out";
      EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
    }
  }
  pool.barrier();
}

// Per-sender order through remote creates and removes: a message sent right after a create
// (or remove) returns finds the item built (or gone); two threads on every rank, 100 times each.
TEST(Sharded, MessagesRightAfterARemoteCreateFindTheItem) {
  pool_t pool(small());
  const auto ranks = static_cast<mtp::id_t>(pool.ranks());
  const auto me = static_cast<mtp::id_t>(pool.rank());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (mtp::id_t t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      // Ids on the next rank, apart for each rank and thread.
      const mtp::id_t id = (me + 1) % ranks + ranks * (1 + me * 2 + t);
      for (int i = 0; i < 100; ++i) {
        pool.create(id, 10L);
        if (pool.post(add{id, 1}).has_error()) ++failures;
        if (pool.send(get{id}) != 11) ++failures;
        if (!pool.remove(id)) ++failures;
        if (pool.send_batch(std::vector<get>{{id}})[0].error().code != errc::unknown_id) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  pool.barrier();
}

TEST(Sharded, RouterAndInvalidRoute) {
  auto o = small();
  o.router = [](mtp::id_t id, int ranks) { return id >= 1000000 ? -1 : static_cast<int>((id / 10) % ranks); };
  pool_t pool(std::move(o));
  if (pool.rank() == 0) {
    for (mtp::id_t i = 0; i < 30; ++i) pool.create(i, 0L);
  }
  pool.barrier();
  for (mtp::id_t i = 0; i < 30; ++i) EXPECT_EQ(pool.send(where{i}), static_cast<int>((i / 10) % pool.ranks()));
  const auto rs = pool.send_batch(std::vector<get>{{1}, {1000001}, {25}});
  EXPECT_TRUE(rs[0].has_value());
  EXPECT_EQ(rs[1].error().code, errc::invalid_route);
  EXPECT_TRUE(rs[2].has_value());
  EXPECT_EQ(pool.post(add{1000002, 1}).error().code, errc::invalid_route);
  EXPECT_THROW((void)pool.rank_of(1000003), mtp::pool_error);
  pool.barrier();
}

TEST(Sharded, AsyncForms) {
  pool_t pool(small());
  if (pool.rank() == 0) {
    std::vector<mtp::id_t> ids;
    for (mtp::id_t i = 0; i < 16; ++i) ids.push_back(i);
    (void)pool.create_batch(ids, 0L);
  }
  pool.barrier();
  latch done(2);
  std::vector<mtp::result<long>> got;
  std::vector<add> adds;
  for (mtp::id_t i = 0; i < 16; ++i) adds.push_back({i, static_cast<long>(i)});
  adds.push_back({99, 1});  // unknown
  (void)pool.send_batch_async(adds, [&](std::vector<mtp::result<long>>&& rs) {
    got = std::move(rs);
    done.count_down();
  });
  mtp::result<int> one;
  (void)pool.send_async(boom{3}, [&](mtp::result<int>&& r) {
    one = std::move(r);
    done.count_down();
  });
  done.wait();
  ASSERT_EQ(got.size(), 17u);
  for (mtp::id_t i = 0; i < 16; ++i) EXPECT_TRUE(got[i].has_value());
  EXPECT_EQ(got[16].error().code, errc::unknown_id);
  EXPECT_EQ(one.error().code, errc::handler_failed);
  // A batch whose every request is remote completes on the communication thread, where a
  // blocking call would wait for itself: it fails with would_deadlock instead.
  const mtp::id_t remote = static_cast<mtp::id_t>((pool.rank() + 1) % pool.ranks());
  latch inner(1);
  errc inner_code = errc::unknown_id;
  (void)pool.send_async(get{remote}, [&](mtp::result<long>&& r) {
    EXPECT_TRUE(r.has_value());
    try {
      (void)pool.send(get{remote});
    } catch (const mtp::pool_error& e) {
      inner_code = e.code();
    }
    inner.count_down();
  });
  inner.wait();
  EXPECT_EQ(inner_code, errc::would_deadlock);
  pool.barrier();
  // every rank added i to item i: the totals agree
  for (mtp::id_t i = 0; i < 16; ++i) EXPECT_EQ(pool.send(get{i}), static_cast<long>(i) * pool.ranks());
  pool.barrier();
}

// A caller waiting for a remote reply makes MPI progress itself: its request leaves and its
// reply arrives with no thread hand-off. Meanwhile it delivers whatever else has arrived, the
// replies of asynchronous calls included, whose callbacks then run on it: they keep the
// communication thread's rules wherever they run (a blocking call from one fails with
// would_deadlock instead of waiting for itself, also on the waiting caller, which holds the
// progress), and every call completes once.
TEST(Sharded, AWaitingCallerMakesProgressUnderTheCommunicationThreadsRules) {
  pool_t pool(small());
  if (pool.rank() == 0) {
    std::vector<mtp::id_t> ids;
    for (int r = 0; r < pool.ranks(); ++r) ids.push_back(static_cast<mtp::id_t>(r));
    for (const auto& r : pool.create_batch(ids, 0L)) ASSERT_TRUE(r.has_value());
  }
  pool.barrier();
  const mtp::id_t remote = static_cast<mtp::id_t>((pool.rank() + 1) % pool.ranks());
  const mtp::mpi::impl::progress_counts before = mtp::mpi::impl::progress_counts_now();
  constexpr int k_async = 200;
  std::atomic<int> refused{0}, otherwise{0}, left{k_async};
  for (int i = 0; i < k_async; ++i) {
    (void)pool.send_async(add{remote, 1}, [&](mtp::result<long>&& r) {
      EXPECT_TRUE(r.has_value());
      try {
        (void)pool.send(get{remote});
        otherwise.fetch_add(1);
      } catch (const mtp::pool_error& e) {
        (e.code() == errc::would_deadlock ? refused : otherwise).fetch_add(1);
      }
      left.fetch_sub(1);
    });
  }
  // Blocking round trips meanwhile (at least 500, and on until every callback has run: this
  // thread delivers some of them), each seeing every add of this rank that completed before.
  long last = 0;
  for (int i = 0; i < 500 || left.load() > 0; ++i) {
    ASSERT_LT(i, 1'000'000) << left.load() << " callbacks never ran";
    const long now = pool.send(get{remote});
    EXPECT_GE(now, last);
    last = now;
  }
  EXPECT_EQ(refused.load(), k_async);
  EXPECT_EQ(otherwise.load(), 0);
  const mtp::mpi::impl::progress_counts after = mtp::mpi::impl::progress_counts_now();
  // Of hundreds of round trips, some requests went out from this thread and some replies were
  // taken by it (the communication thread does the rest when it holds the progress lock).
  EXPECT_GT(after.sent_by_queuer, before.sent_by_queuer);
  EXPECT_GT(after.delivered_by_caller, before.delivered_by_caller);
  // A timed caller waits the same way.
  for (int i = 0; i < 500; ++i) {
    const auto r = pool.send_batch(std::vector<get>{get{remote}}, std::chrono::seconds(30));
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].value(), static_cast<long>(k_async));  // every add of this rank has run
  }
  const mtp::mpi::impl::progress_counts timed = mtp::mpi::impl::progress_counts_now();
  EXPECT_GT(timed.sent_by_queuer, after.sent_by_queuer);
  EXPECT_GT(timed.delivered_by_caller, after.delivered_by_caller);
  pool.barrier();
  EXPECT_EQ(pool.send(get{remote}), static_cast<long>(k_async));  // each rank added k_async to its next rank's item
  pool.barrier();
}

// pool.call<&item::member>(id, args...) reaches the item wherever it lives, arguments and
// results crossing ranks as bytes or through cereal.
TEST(Sharded, MethodCallsAcrossRanks) {
  pool_t pool(small());
  const long ranks = pool.ranks();
  if (pool.rank() == 0) {
    for (mtp::id_t i = 0; i < 8; ++i) pool.create(i, 3L);
  }
  pool.barrier();
  for (mtp::id_t i = 0; i < 8; ++i) {
    EXPECT_EQ(pool.call<&item::scaled>(i, 2L), 6L) << i;
    EXPECT_EQ(pool.call<&item::named>(i, std::string("!")), "item!") << i;
  }
  pool.barrier();
  for (mtp::id_t i = 0; i < 8; ++i) pool.call<&item::bump>(i);  // every rank bumps every item
  pool.barrier();
  for (mtp::id_t i = 0; i < 8; ++i) EXPECT_EQ(pool.call<&item::scaled>(i, 1L), 3 + ranks) << i;
  const mtp::id_t unknown = 100 + static_cast<mtp::id_t>((pool.rank() + 1) % pool.ranks());
  try {
    (void)pool.call<&item::scaled>(unknown, 1L);
    ADD_FAILURE() << "a call to an unknown id returned";
  } catch (const mtp::pool_error& e) {
    EXPECT_EQ(e.code(), errc::unknown_id);
  }
  pool.barrier();
}

// Items 10 (worker 0) and 11 (worker 1) live on rank 1, items 0 and 1 on rank 0. A hold on
// item 10 keeps its worker busy until a release reaches rank 1; rank 1 receives what rank 0
// sends in order, so a withdrawal sent before the release is there first.
mtp::mpi::sharded_options by_tens() {
  auto o = small();
  o.router = [](mtp::id_t id, int ranks) { return static_cast<int>((id / 10) % static_cast<mtp::id_t>(ranks)); };
  return o;
}

// Rank 0 creates items 0, 1, 10 and 11; every rank waits for it.
void create_by_tens(pool_t& pool) {
  if (pool.rank() == 0) {
    for (const mtp::id_t i : {0, 1, 10, 11}) pool.create(i, 0L);
  }
  pool.barrier();
}

TEST(Sharded, TimedFormsWithdrawWhatHasNotStarted) {
  g_hold.reset();
  pool_t pool(by_tens());
  create_by_tens(pool);
  if (pool.rank() == 0) {
    ASSERT_TRUE(pool.post(hold{10}).has_value());
    MTP_MPI_EXPECT_CODE(errc::timed_out, pool.send(add{10, 5}, std::chrono::milliseconds(1)));
    const auto rs = pool.send_batch(std::vector<add>{{10, 7}, {0, 1}, {11, 1}}, std::chrono::milliseconds(1));
    ASSERT_EQ(rs.size(), 3u);
    for (const auto& r : rs) EXPECT_EQ(r.error().code, errc::timed_out);
    EXPECT_EQ(pool.send(release{11}), 1);
    EXPECT_EQ(pool.send(get{10}, std::chrono::seconds(30)), 0) << "a withdrawn request ran";
    const long eleven = pool.send(get{11}, std::chrono::seconds(30));
    EXPECT_TRUE(eleven == 0 || eleven == 1) << eleven;  // it may have run before the withdrawal
    EXPECT_EQ(pool.send(add{10, 2}, std::chrono::seconds(30)), 2);
    const auto ok = pool.send_batch(std::vector<get>{{10}, {0}, {11}}, std::chrono::hours(1));
    for (const auto& r : ok) EXPECT_TRUE(r.has_value());
  }
  pool.barrier();
}

TEST(Sharded, CancelSkipsWhatHasNotStartedOnEveryRank) {
  g_hold.reset();
  pool_t pool(by_tens());
  create_by_tens(pool);
  if (pool.rank() == 0) {
    ASSERT_TRUE(pool.post(hold{10}).has_value());  // rank 1, worker 0
    ASSERT_TRUE(pool.post(hold{0}).has_value());   // this rank, worker 0
    latch done(1);
    std::vector<mtp::result<long>> got;
    auto handle = pool.send_batch_async(std::vector<add>{{10, 1}, {0, 1}, {10, 2}},
                                        [&](std::vector<mtp::result<long>>&& rs) {
                                          got = std::move(rs);
                                          done.count_down();
                                        });
    handle.cancel();
    EXPECT_EQ(pool.send(release{11}), 1);  // rank 1 has seen the cancel
    g_hold.release();                      // this rank's share was cancelled above
    done.wait();
    ASSERT_EQ(got.size(), 3u);
    for (const auto& r : got) EXPECT_EQ(r.error().code, errc::cancelled);
    EXPECT_EQ(pool.send(get{10}), 0);
    EXPECT_EQ(pool.send(get{0}), 0);
    handle.cancel();  // after completion: nothing happens
    // A cancel that comes too late leaves the answer alone.
    latch one(1);
    mtp::result<long> late;
    auto h2 = pool.send_async(add{11, 4}, [&](mtp::result<long>&& r) {
      late = std::move(r);
      one.count_down();
    });
    one.wait();
    h2.cancel();
    EXPECT_EQ(late.value(), 4);
  }
  pool.barrier();
}

// The asynchronous creates and removes, from every rank, for ids on every rank: results in
// order with the codes of the blocking forms, the items there (or gone) afterwards, and the
// ids noted for broadcasts. A callback runs off the local workers for a remote share, and on
// this thread before the call returns when nothing could be sent.
TEST(Sharded, AsyncCreateAndRemoveAcrossRanks) {
  auto o = small();
  o.router = [](mtp::id_t id, int ranks) {
    return id >= 1000000 ? -1 : static_cast<int>(id % static_cast<mtp::id_t>(ranks));
  };
  pool_t pool(std::move(o));
  const auto ranks = static_cast<mtp::id_t>(pool.ranks());
  const mtp::id_t base = 1000 * (static_cast<mtp::id_t>(pool.rank()) + 1);  // apart for each rank
  const mtp::id_t bad_route = 1000000;
  const mtp::id_t failing = base + 2 * ranks;  // its constructor throws
  std::vector<mtp::id_t> singles;              // one on each rank
  std::vector<mtp::id_t> batched;              // one on each rank
  for (mtp::id_t k = 0; k < ranks; ++k) {
    singles.push_back(base + k);
    batched.push_back(base + ranks + k);
  }
  const auto here = std::this_thread::get_id();

  for (const mtp::id_t id : singles) {
    completion<mtp::result<void>> c;
    (void)pool.create_async(mtp::make_create(id, 5L), c.callback());
    EXPECT_TRUE(c.get().has_value()) << id;
    // On the local worker, or on the communication thread for another rank's item (on this
    // thread too, when the share was answered before the call returned).
    if (pool.rank_of(id) == pool.rank()) {
      EXPECT_TRUE(c.on_worker || c.thread == here);
    } else {
      EXPECT_FALSE(c.on_worker) << "a remote create completes off the local workers";
    }
  }
  for (const mtp::id_t id : singles) {
    completion<mtp::result<void>> c;
    (void)pool.create_async(mtp::make_create(id, 1L), c.callback());
    const mtp::result<void> r = c.get();
    ASSERT_TRUE(r.has_error()) << id;
    EXPECT_EQ(code_of(r), "duplicate_id");
    EXPECT_EQ(r.error().id, id);
  }
  {
    completion<mtp::result<void>> c;
    (void)pool.create_async(mtp::make_create(bad_route, 1L), c.callback());
    EXPECT_EQ(code_of(c.get()), "invalid_route");
    EXPECT_EQ(c.thread, here) << "nothing was sent: the callback runs on the calling thread";
  }

  // A batch: the new ids, a duplicate, a constructor that throws, a bad route.
  std::vector<mtp::create_request<long>> creates;
  std::vector<std::string> expected;  // "ok" or the error's code
  for (const mtp::id_t id : batched) {
    creates.push_back(mtp::make_create(id, 7L));
    expected.emplace_back("ok");
    if (id == batched[0]) {
      creates.push_back(mtp::make_create(singles[1], 7L));
      expected.emplace_back("duplicate_id");
    }
  }
  creates.push_back(mtp::make_create(failing, -1L));
  expected.emplace_back("constructor_failed");
  creates.push_back(mtp::make_create(bad_route, 7L));
  expected.emplace_back("invalid_route");
  completion<std::vector<mtp::result<void>>> made;
  (void)pool.create_batch_async(creates, made.callback());
  const std::vector<mtp::result<void>> rs = made.get();
  std::vector<std::string> got;
  for (const auto& r : rs) got.push_back(code_of(r));
  ASSERT_EQ(got, expected);
  if (pool.rank_of(failing) == pool.rank()) {
    EXPECT_THROW(std::rethrow_exception(rs[rs.size() - 2].error().exception), std::domain_error);
  } else {
    EXPECT_THROW(std::rethrow_exception(rs[rs.size() - 2].error().exception), mtp::mpi::remote_error);
  }
  std::vector<get> gets;
  for (const mtp::id_t id : singles) gets.push_back({id});
  for (const mtp::id_t id : batched) gets.push_back({id});
  gets.push_back({failing});
  const auto values = pool.send_batch(gets);
  for (mtp::id_t k = 0; k < ranks; ++k) {
    EXPECT_EQ(values[k].value(), 5);
    EXPECT_EQ(values[ranks + k].value(), 7);
  }
  EXPECT_EQ(code_of(values[2 * ranks]), "unknown_id");
  completion<std::vector<mtp::result<void>>> none;
  (void)pool.create_batch_async(std::vector<mtp::create_request<long>>{}, none.callback());
  EXPECT_TRUE(none.get().empty());

  pool.barrier();  // every rank's items exist: a broadcast reaches them all
  const auto every = pool.broadcast(get{0});
  EXPECT_EQ(every.size(), 2 * ranks * ranks);
  long sum = 0;
  for (const auto& [id, r] : every) sum += r.value();
  EXPECT_EQ(sum, static_cast<long>((5 + 7) * ranks * ranks));
  pool.barrier();

  for (const mtp::id_t id : singles) {
    completion<mtp::result<void>> c;
    (void)pool.remove_async(id, c.callback());
    EXPECT_TRUE(c.get().has_value()) << id;
  }
  {
    completion<mtp::result<void>> c;
    (void)pool.remove_async(singles[1], c.callback());
    EXPECT_EQ(code_of(c.get()), "unknown_id");
  }
  std::vector<mtp::id_t> removes = batched;
  removes.push_back(singles[0]);  // already removed
  removes.push_back(bad_route);
  completion<std::vector<mtp::result<void>>> removed;
  (void)pool.remove_batch_async(removes, removed.callback());
  const auto gone = removed.get();
  ASSERT_EQ(gone.size(), removes.size());
  for (mtp::id_t k = 0; k < ranks; ++k) EXPECT_TRUE(gone[k].has_value()) << batched[k];
  EXPECT_EQ(code_of(gone[ranks]), "unknown_id");
  if (gone[ranks].has_error()) {
    EXPECT_EQ(gone[ranks].error().id, singles[0]);
  }
  EXPECT_EQ(code_of(gone[ranks + 1]), "invalid_route");
  for (const auto& r : pool.send_batch(gets)) EXPECT_EQ(code_of(r), "unknown_id");

  pool.barrier();  // every rank's removes are done: the broadcast finds nothing
  EXPECT_TRUE(pool.broadcast(get{0}).empty());
  pool.shutdown();  // collective
  {
    completion<mtp::result<void>> c;
    (void)pool.create_async(mtp::make_create(singles[0], 1L), c.callback());
    EXPECT_EQ(code_of(c.get()), "pool_stopped");
    EXPECT_EQ(c.thread, here);
    completion<std::vector<mtp::result<void>>> b;
    (void)pool.remove_batch_async(batched, b.callback());
    const auto stopped = b.get();
    ASSERT_EQ(stopped.size(), batched.size());
    for (const auto& r : stopped) EXPECT_EQ(code_of(r), "pool_stopped");
    EXPECT_EQ(b.thread, here);
  }
}

// Cancelling asynchronous creates and removes skips what has not started, on every rank: the
// items are neither built nor removed, and broadcasts do not count them.
TEST(Sharded, AsyncCreateAndRemoveCancelWhatHasNotStarted) {
  g_hold.reset();
  pool_t pool(by_tens());
  create_by_tens(pool);
  if (pool.rank() == 0) {
    // Ids behind the holds: on item 10's worker of rank 1, on item 0's worker of this rank
    // (rank 1's local pool routes as this one).
    mtp::id_t far = 12;
    while (far < 20 && pool.local().worker_of(far) != pool.local().worker_of(10)) ++far;
    mtp::id_t near = 2;
    while (near < 10 && pool.local().worker_of(near) != pool.local().worker_of(0)) ++near;
    ASSERT_LT(far, 20u);
    ASSERT_LT(near, 10u);
    ASSERT_TRUE(pool.post(hold{10}).has_value());
    ASSERT_TRUE(pool.post(hold{0}).has_value());
    std::vector<mtp::create_request<long>> creates;
    creates.push_back(mtp::make_create(far, 1L));
    creates.push_back(mtp::make_create(near, 1L));
    completion<std::vector<mtp::result<void>>> created;
    auto h1 = pool.create_batch_async(creates, created.callback());
    const std::vector<mtp::id_t> held{10, 0};
    completion<std::vector<mtp::result<void>>> removed;
    auto h2 = pool.remove_batch_async(held, removed.callback());
    completion<mtp::result<void>> one;
    auto h3 = pool.remove_async(10, one.callback());
    h1.cancel();
    h2.cancel();
    h3.cancel();
    EXPECT_EQ(pool.send(release{11}), 1);  // rank 1 has seen the cancels
    g_hold.release();                      // this rank's shares were cancelled above
    const auto c = created.get();
    ASSERT_EQ(c.size(), 2u);
    for (const auto& r : c) EXPECT_EQ(code_of(r), "cancelled");
    const auto r = removed.get();
    ASSERT_EQ(r.size(), 2u);
    for (const auto& x : r) EXPECT_EQ(code_of(x), "cancelled");
    EXPECT_EQ(code_of(one.get()), "cancelled");
    EXPECT_EQ(code_of(pool.send_batch(std::vector<get>{{far}})[0]), "unknown_id");
    EXPECT_EQ(code_of(pool.send_batch(std::vector<get>{{near}})[0]), "unknown_id");
    EXPECT_EQ(pool.send(get{10}), 0);
    EXPECT_EQ(pool.send(get{0}), 0);
    EXPECT_EQ(pool.broadcast(get{0}).size(), 4u);
    // A cancel that comes too late leaves the result alone.
    completion<mtp::result<void>> late;
    auto h4 = pool.remove_async(11, late.callback());
    EXPECT_TRUE(late.get().has_value());
    h4.cancel();
    EXPECT_EQ(pool.broadcast(get{0}).size(), 3u);
  }
  pool.barrier();
}

// With CPUs kept for callers (":reserve=1"), the communication thread runs there, and runs
// where it could before once the pool is gone. A rank bound to one CPU keeps none.
TEST(Sharded, TheCommunicationThreadRunsOnTheCpusKeptForCallers) {
  auto& env = mtp::mpi::environment::current();
  const std::vector<unsigned> before = env.communication_cpus();
  EXPECT_FALSE(before.empty());  // (no early return: the pool below is collective)
  auto o = small();
  // Without hwloc (or where pinning is unavailable) the plan keeps no CPU either.
  o.local.placement = mtp::plan_placement(mtp::allowed_cpus().size() >= 2 ? "pus:reserve=1" : "none", 2);
  {
    pool_t pool(std::move(o));
    const auto& kept = pool.local().placement().caller_cpus;
    if (kept.empty()) EXPECT_EQ(env.communication_cpus(), before);
    else EXPECT_EQ(env.communication_cpus(), kept);
    pool.barrier();
  }
  EXPECT_EQ(env.communication_cpus(), before);
}

// A post that fails on the owning rank (unknown id, a throwing handler) has no caller: it is
// reported to that rank's on_diagnostic.
TEST(Sharded, RemotePostFailuresGoToTheOwnersDiagnostics) {
  std::atomic<int> unknown{0}, threw{0};
  auto o = small();
  o.local.on_diagnostic = [&](const mtp::diagnostic& d) {
    if (d.what != mtp::diagnostic::kind::post_failed || !d.error) return;
    if (d.error->code == errc::unknown_id) unknown.fetch_add(1);
    if (d.error->code == errc::handler_failed) threw.fetch_add(1);
  };
  pool_t pool(std::move(o));
  const int next = (pool.rank() + 1) % pool.ranks();
  const mtp::id_t mine = static_cast<mtp::id_t>(pool.rank());
  pool.create(mine, 0L);
  pool.barrier();
  EXPECT_TRUE(pool.post(get{static_cast<mtp::id_t>(next) + 100u * static_cast<mtp::id_t>(pool.ranks())}).has_value());
  EXPECT_TRUE(pool.post(boom{static_cast<mtp::id_t>(next)}).has_value());
  EXPECT_TRUE(poll_until([&] { return unknown.load() >= 1 && threw.load() >= 1; })) << "the owner reported nothing";
  EXPECT_EQ(unknown.load(), 1);
  EXPECT_EQ(threw.load(), 1);
  pool.barrier();
}

// Two pools at once: each has its own communicator and its own items.
TEST(Sharded, TwoPoolsKeepTheirOwnItems) {
  pool_t a(small());
  pool_t b(small());
  const mtp::id_t id = 101;  // the same id on every rank (collective calls must match)
  if (a.rank() == 0) a.create(id, 7L);
  a.barrier();
  b.barrier();
  EXPECT_EQ(a.send_batch(std::vector<get>{{id}})[0].value(), 7);
  EXPECT_EQ(b.send_batch(std::vector<get>{{id}})[0].error().code, errc::unknown_id);
  a.barrier();
}

// Several threads on every rank send (post, single, batch, async) to items on every rank; each
// item records (sender, seq). The expected record is recomputed from the same seeds: nothing
// lost, nothing duplicated, each sender's messages to one item in the order sent.
TEST(Sharded, ConcurrentSendersShadowModel) {
  constexpr int k_threads = 2;
  constexpr int k_items = 24;
  constexpr std::uint32_t k_per_thread = 400;
  pool_t pool(small());
  const int ranks = pool.ranks();
  if (pool.rank() == 0) {
    std::vector<mtp::id_t> ids;
    for (mtp::id_t i = 0; i < k_items; ++i) ids.push_back(i);
    (void)pool.create_batch(ids, 0L);
  }
  pool.barrier();
  auto target = [](std::uint32_t sender, std::uint32_t seq) {
    std::mt19937_64 g(sender * 7919ull + seq);
    return static_cast<mtp::id_t>(g() % k_items);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      const std::uint32_t sender = static_cast<std::uint32_t>(pool.rank() * k_threads + t);
      std::uint32_t seq = 0;
      std::atomic<int> async_left{0};
      while (seq < k_per_thread) {
        switch (seq % 4) {
          // EXPECT, not ASSERT: this thread must not return while its async batches run.
          case 0:
            EXPECT_TRUE(pool.post(append{target(sender, seq), sender, seq}).has_value());
            ++seq;
            break;
          case 1:
            pool.send(append{target(sender, seq), sender, seq});
            ++seq;
            break;
          case 2: {
            std::vector<append> b;
            for (int k = 0; k < 5 && seq < k_per_thread; ++k, ++seq) b.push_back({target(sender, seq), sender, seq});
            for (const auto& r : pool.send_batch(b)) EXPECT_TRUE(r.has_value());
            break;
          }
          default: {
            std::vector<append> b;
            for (int k = 0; k < 3 && seq < k_per_thread; ++k, ++seq) b.push_back({target(sender, seq), sender, seq});
            async_left.fetch_add(1);
            (void)pool.send_batch_async(b, [&](std::vector<mtp::result<void>>&& rs) {
              for (const auto& r : rs) EXPECT_TRUE(r.has_value());
              async_left.fetch_sub(1);
            });
            break;
          }
        }
      }
      while (async_left.load() != 0) std::this_thread::yield();
    });
  }
  for (auto& t : threads) t.join();
  // Posts have no reply: a round trip from every rank to every item after the barrier runs
  // behind them only for this rank's own posts, so wait until every item holds its total.
  pool.barrier();
  const std::uint32_t senders = static_cast<std::uint32_t>(ranks * k_threads);
  std::vector<std::vector<std::pair<std::uint32_t, std::uint32_t>>> expect(k_items);
  for (std::uint32_t s = 0; s < senders; ++s) {
    for (std::uint32_t q = 0; q < k_per_thread; ++q) expect[target(s, q)].emplace_back(s, q);
  }
  for (mtp::id_t i = 0; i < k_items; ++i) {
    std::vector<std::pair<std::uint32_t, std::uint32_t>> got;
    (void)poll_until([&] {
      got = pool.send(history{i});
      return got.size() >= expect[i].size();
    });
    ASSERT_EQ(got.size(), expect[i].size()) << "item " << i;
    // per sender: the same seqs, in the order sent
    for (std::uint32_t s = 0; s < senders; ++s) {
      std::vector<std::uint32_t> want, have;
      for (auto [x, q] : expect[i]) if (x == s) want.push_back(q);
      for (auto [x, q] : got) if (x == s) have.push_back(q);
      EXPECT_EQ(have, want) << "item " << i << " sender " << s;
    }
  }
  pool.barrier();
}

// Shutdown while traffic is in flight: every rank keeps async batches of slow requests going
// from two threads while the main thread shuts down. Every callback runs exactly once, with a
// value or pool_stopped; calls after shutdown get pool_stopped; nothing hangs.
// An error passed on by a further rank keeps the rank it was thrown on: rank 0 calls an item on
// the last rank whose handler calls an item on rank 1 (at 2 ranks: on rank 0), which throws.
TEST(Sharded, RemoteErrorNamesTheRankItWasThrownOn) {
  pool_t pool(small());
  const int ranks = pool.ranks();
  const auto last = static_cast<mtp::id_t>(ranks - 1);
  const mtp::id_t thrower = ranks > 2 ? 1 : 0;
  if (pool.rank() == 0) {
    pool.create(last, 0L);
    pool.create(thrower, 0L);
    try {
      (void)pool.send(relay{last, thrower});
      ADD_FAILURE() << "no exception";
    } catch (const mtp::mpi::remote_error& e) {
      EXPECT_EQ(e.rank(), static_cast<int>(thrower)) << e.what();
      EXPECT_EQ(e.type_name(), "std::invalid_argument") << e.what();
      EXPECT_EQ(e.remote_what(), "boom " + std::to_string(thrower));
    }
  }
  pool.barrier();
}

// A trivially copyable request larger than a thread's stack crosses ranks (it is decoded on the
// heap, never on the stack), and so does a large response; the bytes arrive intact.
TEST(Sharded, LargeTriviallyCopyableValuesCrossRanks) {
  pool_t pool(small());
  const auto last = static_cast<mtp::id_t>(pool.ranks() - 1);
  if (pool.rank() == 0) pool.create(last, 0L);
  pool.barrier();
  if (pool.rank() == 0) {
    std::vector<bulk> requests(1);  // 16 MiB, on the heap
    requests[0].id = last;
    for (std::size_t i = 0; i < k_bulk_bytes; ++i) requests[0].bytes[i] = bulk_byte(7, i);
    const auto sums = pool.send_batch(requests);
    ASSERT_EQ(sums.size(), 1u);
    EXPECT_EQ(sums[0].value(), checksum(requests[0].bytes));

    const auto blocks = pool.send_batch(std::vector<bulk_reply>{{last, 3}, {last, 4}});
    ASSERT_EQ(blocks.size(), 2u);
    for (std::uint32_t k = 0; k < 2; ++k) {
      const auto& b = blocks[k].value().bytes;
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < b.size(); ++i) wrong += b[i] != bulk_byte(3 + k, i) ? 1 : 0;
      EXPECT_EQ(wrong, 0u) << "reply " << k;
    }
  }
  pool.barrier();
}

// Large requests of a blocking batch are sent from the caller's storage (borrowed, not copied
// into the message), adjacent ones as one part; every rank sends at once to items on every
// rank, local and remote mixed, so borrowed messages meet other messages for the same ranks.
// The caller's storage is overwritten as soon as the call returns: by then nothing reads it.
TEST(Sharded, LargeRequestsOfBlockingCallsAreSentFromTheCallersStorage) {
  static_assert(sizeof(slab) >= mtp::mpi::wire::k_borrow_min);
  pool_t pool(small());
  const auto ranks = static_cast<mtp::id_t>(pool.ranks());
  const auto mine = static_cast<mtp::id_t>(pool.rank());
  const mtp::id_t items = 3 * ranks;
  if (pool.rank() == 0) {
    std::vector<mtp::id_t> ids;
    for (mtp::id_t i = 0; i < items; ++i) ids.push_back(i);
    for (const auto& r : pool.create_batch(ids, 0L)) ASSERT_TRUE(r.has_value());
  }
  pool.barrier();
  std::vector<slab> requests(2 * items);  // every item twice: runs of adjacent requests per rank
  for (int round = 0; round < 3; ++round) {
    std::vector<std::uint64_t> expect;
    for (std::size_t k = 0; k < requests.size(); ++k) {
      requests[k].id = k < items ? static_cast<mtp::id_t>(k) : static_cast<mtp::id_t>((k * 5 + mine) % items);
      const auto seed = static_cast<std::uint32_t>(k + 100 * round + 1000 * mine);
      for (std::size_t i = 0; i < k_slab_bytes; ++i) requests[k].bytes[i] = bulk_byte(seed, i);
      expect.push_back(checksum(requests[k].bytes));
    }
    const auto sums = pool.send_batch(requests);
    for (auto& r : requests) r.bytes.fill(0xEE);  // the call has returned: the storage is the caller's again
    ASSERT_EQ(sums.size(), requests.size());
    for (std::size_t k = 0; k < sums.size(); ++k) EXPECT_EQ(sums[k].value(), expect[k]) << "request " << k;
    // One request through send (its own storage), to a remote item.
    const auto one = std::make_unique<slab>();
    one->id = (mine + 1) % ranks;
    for (std::size_t i = 0; i < k_slab_bytes; ++i) one->bytes[i] = bulk_byte(7 + static_cast<std::uint32_t>(round), i);
    EXPECT_EQ(pool.send(*one), checksum(one->bytes));
  }
  pool.barrier();
}

// The asynchronous and timed forms copy a large request before they return: the caller's copy
// may go away at once (it is freed and its memory written over here), and the item still
// sees the bytes as they were.
TEST(Sharded, LargeRequestsOfAsynchronousCallsOutliveTheCallersCopy) {
  using namespace std::chrono_literals;
  pool_t pool(small());
  const auto last = static_cast<mtp::id_t>(pool.ranks() - 1);
  if (pool.rank() == 0) pool.create(last, 0L);
  pool.barrier();
  if (pool.rank() == 0) {
    std::uint64_t expect = 0;
    std::promise<std::uint64_t> got;
    mtp::mpi::async_handle h;
    {
      auto r = std::make_unique<bulk>();  // 16 MiB, on the heap
      r->id = last;
      for (std::size_t i = 0; i < k_bulk_bytes; ++i) r->bytes[i] = bulk_byte(11, i);
      expect = checksum(r->bytes);
      h = pool.send_async(*r, [&](mtp::result<std::uint64_t>&& s) { got.set_value(s.has_value() ? s.value() : 0); });
    }  // freed before the request can have arrived
    auto scribble = std::make_unique<bulk>();  // likely the same memory again
    scribble->bytes.fill(0x5A);
    EXPECT_EQ(got.get_future().get(), expect);

    std::vector<slab> batch(3);
    std::vector<std::uint64_t> sums(batch.size(), 0);
    std::vector<std::uint64_t> expect_batch;
    for (std::size_t k = 0; k < batch.size(); ++k) {
      batch[k].id = last;
      for (std::size_t i = 0; i < k_slab_bytes; ++i) batch[k].bytes[i] = bulk_byte(20 + static_cast<std::uint32_t>(k), i);
      expect_batch.push_back(checksum(batch[k].bytes));
    }
    latch done(1);
    auto h2 = pool.send_batch_async(batch, [&](std::vector<mtp::result<std::uint64_t>>&& rs) {
      for (std::size_t k = 0; k < rs.size(); ++k) sums[k] = rs[k].has_value() ? rs[k].value() : 0;
      done.count_down();
    });
    for (auto& b : batch) b.bytes.fill(0xA5);
    batch.clear();
    batch.shrink_to_fit();
    done.wait();
    EXPECT_EQ(sums, expect_batch);

    auto timed = std::make_unique<slab>();
    timed->id = last;
    for (std::size_t i = 0; i < k_slab_bytes; ++i) timed->bytes[i] = bulk_byte(30, i);
    EXPECT_EQ(pool.send(*timed, 30s), checksum(timed->bytes));
  }
  pool.barrier();
}

// A trivially copyable value is read in place from an aligned message and decoded into a
// block of its own from an unaligned one (a message inside a bundle may start anywhere).
TEST(Wire, LargeValuesAreReadInPlaceWhereAligned) {
  auto value = std::make_unique<slab>();
  value->id = 42;
  for (std::size_t i = 0; i < k_slab_bytes; ++i) value->bytes[i] = bulk_byte(3, i);
  std::vector<char> buffer(sizeof(slab) + 2 * alignof(slab));
  for (const std::size_t offset : {std::size_t{0}, std::size_t{1}}) {
    char* at = buffer.data() + (alignof(slab) - reinterpret_cast<std::uintptr_t>(buffer.data()) % alignof(slab)) % alignof(slab) + offset;
    std::memcpy(at, value.get(), sizeof(slab));
    mtp::mpi::wire::reader in(at, sizeof(slab));
    const mtp::mpi::wire::decoded<slab> d(in, 1);
    EXPECT_TRUE(in.done());
    EXPECT_EQ(static_cast<const void*>(d.begin()) == static_cast<const void*>(at), offset == 0) << "offset " << offset;
    EXPECT_EQ(d.begin()->id, 42u);
    EXPECT_EQ(checksum(d.begin()->bytes), checksum(value->bytes));
  }
  std::vector<char> shorter(sizeof(slab) - 1);
  mtp::mpi::wire::reader in(shorter.data(), shorter.size());
  EXPECT_THROW((mtp::mpi::wire::decoded<slab>(in, 1)), std::out_of_range);
}

// Why a message over 2 GiB cannot be tried here ("": it can): it needs about 10 GiB between
// the two ranks, and is asked for by MTP_MPI_TEST_OVER_2GIB=1 (see tests/CMakeLists.txt).
std::string why_not_over_2gib() {
  if (std::getenv("MTP_MPI_TEST_OVER_2GIB") == nullptr) return "MTP_MPI_TEST_OVER_2GIB is not set";
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  unsigned long long kib = 0;
  while (meminfo >> key >> kib && key != "MemAvailable:") meminfo.ignore(1 << 10, '\n');
  if (key != "MemAvailable:") return "no MemAvailable in /proc/meminfo";
  if (kib < (12ull << 20)) return "needs 12 GiB of available memory, " + std::to_string(kib >> 20) + " GiB available";
  return {};
}

// A message larger than an MPI count (int) can describe crosses in pieces, intact.
TEST(Sharded, AMessageOver2GiBCrossesRanks) {
  pool_t pool(small());
  const std::string skip = why_not_over_2gib();  // rank 0's answer decides
  const auto last = static_cast<mtp::id_t>(pool.ranks() - 1);
  if (pool.rank() == 0 && skip.empty()) {
    pool.create(last, 0L);
    std::vector<huge> requests(1);
    requests[0].id = last;
    for (std::size_t i = 0; i < k_huge_words; ++i) requests[0].words[i] = i * 0x9E3779B97F4A7C15ull;
    const std::uint64_t expect = huge_sum(requests[0].words);
    const auto sums = pool.send_batch(requests);
    ASSERT_EQ(sums.size(), 1u);
    EXPECT_EQ(sums[0].value(), expect);
  }
  pool.barrier();
  if (!skip.empty()) GTEST_SKIP() << skip;
}

// Generic code written against the pool concepts, in the spelling both pools take: the same
// function runs on a plain pool and on a sharded one, and they answer alike.
template <class Pool>
  requires mtp::sends<Pool, add> && mtp::sends_with_deadline<Pool, mtp::member_call<&item::scaled>> &&
           mtp::creates<Pool, long>
std::vector<long> exercise(Pool& pool, const std::vector<mtp::id_t>& ids) {
  using namespace std::chrono_literals;
  std::vector<long> seen;
  for (const auto& r : pool.create_batch(ids, 5L)) r.value();
  for (const mtp::id_t id : ids) seen.push_back(pool.send(add{id, static_cast<long>(id)}));
  seen.push_back(pool.template call<&item::scaled>(ids[0], 3L));
  pool.template call<&item::bump>(ids[1]);
  seen.push_back(pool.send(mtp::make_call<&item::scaled>(ids[1], 2L), 10s));
  std::vector<mtp::member_call<&item::scaled>> batch;
  for (const mtp::id_t id : ids) batch.push_back(mtp::make_call<&item::scaled>(id, 10L));
  for (const auto& r : pool.send_batch(batch, 10s)) seen.push_back(r.value());
  std::promise<long> named;
  (void)pool.send_async(mtp::make_call<&item::scaled>(ids[2], -1L),
                        [&](mtp::result<long>&& r) { named.set_value(r.has_value() ? r.value() : -999); });
  seen.push_back(named.get_future().get());
  mtp_test::run_loop loop;
  std::optional<long> awaited;
  auto await_one = [&]() -> mtp_test::task {  // named: its captures must outlive the coroutine
    awaited = co_await mtp::async(pool, mtp::make_call<&item::scaled>(ids[3], 5L), mtp_test::on_loop{&loop});
  };
  await_one();
  EXPECT_TRUE(loop.run_until([&] { return awaited.has_value(); }));
  seen.push_back(awaited.value_or(-999));
  EXPECT_TRUE(pool.post(mtp::make_call<&item::bump>(ids[2])).has_value());
  seen.push_back(pool.send(get{ids[2]}));  // after the post: one sender, one item, in order
  return seen;
}

TEST(Sharded, GenericCodeRunsOnBothPoolsInOneSpelling) {
  pool_t pool(small());
  const std::vector<mtp::id_t> ids{0, 1, 2, 3, 4, 5};
  if (pool.rank() == 0) {
    mtp::thread_pool<item> plain(small().local);
    const std::vector<long> expect = exercise(plain, ids);
    EXPECT_EQ(exercise(pool, ids), expect);
    EXPECT_EQ(expect.size(), 6u + 2 + 6 + 3);
  }
  pool.barrier();
}

// Starts a coroutine on `loop` that co_awaits `make()` (an awaitable made with `stop`'s token),
// requests stop at once, and says how the co_await ended: "completed", the pool_error's code,
// or "did not resume" when the loop gave up waiting for it (the owning rank is expected to be
// busy). The awaitable is made inside the coroutine: GCC 12 would copy an lvalue awaiter.
template <class Make>
std::string stopped_at_once(mtp_test::run_loop& loop, std::stop_source& stop, Make make) {
  std::string code;
  bool done = false;
  auto waiter = [&]() -> mtp_test::task {
    try {
      (void)co_await make();
      code = "completed";
    } catch (const mtp::pool_error& e) {
      code = mtp::to_string(e.code());
    }
    done = true;
  };
  waiter();
  stop.request_stop();
  if (!loop.run_until([&] { return done; })) return "did not resume";
  return code;
}

// Coroutines await the sharded pool as they await a plain one (mtp::async, async_result,
// async_batch), resuming on their own loop, for local and remote items alike; a stop request
// resumes a co_await at once while the rank that owns the item is busy, and the request is
// then skipped there.
TEST(Sharded, CoroutinesAwaitTheShardedPool) {
  g_hold.reset();
  mtp_test::g_escaped = 0;
  pool_t pool(by_tens());
  create_by_tens(pool);
  if (pool.rank() == 0) {
    mtp_test::run_loop loop;
    const mtp_test::on_loop on{&loop};
    std::vector<std::string> seen;
    const auto text = [](const auto& r) {  // a value or an error's code, as text
      return r.has_value() ? std::to_string(r.value()) : std::string(mtp::to_string(r.error().code));
    };
    const std::vector<add> batch{{0, 1}, {10, 1}, {11, 2}, {1, 4}};
    bool done = false;
    auto client = [&]() -> mtp_test::task {
      seen.push_back(std::to_string(co_await mtp::async(pool, add{10, 5}, on)));  // rank 1
      seen.push_back(std::to_string(co_await mtp::async(pool, add{0, 3}, on)));   // this rank
      seen.push_back(std::this_thread::get_id() == loop.owner() ? std::string("on the loop") : std::string("elsewhere"));
      seen.push_back(text(co_await mtp::async_result(pool, boom{11}, on)));
      try {
        (void)co_await mtp::async(pool, add{12, 1}, on);  // no item 12
        seen.emplace_back("no error");
      } catch (const mtp::pool_error& e) {
        seen.emplace_back(mtp::to_string(e.code()));
      }
      for (const auto& r : co_await mtp::async_batch(pool, batch, on)) {
        seen.push_back(text(r));
      }
      done = true;
    };
    client();
    ASSERT_TRUE(loop.run_until([&] { return done; }));
    EXPECT_EQ(seen, (std::vector<std::string>{"5", "3", "on the loop", "handler_failed", "unknown_id", "4", "6", "2", "4"}));

    // Prompt cancellation: rank 1's only worker for item 10 is held.
    ASSERT_TRUE(pool.post(hold{10}).has_value());
    std::stop_source stop;
    EXPECT_EQ(stopped_at_once(loop, stop, [&] { return mtp::async(pool, add{10, 100}, on, stop.get_token()); }),
              "cancelled");
    EXPECT_EQ(pool.send(release{11}), 1);
    EXPECT_EQ(pool.send(get{10}), 6) << "the cancelled request ran";
  }
  pool.barrier();
  EXPECT_EQ(mtp_test::g_escaped.load(), 0) << "an exception escaped a coroutine";
}

// Coroutines create and remove items on the sharded pool (mtp::async_create, async_remove
// and the batch forms) as on a plain pool, on this rank and on another, resuming on their own
// loop; a stop request resumes a co_await async_create at once while the owning rank is
// busy, and the create is then skipped there.
TEST(Sharded, CoroutinesCreateAndRemoveOnTheShardedPool) {
  g_hold.reset();
  mtp_test::g_escaped = 0;
  pool_t pool(by_tens());
  create_by_tens(pool);
  if (pool.rank() == 0) {
    mtp_test::run_loop loop;
    const mtp_test::on_loop on{&loop};
    std::vector<std::string> seen;
    std::vector<mtp::create_request<long>> creates;
    creates.push_back(mtp::make_create(13, 4L));  // rank 1
    creates.push_back(mtp::make_create(3, 4L));   // this rank
    creates.push_back(mtp::make_create(12, 4L));  // made by the first co_await below
    const std::vector<mtp::id_t> made{12, 2, 13, 3};
    const std::vector<mtp::id_t> removes{13, 3, 12, 2, 14};  // 12: removed by then; 14: none
    bool done = false;
    auto client = [&]() -> mtp_test::task {
      co_await mtp::async_create(pool, mtp::make_create(12, 2L), on);  // rank 1
      co_await mtp::async_create(pool, mtp::make_create(2, 2L), on);   // this rank
      seen.push_back(std::this_thread::get_id() == loop.owner() ? std::string("on the loop") : std::string("elsewhere"));
      try {
        co_await mtp::async_create(pool, mtp::make_create(12, 0L), on);
        seen.emplace_back("created twice");
      } catch (const mtp::pool_error& e) {
        seen.emplace_back(mtp::to_string(e.code()));
      }
      try {
        co_await mtp::async_create(pool, mtp::make_create(15, -1L), on);  // throws on rank 1
        seen.emplace_back("no error");
      } catch (const mtp::mpi::remote_error& e) {
        seen.push_back(e.remote_what());
      }
      for (const auto& r : co_await mtp::async_create_batch(pool, creates, on)) seen.push_back(code_of(r));
      for (const mtp::id_t id : made) seen.push_back(std::to_string(pool.send(get{id})));
      const bool first = co_await mtp::async_remove(pool, 12, on);
      seen.push_back(first ? std::string("removed") : std::string("not there"));
      const bool again = co_await mtp::async_remove(pool, 12, on);
      seen.push_back(again ? std::string("removed") : std::string("not there"));
      for (const auto& r : co_await mtp::async_remove_batch(pool, removes, on)) seen.push_back(code_of(r));
      done = true;
    };
    client();
    ASSERT_TRUE(loop.run_until([&] { return done; }));
    EXPECT_EQ(seen, (std::vector<std::string>{"on the loop", "duplicate_id", "negative start for item", "ok", "ok",
                                              "duplicate_id", "2", "2", "4", "4", "removed", "not there", "ok", "ok",
                                              "unknown_id", "ok", "unknown_id"}));
    for (const mtp::id_t id : made) EXPECT_EQ(code_of(pool.send_batch(std::vector<get>{{id}})[0]), "unknown_id") << id;
    EXPECT_EQ(pool.broadcast(get{0}).size(), 4u);  // 0, 1, 10 and 11

    // Prompt cancellation: rank 1's worker of item 10 is held, and the create waits behind it.
    mtp::id_t behind = 12;
    while (behind < 20 && pool.local().worker_of(behind) != pool.local().worker_of(10)) ++behind;
    ASSERT_LT(behind, 20u);
    ASSERT_TRUE(pool.post(hold{10}).has_value());
    std::stop_source stop;
    EXPECT_EQ(stopped_at_once(
                  loop, stop, [&] { return mtp::async_create(pool, mtp::make_create(behind, 0L), on, stop.get_token()); }),
              "cancelled");
    EXPECT_EQ(pool.send(release{11}), 1);
    EXPECT_EQ(code_of(pool.send_batch(std::vector<get>{{behind}})[0]), "unknown_id") << "the cancelled create ran";
    EXPECT_EQ(pool.broadcast(get{0}).size(), 4u);
  }
  pool.barrier();
  EXPECT_EQ(mtp_test::g_escaped.load(), 0) << "an exception escaped a coroutine";
}

// Items post to each other across ranks (chains of hops from every rank); quiesce() returns
// only once every hop has run everywhere, and can be called again.
TEST(Sharded, QuiesceWaitsForItemsPostingAcrossRanks) {
  pool_t pool(small());
  const int ranks = pool.ranks();
  const mtp::id_t items = 13;  // not a multiple of the ranks: chains cross ranks unevenly
  std::vector<mtp::id_t> ids;
  for (mtp::id_t i = 0; i < items; ++i) ids.push_back(i);
  if (pool.rank() == 0) {
    for (const auto& r : pool.create_batch(ids, 0L)) ASSERT_TRUE(r.has_value());
  }
  pool.barrier();
  std::vector<get> gets;
  for (const mtp::id_t id : ids) gets.push_back({id});
  const std::uint32_t chains = 6;
  const std::uint32_t hops = 60;
  for (int round = 1; round <= 2; ++round) {
    for (std::uint32_t c = 0; c < chains; ++c) {
      const auto start = static_cast<mtp::id_t>(static_cast<std::uint32_t>(pool.rank()) * chains + c) % items;
      ASSERT_TRUE(pool.post(hop{start, items, hops}).has_value());
    }
    pool.quiesce();
    long total = 0;
    for (const auto& r : pool.send_batch(gets)) total += r.value();
    EXPECT_EQ(total, static_cast<long>(round) * ranks * chains * (hops + 1)) << "round " << round;
    pool.barrier();  // every rank has read the totals before the next round starts
  }
  if (pool.rank() == 0) {
    EXPECT_EQ(pool.send(quiesce_inside{0}), static_cast<int>(errc::would_deadlock));
  }
  pool.barrier();
}

// Broadcast and reduction over every item on every rank, after items posted to each other
// (quiescence): the floating-point sum, folded in id order, is bit-identical to a plain loop
// whatever the number of ranks; removed items drop out; failures are not lost.
TEST(Sharded, BroadcastAndReduceOverEveryItem) {
  pool_t pool(small());
  const int ranks = pool.ranks();
  const mtp::id_t items = 29;
  std::vector<long> totals(items);
  for (mtp::id_t i = 0; i < items; ++i) totals[i] = static_cast<long>(7 * i + 1);
  if (pool.rank() == 0) {
    for (mtp::id_t i = 0; i < items; ++i) pool.create(i, totals[i]);
  }
  pool.barrier();
  const std::uint32_t hops = 40;
  (void)pool.post(hop{static_cast<mtp::id_t>(pool.rank()), items, hops});
  pool.quiesce();
  for (int r = 0; r < ranks; ++r) {  // what the chains added: one per hop, starting at item r
    for (std::uint32_t k = 0; k <= hops; ++k) ++totals[(static_cast<mtp::id_t>(r) + k) % items];
  }
  double expected = 0.5;
  for (mtp::id_t i = 0; i < items; ++i) expected += static_cast<double>(totals[i]) * 0.1 / (static_cast<double>(i) + 3.0);

  if (pool.rank() == ranks - 1) {  // any rank may broadcast; here the last
    const auto all = pool.broadcast(weigh{0, 0.1});
    ASSERT_EQ(all.size(), items);
    for (mtp::id_t i = 0; i < items; ++i) {
      EXPECT_EQ(all[i].first, i);
      EXPECT_EQ(all[i].second.value(), static_cast<double>(totals[i]) * 0.1 / (static_cast<double>(i) + 3.0));
    }
    const double sum = pool.reduce(weigh{0, 0.1}, 0.5, [](double acc, double x) { return acc + x; });
    EXPECT_EQ(std::memcmp(&sum, &expected, sizeof sum), 0) << sum << " against " << expected << ": not bit-identical";
    // Every item's failure arrives; reduce throws the first.
    const auto failed = pool.broadcast(boom{0});
    ASSERT_EQ(failed.size(), items);
    for (const auto& [id, r] : failed) EXPECT_TRUE(r.has_error()) << id;
    EXPECT_THROW((void)pool.reduce(boom{0}, 0, [](int a, int b) { return a + b; }), std::exception);
    // Removed items drop out.
    EXPECT_TRUE(pool.remove(3));
    EXPECT_TRUE(pool.remove(items - 1));
    EXPECT_EQ(pool.broadcast(get{0}).size(), items - 2);
    pool.create(3, 0L);  // back again
    EXPECT_EQ(pool.broadcast(get{0}).size(), items - 1);
  }
  pool.barrier();
}

// Bounded queues push back across ranks as they do locally: a blocking or timed batch of 200
// requests to one item on another rank waits for room (no queue_full); only the
// non-blocking forms answer queue_full.
TEST(Sharded, BoundedQueuesPushBackAcrossRanks) {
  auto o = small();
  o.local.queue_capacity = 4;
  pool_t pool(o);
  const auto last = static_cast<mtp::id_t>(pool.ranks() - 1);
  if (pool.rank() == 0) {
    pool.create(last, 0L);
    std::vector<slow> batch(200, slow{last, 20});
    const auto count_full = [](const auto& rs) {
      std::size_t full = 0;
      for (const auto& r : rs) full += r.has_error() && r.error().code == errc::queue_full ? 1 : 0;
      return full;
    };
    const auto blocking = pool.send_batch(batch);
    ASSERT_EQ(blocking.size(), 200u);
    EXPECT_EQ(count_full(blocking), 0u) << "a blocking batch waits for room on the remote rank";
    for (const auto& r : blocking) EXPECT_TRUE(r.has_value() && r.value() == 20);
    const auto timed = pool.send_batch(batch, std::chrono::seconds(30));
    EXPECT_EQ(count_full(timed), 0u) << "a timed batch waits for room within its deadline";
    for (const auto& r : timed) EXPECT_TRUE(r.has_value());
    EXPECT_EQ(pool.send(slow{last, 1}), 1);
    // The non-blocking form does not wait: what finds no room gets queue_full.
    std::promise<std::size_t> full;
    (void)pool.send_batch_async(batch, [&](std::vector<mtp::result<int>>&& rs) { full.set_value(count_full(rs)); });
    EXPECT_GT(full.get_future().get(), 0u);
  }
  pool.barrier();
}

TEST(Sharded, ShutdownWhileTrafficInFlight) {
  pool_t pool(small());
  const int ranks = pool.ranks();
  if (pool.rank() == 0) {
    std::vector<mtp::id_t> ids;
    for (mtp::id_t i = 0; i < 8; ++i) ids.push_back(i);
    (void)pool.create_batch(ids, 0L);
  }
  pool.barrier();
  std::atomic<bool> stop{false};
  std::atomic<long> launched{0}, answered{0}, values{0}, stopped{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::uint64_t n = 0;
      while (!stop.load()) {
        std::vector<slow> b;
        for (mtp::id_t i = 0; i < 8; ++i) b.push_back({(i + n + static_cast<mtp::id_t>(t)) % 8, 50});
        ++n;
        launched.fetch_add(1);
        (void)pool.send_batch_async(b, [&](std::vector<mtp::result<int>>&& rs) {
          for (const auto& r : rs) {
            if (r.has_value()) values.fetch_add(1);
            else if (r.error().code == errc::pool_stopped) stopped.fetch_add(1);
            else other.fetch_add(1);
          }
          answered.fetch_add(1);
        });
        if (pool.post(add{n % 8, 1}).has_error()) std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  // and one thread of blocking calls: each returns a value or fails with pool_stopped
  std::atomic<long> blocking_ok{0}, blocking_stopped{0}, blocking_other{0};
  threads.emplace_back([&] {
    for (std::uint64_t n = 0; !stop.load(); ++n) {
      try {
        (void)pool.send(slow{n % 8, 20});
        blocking_ok.fetch_add(1);
      } catch (const mtp::pool_error& e) {
        (e.code() == errc::pool_stopped ? blocking_stopped : blocking_other).fetch_add(1);
        std::this_thread::yield();
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100 + 50 * pool.rank()));  // traffic, staggered
  // Shutdown comes only once traffic flows here: a blocking call and an async batch answered.
  EXPECT_TRUE(poll_until([&] { return blocking_ok.load() > 0 && values.load() > 0; })) << "no traffic before shutdown";
  pool.shutdown();
  stop.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(answered.load(), launched.load());
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(blocking_ok.load(), 0);
  EXPECT_EQ(blocking_other.load(), 0);
  EXPECT_GT(values.load(), 0);
  EXPECT_EQ(pool.post(add{0, 1}).error().code, errc::pool_stopped);
  EXPECT_EQ(pool.send_batch(std::vector<get>{{0}, {1}})[1].error().code, errc::pool_stopped);
  try {
    (void)pool.send(get{static_cast<mtp::id_t>(ranks - 1)});
    FAIL();
  } catch (const mtp::pool_error& e) {
    EXPECT_EQ(e.code(), errc::pool_stopped);
  }
  pool.shutdown();  // idempotent
}

// The vectors a calling thread keeps between calls (routes, this rank's share, its results):
// reused with their capacity, never lent twice at once, not kept when too large.
TEST(ThreadScratch, AThreadKeepsItsVectorAndASecondLenderGetsItsOwn) {
  using mtp::mpi::impl::thread_scratch;
  const long* kept = nullptr;
  {
    thread_scratch<long> a;
    EXPECT_TRUE(a.get().empty());
    a.get().assign(1000, 7);
    kept = a.get().data();
    thread_scratch<long> b;  // `a` is still lent (a call made from inside a call): b has its own
    EXPECT_TRUE(b.get().empty());
    b.get().push_back(1);
    EXPECT_NE(b.get().data(), kept);
    EXPECT_EQ(a.get().size(), 1000u);  // untouched by b
  }
  {
    thread_scratch<long> again;  // the same memory, emptied
    EXPECT_TRUE(again.get().empty());
    EXPECT_GE(again.get().capacity(), 1000u);
    EXPECT_EQ(again.get().data(), kept);
  }
  {
    thread_scratch<long> big;
    big.get().resize(thread_scratch<long>::k_keep_bytes / sizeof(long) + 1);
  }
  {
    thread_scratch<long> after;  // too large to keep: it was freed
    EXPECT_EQ(after.get().capacity(), 0u);
  }
  std::size_t other_capacity = 1;
  std::thread([&] { other_capacity = thread_scratch<long>().get().capacity(); }).join();
  EXPECT_EQ(other_capacity, 0u);  // every thread has its own
}

// A batch split over the ranks, again and again from two threads with shares of changing size
// (the calling threads' kept vectors reused, larger and smaller): every result where it belongs,
// and the caller keeps the vectors afterwards.
TEST(Sharded, RepeatedBatchesFromTwoThreadsKeepTheirVectors) {
  pool_t pool(small());
  constexpr mtp::id_t k_items = 64;
  std::vector<mtp::id_t> ids(k_items);
  for (mtp::id_t i = 0; i < k_items; ++i) ids[i] = 900000 + i;
  if (g_rank == 0) {
    for (const auto& r : pool.create_batch(ids, 0L)) ASSERT_TRUE(r.has_value()) << code_of(r);
  }
  pool.barrier();
  if (g_rank == 0) {
    std::atomic<int> wrong{0};
    // Each thread adds to its own half of the items and keeps their totals: every response
    // (the item's running total) is known in advance.
    auto caller = [&](std::size_t half) {
      std::mt19937_64 rng(half + 1);
      std::vector<long> totals(k_items / 2, 0);
      for (int round = 0; round < 20; ++round) {
        std::vector<add> batch(1 + rng() % 3000);
        std::vector<long> expected(batch.size());
        for (std::size_t i = 0; i < batch.size(); ++i) {
          const std::size_t k = rng() % totals.size();
          batch[i] = add{ids[half * totals.size() + k], static_cast<long>(i % 7) + 1};
          expected[i] = totals[k] += batch[i].amount;
        }
        const auto rs = pool.send_batch(batch);
        for (std::size_t i = 0; i < batch.size(); ++i) {
          if (!rs[i].has_value() || rs[i].value() != expected[i]) ++wrong;
        }
      }
    };
    std::thread other(caller, 1);
    caller(0);
    other.join();
    EXPECT_EQ(wrong.load(), 0);
    // Nothing is lent now: these are this thread's kept routes, share and results.
    EXPECT_GT(mtp::mpi::impl::thread_scratch<int>().get().capacity(), 0u);
    EXPECT_GT(mtp::mpi::impl::thread_scratch<add>().get().capacity(), 0u);
    EXPECT_GT(mtp::mpi::impl::thread_scratch<mtp::result<long>>().get().capacity(), 0u);
    for (const auto& r : pool.remove_batch(ids)) EXPECT_TRUE(r.has_value()) << code_of(r);
  }
  pool.barrier();
}

int main(int argc, char** argv) {
  mtp::mpi::environment env(argc, argv);
  g_rank = env.rank();
  ::testing::InitGoogleTest(&argc, argv);
  if (env.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  return RUN_ALL_TESTS();
}
