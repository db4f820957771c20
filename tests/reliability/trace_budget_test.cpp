// SPDX-License-Identifier: MIT
// The process-wide bound on trace memory: MTP_TRACE makes every pool of a process trace, so
// rings beyond the budget are cut or left out, the pool says so, and the trace file too.
#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "pool_test_util.hpp"

namespace {

struct ping {
  mtp::id_t id;
  using response_type = int;
};
class item {
 public:
  explicit item(mtp::id_t) {}
  int handle(const ping&) { return 1; }
};
using pool_t = mtp::thread_pool<item>;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct traced {
  std::string path;
  mtp_test::diagnostic_sink sink;
  std::unique_ptr<pool_t> pool;
  explicit traced(const std::string& name) : path(::testing::TempDir() + "mtp-budget-" + name + ".json") {
    std::remove(path.c_str());
    mtp::pool_options o = mtp_test::options(1);
    o.trace_file = path;
    o.trace_events = 16384;  // 768 KiB of the 1 MiB budget
    o.on_diagnostic = sink.callback();
    pool = std::make_unique<pool_t>(o);
    pool->create(1);
    EXPECT_EQ(pool->send(ping{1}), 1);
  }
  ~traced() { std::remove(path.c_str()); }
  std::vector<mtp::diagnostic> limited() { return sink.of_kind(mtp::diagnostic::kind::trace_limited); }
};

TEST(TraceBudget, RingsBeyondTheProcessBudgetAreCutAndSaySo) {
  // Read once, when the first traced pool of the process starts: this is the only test here.
  ASSERT_EQ(setenv("MTP_TRACE_MEMORY", "1", 1), 0);  // MiB
  auto a = std::make_unique<traced>("a");
  EXPECT_TRUE(a->limited().empty()) << "the first ring fits the budget";

  auto b = std::make_unique<traced>("b");
  const auto cut = b->limited();
  ASSERT_EQ(cut.size(), 1u);
  EXPECT_TRUE(mtp_test::contains(cut[0].text, "MTP_TRACE_MEMORY, 1 MiB")) << cut[0].text;
  EXPECT_TRUE(mtp_test::contains(cut[0].text, "records at most")) << cut[0].text;
  EXPECT_TRUE(mtp_test::contains(cut[0].text, "of 16384 events")) << cut[0].text;

  auto c = std::make_unique<traced>("c");
  const auto none = c->limited();
  ASSERT_EQ(none.size(), 1u);
  EXPECT_TRUE(mtp_test::contains(none[0].text, "spent: this worker records no trace")) << none[0].text;

  b->pool->shutdown();
  const std::string b_file = read_file(b->path);
  EXPECT_TRUE(mtp_test::contains(b_file, "\"trace_limited\"")) << "the trace file does not say it was cut";
  EXPECT_TRUE(mtp_test::contains(b_file, "\"requested\":16384")) << b_file.substr(0, 400);
  c->pool->shutdown();
  EXPECT_TRUE(mtp_test::contains(read_file(c->path), "\"traceEvents\"")) << "a pool without a ring still writes its file";

  // Destroyed pools give their rings' memory back.
  a.reset();
  b.reset();
  c.reset();
  traced d("d");
  EXPECT_TRUE(d.limited().empty()) << "the budget was not given back";
}

}  // namespace
