// SPDX-License-Identifier: MIT
// Bounded queues (pool_options::queue_capacity) and deadlines (send / send_batch with a
// timeout).
//
// To hold a worker without using queue room, a test creates an item whose constructor waits on
// a gate: create is a control message, never counted against the capacity.
#include "pool_test_util.hpp"
#include "requests.hpp"

#include <deque>
#include <future>
#include <span>
#include <vector>

namespace {

using mtp_test::add;
using mtp_test::get;

struct append {
  mtp::id_t id;
  int value;
  using response_type = std::size_t;
};
using slow = mtp_test::basic_hold<int>;  // answers the total after one more

class item {
 public:
  explicit item(mtp::id_t) {}
  item(mtp::id_t, mtp_test::gate* started, mtp_test::gate* release) {
    started->open();
    release->wait();
  }
  int handle(const add& m) { return total_ += m.amount; }
  int handle(const get&) const { return total_; }
  std::size_t handle(const append& m) {
    log_.push_back(m.value);
    return log_.size();
  }
  int handle(const slow& m) {
    mtp_test::hold_until_released(m);
    return ++total_;
  }
  std::vector<int> log() const { return log_; }

 private:
  int total_ = 0;
  std::vector<int> log_;
};

using pool_t = mtp::thread_pool<item>;

mtp::pool_options bounded_options(std::size_t capacity) {
  mtp::pool_options o = mtp_test::options(2);
  o.queue_capacity = capacity;
  return o;
}

/// Holds worker 0 (in the constructor of item `id`, an even id) until `release` opens.
std::future<void> hold_worker0(pool_t& pool, mtp::id_t id, mtp_test::gate& started, mtp_test::gate& release) {
  auto f = std::async(std::launch::async, [&pool, id, &started, &release] { pool.create(id, &started, &release); });
  EXPECT_TRUE(started.wait_for(std::chrono::seconds(30))) << "worker 0 never started the holding constructor";
  return f;
}

bool finishes(std::future<void>& f) { return f.wait_for(std::chrono::seconds(30)) == std::future_status::ready; }

// ---- Bounded queues ----------------------------------------------------------------------------

TEST(Backpressure, PostFailsAtOnceWhenTheQueueIsFull) {
  constexpr std::size_t capacity = 4;
  pool_t pool(bounded_options(capacity));
  pool.create(1);
  pool.create(2);
  mtp_test::gate started, release;
  auto holder = hold_worker0(pool, 10, started, release);
  mtp_test::open_on_exit releaser(release);

  for (std::size_t i = 0; i < capacity; ++i) ASSERT_TRUE(pool.post(add{2, 1}).has_value()) << "post " << i;
  const auto refused = MTP_BOUNDED([&] { return pool.post(add{2, 100}); });
  ASSERT_TRUE(refused.has_error()) << "a post beyond the capacity was accepted";
  EXPECT_EQ(refused.error().code, mtp::errc::queue_full);
  EXPECT_EQ(refused.error().id, 2u);
  EXPECT_TRUE(pool.post(add{1, 1}).has_value()) << "worker 1's queue is not full";
  EXPECT_EQ(pool.stats().workers[0].queue_depth, capacity);

  release.open();
  ASSERT_TRUE(finishes(holder));
  holder.get();
  EXPECT_EQ(pool.send(get{2}), static_cast<int>(capacity)) << "the refused post ran, or an accepted one was lost";
  EXPECT_TRUE(pool.post(add{2, 1}).has_value()) << "room is not given back after the queue drained";
  EXPECT_EQ(pool.send(get{2}), static_cast<int>(capacity) + 1);
}

TEST(Backpressure, BlockingCallsWaitForRoom) {
  pool_t pool(bounded_options(2));
  pool.create(2);
  mtp_test::gate started, release;
  auto holder = hold_worker0(pool, 10, started, release);
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(add{2, 1}).has_value());
  ASSERT_TRUE(pool.post(add{2, 1}).has_value());
  ASSERT_TRUE(pool.post(add{2, 1}).has_error());

  auto sender = std::async(std::launch::async, [&pool] { return pool.send(add{2, 10}); });
  // The worker is held, so the sender sleeps until there is room, and says so in the stats.
  EXPECT_TRUE(mtp_test::poll_until([&] { return pool.stats().workers[0].senders_waiting == 1; }));
  EXPECT_EQ(sender.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  EXPECT_EQ(pool.stats().workers[1].senders_waiting, 0u);
  release.open();
  ASSERT_EQ(sender.wait_for(std::chrono::seconds(30)), std::future_status::ready) << "send never got room";
  const int v = sender.get();
  EXPECT_TRUE(v == 10 || v == 11 || v == 12) << v;
  ASSERT_TRUE(finishes(holder));
  EXPECT_EQ(pool.send(get{2}), 12);
  EXPECT_EQ(pool.stats().workers[0].senders_waiting, 0u);
}

TEST(Backpressure, BatchLargerThanTheCapacityCompletesInOrder) {
  pool_t pool(bounded_options(4));
  for (mtp::id_t id = 0; id < 4; ++id) pool.create(id);
  std::vector<append> reqs;
  for (int v = 0; v < 300; ++v) reqs.push_back({static_cast<mtp::id_t>(v % 3 == 0 ? 2 : v % 4), v});
  const auto r = MTP_BOUNDED([&] { return pool.send_batch(reqs); });
  ASSERT_EQ(r.size(), reqs.size());
  std::size_t len2 = 0;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(r[i].has_value()) << i << ": " << r[i].error().message();
    if (reqs[i].id == 2) {
      EXPECT_EQ(r[i].value(), ++len2) << i;
    }
  }
  std::vector<int> expected;
  for (const auto& q : reqs) {
    if (q.id == 2) expected.push_back(q.value);
  }
  EXPECT_EQ(pool.call(2, &item::log), expected);
  // The same through submit_batch and the span overload.
  // submit_batch never waits for room: what does not fit gets queue_full, the rest runs.
  auto handle = pool.submit_batch(std::vector<append>(reqs.begin(), reqs.begin() + 50));
  const auto h = MTP_BOUNDED([&] { return handle.take(); });
  std::size_t ran = 0;
  for (const auto& x : h) {
    if (x.has_value()) ++ran;
    else EXPECT_EQ(x.error().code, mtp::errc::queue_full) << x.error().message();
  }
  EXPECT_GE(ran, 4u) << "an empty bounded queue always takes a first piece";
  std::vector<mtp::result<std::size_t>> out(reqs.size());
  MTP_BOUNDED([&] { pool.send_batch(std::span<const append>(reqs), std::span<mtp::result<std::size_t>>(out)); });
  for (const auto& x : out) EXPECT_TRUE(x.has_value());
}

TEST(Backpressure, CreateRemoveAndShutdownAreNeverRefused) {
  pool_t pool(bounded_options(1));
  pool.create(2);
  mtp_test::gate started, release;
  auto holder = hold_worker0(pool, 10, started, release);
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(add{2, 1}).has_value());
  ASSERT_EQ(pool.post(add{2, 1}).error().code, mtp::errc::queue_full);

  auto creator = std::async(std::launch::async, [&pool] { pool.create(4); });
  auto remover = std::async(std::launch::async, [&pool] { return pool.remove(2); });
  // Both are queued behind the full queue's post (the queue depth counts every envelope)
  // before the worker is released; neither waits for room.
  EXPECT_TRUE(mtp_test::poll_until([&] { return pool.stats().workers[0].queue_depth == 3; }))
      << "create or remove was not queued while the queue was full";
  EXPECT_EQ(pool.stats().workers[0].senders_waiting, 0u);
  release.open();
  ASSERT_TRUE(finishes(holder));
  ASSERT_TRUE(finishes(creator));
  EXPECT_NO_THROW(creator.get());
  ASSERT_EQ(remover.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_TRUE(remover.get());
  EXPECT_EQ(pool.stats().total_items(), 2u);  // 10 and 4

  // Shutdown with a full queue behind a held worker.
  mtp_test::gate started2, release2;
  auto holder2 = hold_worker0(pool, 12, started2, release2);
  mtp_test::open_on_exit releaser2(release2);
  ASSERT_TRUE(pool.post(add{4, 1}).has_value());
  auto stopper = std::async(std::launch::async, [&pool] { pool.shutdown(); });
  // The worker is released only once shutdown has begun (the pool refuses new messages).
  EXPECT_TRUE(mtp_test::poll_until([&] {
    const auto refused = pool.post(add{4, 1});
    return refused.has_error() && refused.error().code == mtp::errc::pool_stopped;
  })) << "shutdown did not begin while the queue was full";
  release2.open();
  ASSERT_TRUE(finishes(holder2));
  ASSERT_TRUE(finishes(stopper));
  stopper.get();
  EXPECT_EQ(pool.stats().total_items(), 0u);
}

// ---- Deadlines ---------------------------------------------------------------------------------

TEST(Deadline, SendWithinTheDeadlineReturnsTheValue) {
  pool_t pool(mtp_test::options(2));
  pool.create(1);
  EXPECT_EQ(pool.send(add{1, 3}, std::chrono::seconds(30)), 3);
  EXPECT_EQ(pool.send(add{1, 3}, std::chrono::hours(24 * 365 * 10)), 6);
  const std::vector<add> reqs{{1, 1}, {1, 1}};
  const auto r = pool.send_batch(reqs, std::chrono::seconds(30));
  EXPECT_EQ(r[0].value(), 7);
  EXPECT_EQ(r[1].value(), 8);
  MTP_EXPECT_POOL_ERROR(mtp::errc::unknown_id, pool.send(add{99, 1}, std::chrono::seconds(30)));
}

TEST(Deadline, UnstartedRequestIsSkipped) {
  pool_t pool(mtp_test::options(2));
  pool.create(2);
  mtp_test::gate started, release;
  auto holder = hold_worker0(pool, 10, started, release);
  mtp_test::open_on_exit releaser(release);
  const auto e = MTP_BOUNDED([&] { return mtp_test::pool_error_of([&] { (void)pool.send(add{2, 5}, std::chrono::milliseconds(50)); }); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code(), mtp::errc::timed_out);
  EXPECT_EQ(e->id(), 2u);
  release.open();
  ASSERT_TRUE(finishes(holder));
  EXPECT_EQ(pool.send(get{2}), 0) << "a request not started by its deadline still ran";
}

TEST(Deadline, StartedRequestFinishesAndItsResultIsDiscarded) {
  // Declared before the pool, so that they outlive its workers: a started request waits on
  // `release`, and each attempt's request may open its `started`.
  std::deque<mtp_test::gate> started;
  mtp_test::gate release;
  pool_t pool(mtp_test::options(2));
  mtp_test::open_on_exit releaser(release);
  pool.create(2);
  // A worker that wakes only after the deadline skips the request (UnstartedRequestIsSkipped);
  // then the attempt is repeated with a longer deadline until the request starts in time.
  bool ran = false;
  for (std::chrono::milliseconds deadline{100}; !ran && deadline <= std::chrono::seconds(30); deadline *= 4) {
    mtp_test::gate& attempt_started = started.emplace_back();
    auto sender = std::async(std::launch::async, [&pool, &attempt_started, &release, deadline] {
      return mtp_test::pool_error_of([&] { (void)pool.send(slow{2, &attempt_started, &release}, deadline); });
    });
    ASSERT_EQ(sender.wait_for(mtp_test::k_bound + deadline), std::future_status::ready) << "send ignored its deadline";
    const auto e = sender.get();
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->code(), mtp::errc::timed_out);
    // The request either started (and waits for `release`) or was skipped. A later message for
    // the same item runs only after it, so either `started` opens or that message is answered.
    auto probe = pool.submit_batch(std::vector<get>{{2}});
    ASSERT_TRUE(mtp_test::poll_until([&] { return attempt_started.is_open() || probe.ready(); }))
        << "the request neither started nor was skipped";
    ran = attempt_started.is_open();
  }
  ASSERT_TRUE(ran) << "the worker never started the request before its deadline";
  release.open();
  EXPECT_EQ(MTP_BOUNDED([&] { return pool.send(get{2}); }), 1) << "the started request did not finish";
}

TEST(Deadline, BatchTimesOutForUnansweredRequests) {
  pool_t pool(mtp_test::options(2));
  for (mtp::id_t id = 1; id <= 3; ++id) pool.create(id);
  mtp_test::gate started, release;
  auto holder = hold_worker0(pool, 10, started, release);
  mtp_test::open_on_exit releaser(release);
  const std::vector<add> reqs{{1, 1}, {2, 1}, {3, 1}, {2, 1}};
  const auto r = MTP_BOUNDED([&] { return pool.send_batch(reqs, std::chrono::milliseconds(100)); });
  ASSERT_EQ(r.size(), reqs.size());
  for (std::size_t i = 0; i < r.size(); ++i) {
    ASSERT_TRUE(r[i].has_error()) << i;
    EXPECT_EQ(r[i].error().code, mtp::errc::timed_out) << i;
    EXPECT_EQ(r[i].error().id, reqs[i].id);
  }
  release.open();
  ASSERT_TRUE(finishes(holder));
  EXPECT_EQ(pool.send(get{2}), 0) << "requests for the held worker ran after their deadline";
}

TEST(Deadline, NoRoomBeforeTheDeadlineTimesOut) {
  pool_t pool(bounded_options(1));
  pool.create(2);
  mtp_test::gate started, release;
  auto holder = hold_worker0(pool, 10, started, release);
  mtp_test::open_on_exit releaser(release);
  ASSERT_TRUE(pool.post(add{2, 1}).has_value());
  MTP_EXPECT_POOL_ERROR(mtp::errc::timed_out, MTP_BOUNDED([&] { return pool.send(add{2, 100}, std::chrono::milliseconds(50)); }));
  release.open();
  ASSERT_TRUE(finishes(holder));
  EXPECT_EQ(pool.send(get{2}), 1) << "a request that never found room ran";
}

}  // namespace
