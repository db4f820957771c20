// SPDX-License-Identifier: MIT
// The stall detector beyond long messages: a queue cut by a sender stopped half-way through
// its enqueue, and pools created in a child of fork().
#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "pool_test_util.hpp"
#include "requests.hpp"

namespace {

using namespace std::chrono_literals;
using mtp_test::get;
using mtp_test::hold;

struct pause {
  mtp_test::gate* cut;
  mtp_test::gate* resume;
};
struct cut_sibling {  // from worker 0, enqueue to worker 1 and stop between exchange and link
  mtp::id_t id;
  pause p;
  using response_type = void;
};

void nothing(mtp::impl::worker_base&, mtp::impl::envelope&) noexcept {}

class item {
 public:
  explicit item(mtp::id_t id) : id_(id) {}
  void handle(const cut_sibling& c) {
    mtp::impl::worker_base& sibling = mtp::impl::tl_current_worker->pool().worker(1);
    pause p = c.p;
    sibling.queue().push_cut_for_test(
        mtp::impl::envelope::make(&nothing, 0), [](void* arg) {
          auto& q = *static_cast<pause*>(arg);
          q.cut->open();
          EXPECT_TRUE(q.resume->wait_for(mtp_test::k_bound));
        },
        &p);
    sibling.wake();
  }
  void handle(const hold& h) {
    h.started->open();
    EXPECT_TRUE(h.release->wait_for(mtp_test::k_bound));
  }
  int handle(const get&) const { return static_cast<int>(id_); }

 private:
  mtp::id_t id_;
};
using pool_t = mtp::thread_pool<item>;

TEST(Stalls, AQueueCutByAStoppedSenderIsReportedAsSuch) {
  mtp_test::diagnostic_sink sink;
  mtp::pool_options o = mtp_test::options(2);
  o.stall_threshold = 100ms;
  o.on_diagnostic = sink.callback();
  pool_t pool(o);
  pool.create(0);
  pool.create(1);
  ASSERT_EQ(pool.worker_of(1), 1u);
  mtp_test::gate cut, resume;
  mtp_test::open_on_exit resume_on_failure(resume);
  ASSERT_TRUE(pool.post(cut_sibling{0, {&cut, &resume}}).has_value());
  ASSERT_TRUE(cut.wait_for(mtp_test::k_bound));
  // Worker 1 is idle, with a message queued behind the cut that it cannot reach.
  const auto on_worker_1 = [](const mtp::diagnostic& d) { return d.worker == 1; };
  const auto reports = sink.wait_for_if(mtp::diagnostic::kind::stalled, 1, on_worker_1);
  ASSERT_FALSE(reports.empty());
  EXPECT_FALSE(reports[0].item.has_value()) << "no item's message is running";
  EXPECT_TRUE(mtp_test::contains(reports[0].text, "1 queued message(s) it cannot reach")) << reports[0].text;
  EXPECT_TRUE(mtp_test::contains(reports[0].text, "between the two steps of its enqueue")) << reports[0].text;
  resume.open();
  EXPECT_EQ(MTP_BOUNDED([&] { return pool.send(get{1}); }), 1) << "the worker resumes once the sender links";
}

TEST(Stalls, AChildOfForkMonitorsThePoolsItCreates) {
#if MTP_TEST_TSAN
  GTEST_SKIP() << "ThreadSanitizer does not support threads in a child of a multi-threaded fork";
#else
  {
    // The parent's monitor thread runs before the fork.
    mtp::pool_options o = mtp_test::options(1);
    o.stall_threshold = 100ms;
    pool_t parent_pool(o);
    parent_pool.create(1);
    ASSERT_EQ(parent_pool.send(get{1}), 1);
  }
  const pid_t child = fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    // The child: a pool with a stuck handler must be reported. Exit 0 when it was.
    int status = 1;
    {
      mtp_test::diagnostic_sink sink;
      mtp::pool_options o = mtp_test::options(1);
      o.stall_threshold = 50ms;
      o.on_diagnostic = sink.callback();
      pool_t pool(o);
      pool.create(3);
      mtp_test::gate started, release;
      mtp_test::open_on_exit releaser(release);
      if (pool.post(hold{3, &started, &release}).has_value() && started.wait_for(mtp_test::k_bound)) {
        const auto stuck = [](const mtp::diagnostic& d) { return d.item == mtp::id_t{3}; };
        if (!sink.wait_for_if(mtp::diagnostic::kind::stalled, 1, stuck, std::chrono::seconds(20)).empty()) status = 0;
      }
      release.open();
    }
    std::_Exit(status);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child did not exit normally";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "a pool created in a child of fork() was never watched for stalls";
#endif
}

}  // namespace
