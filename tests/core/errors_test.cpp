// SPDX-License-Identifier: MIT
// Errors: throwing handlers (std and non-std exceptions, bad_alloc), unknown ids, and posts
// that fail on the worker.
#include "pool_test_util.hpp"
#include "requests.hpp"

#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using mtp_test::add;
using mtp_test::hold;

struct fail_std {
  mtp::id_t id;
  using response_type = int;
};
struct fail_int {
  mtp::id_t id;
  using response_type = void;
};
struct fail_alloc {
  mtp::id_t id;
  using response_type = int;
};

class account {
 public:
  explicit account(mtp::id_t id) : id_(id) {}
  int handle(const add& m) { return total_ += m.amount; }
  int handle(const fail_std&) const { throw std::runtime_error("boom from item " + std::to_string(id_)); }
  void handle(const fail_int&) const { throw 42; }
  int handle(const fail_alloc&) const { throw std::bad_alloc(); }
  void handle(const hold& h) const { mtp_test::hold_until_released(h); }
  int total() const { return total_; }

 private:
  mtp::id_t id_;
  int total_ = 0;
};

using pool_t = mtp::thread_pool<account>;

class Errors : public ::testing::Test {
 protected:
  static mtp::pool_options opts(mtp_test::diagnostic_sink& sink) {
    mtp::pool_options o = mtp_test::options(2);
    o.on_diagnostic = sink.callback();
    return o;
  }
  void SetUp() override {
    for (mtp::id_t id = 0; id < 4; ++id) pool.create(id);
    ASSERT_EQ(pool.send(add{1, 10}), 10);
  }
  mtp_test::diagnostic_sink sink;
  pool_t pool{opts(sink)};
};

TEST_F(Errors, SendRethrowsTheHandlersStdException) {
  try {
    (void)pool.send(fail_std{1});
    ADD_FAILURE() << "send did not throw";
  } catch (const mtp::pool_error& e) {
    ADD_FAILURE() << "got pool_error instead of the handler's own exception: " << e.what();
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom from item 1");
  }
  // The worker and the item carry on, state intact.
  EXPECT_EQ(pool.send(add{1, 5}), 15);
  EXPECT_EQ(pool.call(1, &account::total), 15);
  EXPECT_EQ(pool.stats().total_items(), 4u);
}

TEST_F(Errors, SendRethrowsNonStdExceptions) {
  try {
    pool.send(fail_int{1});
    ADD_FAILURE() << "send did not throw";
  } catch (int v) {
    EXPECT_EQ(v, 42);
  } catch (...) {
    ADD_FAILURE() << "the handler's int was not rethrown as is";
  }
  EXPECT_EQ(pool.send(add{1, 1}), 11);
}

TEST_F(Errors, BadAllocFromAHandlerFailsOnlyThatRequest) {
  EXPECT_THROW((void)pool.send(fail_alloc{1}), std::bad_alloc);
  EXPECT_THROW((void)pool.send(fail_alloc{2}), std::bad_alloc);
  EXPECT_EQ(pool.send(add{1, 1}), 11);
  EXPECT_EQ(pool.send(add{2, 1}), 1);
}

TEST_F(Errors, BatchResultsCarryTheErrorAndTheRestComplete) {
  const std::vector<fail_std> fails{{0}, {1}, {2}};
  const auto r = pool.send_batch(fails);
  ASSERT_EQ(r.size(), 3u);
  for (std::size_t i = 0; i < r.size(); ++i) {
    ASSERT_TRUE(r[i].has_error());
    EXPECT_FALSE(r[i].has_value());
    EXPECT_FALSE(static_cast<bool>(r[i]));
    EXPECT_EQ(r[i].error().code, mtp::errc::handler_failed);
    EXPECT_EQ(r[i].error().id, i);
    const std::string msg = r[i].error().message();
    EXPECT_TRUE(mtp_test::contains(msg, "boom from item " + std::to_string(i))) << msg;
    EXPECT_TRUE(mtp_test::contains(msg, "handler_failed")) << msg;
    EXPECT_TRUE(static_cast<bool>(r[i].error().exception));
    EXPECT_THROW((void)r[i].value(), std::runtime_error);
  }
  // Non-std exceptions in a batch: the code, the id, and the original value through value().
  const std::vector<fail_int> ints{{3}};
  const auto ri = pool.send_batch(ints);
  ASSERT_TRUE(ri[0].has_error());
  EXPECT_EQ(ri[0].error().code, mtp::errc::handler_failed);
  EXPECT_TRUE(mtp_test::contains(ri[0].error().message(), "3")) << ri[0].error().message();
  try {
    ri[0].value();
    ADD_FAILURE() << "value() did not throw";
  } catch (int v) {
    EXPECT_EQ(v, 42);
  } catch (...) {
    ADD_FAILURE() << "value() threw something else than the handler's int";
  }
}

TEST_F(Errors, ThrowingHandlerWithMessagesQueuedBehindIt) {
  mtp_test::gate started;
  mtp_test::gate release;
  mtp_test::open_on_exit releaser(release);
  // Item 1 lives on worker 1; hold that worker so the next messages queue up behind.
  ASSERT_TRUE(pool.post(hold{3, &started, &release}).has_value());
  ASSERT_TRUE(started.wait_for(std::chrono::seconds(30)));

  auto adds1 = pool.submit_batch(std::vector<add>{{1, 1}, {1, 2}});
  auto fails = pool.submit_batch(std::vector<fail_std>{{1}, {1}});
  ASSERT_TRUE(pool.post(fail_int{1}).has_value());
  auto adds2 = pool.submit_batch(std::vector<add>{{1, 4}, {3, 8}});
  release.open();

  const auto a1 = MTP_BOUNDED([&] { return adds1.take(); });
  const auto f = MTP_BOUNDED([&] { return fails.take(); });
  const auto a2 = MTP_BOUNDED([&] { return adds2.take(); });
  EXPECT_EQ(a1[0].value(), 11);
  EXPECT_EQ(a1[1].value(), 13);
  ASSERT_TRUE(f[0].has_error());
  ASSERT_TRUE(f[1].has_error());
  EXPECT_EQ(f[1].error().code, mtp::errc::handler_failed);
  EXPECT_EQ(a2[0].value(), 17) << "messages queued behind a throwing handler were lost or reordered";
  EXPECT_EQ(a2[1].value(), 8);
  const auto posted = sink.wait_for(mtp::diagnostic::kind::post_failed, 1);
  ASSERT_EQ(posted.size(), 1u);
  ASSERT_TRUE(posted[0].error.has_value());
  EXPECT_EQ(posted[0].error->code, mtp::errc::handler_failed);
  EXPECT_EQ(posted[0].error->id, 1u);
}

TEST_F(Errors, UnknownIdIsAnErrorForThatRequestOnly) {
  const auto e = mtp_test::pool_error_of([&] { (void)pool.send(add{123456, 1}); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code(), mtp::errc::unknown_id);
  EXPECT_EQ(e->id(), 123456u);
  EXPECT_TRUE(mtp_test::contains(e->what(), "123456")) << e->what();
  MTP_EXPECT_POOL_ERROR(mtp::errc::unknown_id, pool.call(98765, &account::total));

  const std::vector<add> reqs{{1, 1}, {55, 1}, {2, 1}, {56, 1}};
  const auto r = pool.send_batch(reqs);
  EXPECT_EQ(r[0].value(), 11);
  EXPECT_EQ(r[2].value(), 1);
  ASSERT_TRUE(r[1].has_error());
  EXPECT_EQ(r[1].error().code, mtp::errc::unknown_id);
  EXPECT_EQ(r[1].error().id, 55u);
  EXPECT_TRUE(mtp_test::contains(r[1].error().message(), "55")) << r[1].error().message();
  EXPECT_FALSE(static_cast<bool>(r[1].error().exception));
  try {
    (void)r[3].value();
    ADD_FAILURE() << "value() of an unknown id did not throw";
  } catch (const mtp::pool_error& pe) {
    EXPECT_EQ(pe.code(), mtp::errc::unknown_id);
    EXPECT_EQ(pe.id(), 56u);
  }
}

TEST_F(Errors, PostFailuresReachTheDiagnosticHook) {
  ASSERT_TRUE(pool.post(add{4242, 1}).has_value()) << "post of an unknown id is accepted; it fails on the worker";
  ASSERT_TRUE(pool.post(fail_std{2}).has_value());
  const auto d = sink.wait_for(mtp::diagnostic::kind::post_failed, 2);
  ASSERT_EQ(d.size(), 2u);
  bool saw_unknown = false;
  bool saw_handler = false;
  for (const auto& x : d) {
    ASSERT_TRUE(x.error.has_value());
    if (x.error->code == mtp::errc::unknown_id) {
      saw_unknown = true;
      EXPECT_EQ(x.error->id, 4242u);
      EXPECT_TRUE(mtp_test::contains(x.text, "4242")) << x.text;
      EXPECT_EQ(x.worker, 0u);  // 4242 % 2
    } else if (x.error->code == mtp::errc::handler_failed) {
      saw_handler = true;
      EXPECT_EQ(x.error->id, 2u);
      EXPECT_TRUE(mtp_test::contains(x.text, "boom from item 2")) << x.text;
      EXPECT_THROW(x.error->raise(), std::runtime_error);
    }
  }
  EXPECT_TRUE(saw_unknown);
  EXPECT_TRUE(saw_handler);
  EXPECT_EQ(pool.send(add{2, 3}), 3) << "the item that failed a post lost its state";
}

TEST_F(Errors, PostAfterShutdownFails) {
  pool.shutdown();
  const mtp::result<void> r = pool.post(add{1, 1});
  ASSERT_TRUE(r.has_error());
  EXPECT_EQ(r.error().code, mtp::errc::pool_stopped);
  EXPECT_EQ(r.error().id, 1u);
  EXPECT_TRUE(sink.of_kind(mtp::diagnostic::kind::post_failed).empty());
}

}  // namespace
