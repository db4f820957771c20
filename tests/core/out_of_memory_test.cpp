// SPDX-License-Identifier: MIT
// Recording an error when memory has run out: mtp::result keeps the error in a reserve, or,
// with the reserve used up, a shared out_of_memory error; a worker whose handler fails for
// want of memory answers the caller instead of ending the process.
//
// This executable replaces the global operator new: a thread can make its own allocations
// fail (refuse_allocations), which no other test executable must see.
#include "pool_test_util.hpp"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace {
thread_local bool t_refuse = false;  // this thread's allocations fail while set
std::atomic<int> g_refused{0};       // allocations refused so far

[[noreturn]] void refuse() {
  g_refused.fetch_add(1, std::memory_order_relaxed);  // relaxed: a counter read after a join or a reply
  throw std::bad_alloc();
}
}  // namespace

// None of these is inlined: GCC would otherwise see malloc() paired with a delete-expression,
// or free() with a new-expression, and warn.
[[gnu::noinline]] void* operator new(std::size_t n) {
  if (t_refuse) refuse();
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;  // NOLINT: the replaceable allocation function
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new(std::size_t n, std::align_val_t al) {
  if (t_refuse) refuse();
  const auto a = static_cast<std::size_t>(al);
  if (void* p = std::aligned_alloc(a, (n + a - 1) / a * a)) return p;  // NOLINT: as above
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }               // NOLINT: as above
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }  // NOLINT: as above
[[gnu::noinline]] void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }  // NOLINT: as above
[[gnu::noinline]] void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);  // NOLINT: as above
}

namespace {

/// Makes every allocation of the calling thread throw std::bad_alloc until the scope ends.
class refuse_allocations {
 public:
  refuse_allocations() noexcept { t_refuse = true; }
  refuse_allocations(const refuse_allocations&) = delete;
  refuse_allocations& operator=(const refuse_allocations&) = delete;
  ~refuse_allocations() { t_refuse = false; }
};

TEST(OutOfMemory, SetErrorKeepsTheWholeErrorWhenTheHeapIsFull) {
  const auto ex = std::make_exception_ptr(std::runtime_error("boom"));
  mtp::result<int> r = 5;
  mtp::result<std::string> s;
  const int refused_before = g_refused.load();
  {
    const refuse_allocations no_memory;
    r.set_error(mtp::error{mtp::errc::handler_failed, 7, ex});
    s = mtp::result<std::string>(mtp::error{mtp::errc::unknown_id, 8, {}});
  }
  EXPECT_GE(g_refused.load() - refused_before, 2) << "the test did not reach the allocation it means to fail";
  ASSERT_TRUE(r.has_error());
  EXPECT_EQ(r.error().code, mtp::errc::handler_failed);
  EXPECT_EQ(r.error().id, 7u);
  EXPECT_EQ(r.error().exception, ex);
  EXPECT_THROW((void)r.value(), std::runtime_error);
  const std::string msg = r.error().message();
  EXPECT_TRUE(mtp_test::contains(msg, "item 7")) << msg;
  EXPECT_TRUE(mtp_test::contains(msg, "boom")) << msg;
  ASSERT_TRUE(s.has_error());
  EXPECT_EQ(s.error().code, mtp::errc::unknown_id);
  EXPECT_EQ(s.error().id, 8u);

  // A copy made without memory is a whole error too, and every state change frees its record.
  mtp::result<int> copy;
  {
    const refuse_allocations no_memory;
    copy = r;
  }
  ASSERT_TRUE(copy.has_error());
  EXPECT_NE(&copy.error(), &r.error());
  EXPECT_EQ(copy.error().id, 7u);
  r.emplace(1);
  copy = mtp::result<int>();
  EXPECT_TRUE(r.has_value());
}

TEST(OutOfMemory, UsedUpReserveGivesTheSharedOutOfMemoryError) {
  // Results sized before memory runs out, as the pool sizes a batch's before it sends it.
  std::vector<mtp::result<int>> results(100000);
  std::size_t kept = 0;
  {
    const refuse_allocations no_memory;
    for (std::size_t i = 0; i < results.size(); ++i) {
      results[i].set_error(mtp::error{mtp::errc::unknown_id, i + 1, {}});
      if (results[i].error().code == mtp::errc::out_of_memory) break;
      ++kept;
    }
  }
  ASSERT_GT(kept, 0u) << "no error was kept whole";
  ASSERT_LT(kept, results.size()) << "the reserve never ran out";
  for (std::size_t i = 0; i < kept; ++i) {
    ASSERT_EQ(results[i].error().code, mtp::errc::unknown_id) << i;
    ASSERT_EQ(results[i].error().id, i + 1) << i;
  }
  const mtp::result<int>& lost = results[kept];
  ASSERT_TRUE(lost.has_error());
  EXPECT_FALSE(lost.has_value());
  EXPECT_EQ(lost.error().code, mtp::errc::out_of_memory);
  EXPECT_EQ(lost.error().id, 0u);
  EXPECT_FALSE(lost.error().exception);
  const std::string msg = lost.error().message();
  EXPECT_EQ(msg, "mtp: memory ran out while an error was recorded, so which request failed and why is lost "
                 "(out_of_memory)");
  MTP_EXPECT_POOL_ERROR(mtp::errc::out_of_memory, lost.value());

  // The shared error survives its holders, and the reserve's records come back for reuse.
  results.clear();
  mtp::result<void> again;
  {
    const refuse_allocations no_memory;
    again.set_error(mtp::error{mtp::errc::timed_out, 3, {}});
  }
  ASSERT_TRUE(again.has_error());
  EXPECT_EQ(again.error().code, mtp::errc::timed_out) << "the records went back to the reserve";
  EXPECT_EQ(again.error().id, 3u);
}

// ---- On a real pool -------------------------------------------------------------------------

struct needs_memory {
  mtp::id_t id;
  using response_type = std::size_t;
};
struct ping {
  mtp::id_t id;
  using response_type = int;
};

class item {
 public:
  explicit item(mtp::id_t id) : id_(id) {}
  // Memory runs out on this worker: what the handler allocates fails, and so does everything
  // the worker allocates until after_message ends the shortage.
  std::size_t handle(const needs_memory&) {
    t_refuse = true;
    const std::vector<char> buffer(4096);
    return buffer.size();
  }
  int handle(const ping&) const { return static_cast<int>(id_); }

 private:
  mtp::id_t id_;
};

struct hooks {
  void after_message(mtp::id_t) noexcept { t_refuse = false; }
};

TEST(OutOfMemory, HandlerFailingForWantOfMemoryAnswersItsCaller) {
  mtp::thread_pool<item, hooks> pool(mtp_test::options(2));
  for (mtp::id_t id = 1; id <= 4; ++id) pool.create(id);
  const int refused_before = g_refused.load();
  EXPECT_THROW((void)pool.send(needs_memory{1}), std::bad_alloc) << "the handler's own exception";
  EXPECT_GE(g_refused.load() - refused_before, 2) << "the worker allocated nothing while memory was out";

  const std::vector<mtp::one_of<needs_memory, ping>> batch{ping{2}, needs_memory{3}, ping{3}, needs_memory{4}};
  const auto replies = pool.send_batch(batch);
  ASSERT_EQ(replies.size(), batch.size());
  EXPECT_EQ(std::get<1>(replies[0].value()), 2);
  ASSERT_TRUE(replies[1].has_error());
  EXPECT_EQ(replies[1].error().code, mtp::errc::handler_failed);
  EXPECT_EQ(replies[1].error().id, 3u);
  EXPECT_THROW((void)replies[1].value(), std::bad_alloc);
  const std::string msg = replies[1].error().message();
  EXPECT_TRUE(mtp_test::contains(msg, "handler for item 3 threw")) << msg;
  EXPECT_EQ(std::get<1>(replies[2].value()), 3) << "the item and its worker carry on";
  ASSERT_TRUE(replies[3].has_error());
  EXPECT_EQ(replies[3].error().id, 4u);
  EXPECT_EQ(pool.send(ping{1}), 1);
}

}  // namespace
