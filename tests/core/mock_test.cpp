// SPDX-License-Identifier: MIT
// The testing seam: the capability concepts describe both the real pool and the mock, and the
// mock checks what it gets (requests, method messages, creates) instead of passing silently.
#include "pool_test_util.hpp"

#include <mtp/testing.hpp>

#include <mtp/core/impl/type_name.hpp>

#include <array>
#include <bit>
#include <chrono>
#include <cstdint>
#include <memory>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

using namespace std::chrono_literals;

struct get_balance {
  mtp::id_t id;
  using response_type = long;
  friend bool operator==(const get_balance&, const get_balance&) = default;
};
struct close_account {
  mtp::id_t id;
  using response_type = void;
  friend bool operator==(const close_account&, const close_account&) = default;
};
struct audit {  // move-only: the seam must not need copies
  mtp::id_t id;
  std::unique_ptr<int> token;
  using response_type = int;
};
struct opaque_note {  // no ==
  mtp::id_t id;
  int weight;
  using response_type = void;
};
struct withdraw {  // printed with operator<<
  mtp::id_t id;
  long cents;
  using response_type = long;
  friend bool operator==(const withdraw&, const withdraw&) = default;
  friend std::ostream& operator<<(std::ostream& os, const withdraw& w) {
    return os << "withdraw{id=" << w.id << ", cents=" << w.cents << "}";
  }
};
struct deposit {  // trivially copyable, no operator<<: printed as bytes (no padding)
  mtp::id_t id;
  std::uint64_t cents;
  using response_type = void;
  friend bool operator==(const deposit&, const deposit&) = default;
};
struct statement {  // trivially copyable, larger than the bytes shown
  mtp::id_t id;
  std::array<std::uint8_t, 100> lines;
  using response_type = void;
  friend bool operator==(const statement&, const statement&) = default;
};
struct rename_account {  // neither operator<< nor trivially copyable: cannot be printed
  mtp::id_t id;
  std::string name;
  using response_type = void;
  friend bool operator==(const rename_account&, const rename_account&) = default;
};

class account {
 public:
  account(mtp::id_t, long balance) : balance_(balance) {}
  long handle(const get_balance&) const { return balance_; }
  void handle(const close_account&) { balance_ = 0; }
  int handle(const audit& a) const { return a.token ? *a.token : -1; }
  void handle(const opaque_note&) {}
  long handle(const withdraw& w) { return balance_ -= w.cents; }
  void handle(const deposit& d) { balance_ += static_cast<long>(d.cents); }
  void handle(const statement&) {}
  void handle(const rename_account&) {}
  long add_interest(long percent) { return balance_ += balance_ * percent / 100; }

 private:
  long balance_;
};

using real_pool = mtp::thread_pool<account>;
using mock = mtp::mock_pool<account>;

// Both satisfy every capability; none needs a copyable request.
static_assert(mtp::pool_of<real_pool, get_balance, long>);
static_assert(mtp::pool_of<mock, get_balance, long>);
static_assert(mtp::sends<real_pool, audit> && mtp::submits<real_pool, audit>);
static_assert(mtp::sends<mock, audit> && mtp::submits<mock, audit>);
static_assert(mtp::sends<mock, mtp::call_t<&account::add_interest>>);
static_assert(mtp::creates<real_pool, long> && mtp::creates<mock, long>);
static_assert(mtp::batch_of<mtp::batch<long>, long>);
static_assert(!mtp::sends<mock, int>, "not a request");

// ---- Code under test, written against the concepts -------------------------------------------

/// Opens accounts, reads their balances in one submitted batch, closes the empty ones.
template <class Pool>
  requires mtp::creates<Pool, long> && mtp::submits<Pool, get_balance> && mtp::sends<Pool, close_account> &&
           mtp::sends_with_deadline<Pool, get_balance>
long open_and_sum(Pool& pool, std::span<const mtp::id_t> ids, long start) {
  long sum = 0;
  std::vector<mtp::id_t> opened;
  const auto created = pool.create_batch(ids, start);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (created[i].has_value()) opened.push_back(ids[i]);
  }
  std::vector<get_balance> reads;
  for (mtp::id_t id : opened) reads.push_back({id});
  auto handle = pool.submit_batch(std::move(reads));
  if (!handle.wait_for(30s)) return -1;  // generous: the real pool may run on a loaded machine
  for (auto& r : handle.take()) sum += r.has_value() ? r.value() : 0;
  for (mtp::id_t id : opened) {
    if (pool.send(get_balance{id}, 30s) == 0) pool.post(close_account{id});
  }
  return sum;
}

TEST(Mock, CodeWrittenAgainstTheConceptsRunsWithoutThreads) {
  mock m;
  const std::thread::id caller = std::this_thread::get_id();
  m.on_create([&](mtp::id_t id) {
    EXPECT_EQ(std::this_thread::get_id(), caller) << "the mock runs everything on the caller";
    if (id == 3) throw std::runtime_error("no such customer");
  });
  m.expect(get_balance{1}, 10L);  // the submitted batch
  m.expect(get_balance{2}, 0L);
  m.expect(get_balance{1}, 10L);  // the timed sends
  m.expect(get_balance{2}, 0L);
  m.expect(close_account{2});
  const std::vector<mtp::id_t> ids{1, 2, 3};
  EXPECT_EQ(open_and_sum(m, ids, 5L), 10);
  EXPECT_NO_THROW(m.verify());
  EXPECT_EQ(m.items(), (std::set<mtp::id_t>{1, 2})) << "the failed create added nothing";
  EXPECT_EQ(m.requests<get_balance>().size(), 4u);
  EXPECT_EQ(m.requests<close_account>().size(), 1u);

  // The same code with the real pool.
  real_pool pool(mtp_test::options(2));
  EXPECT_EQ(open_and_sum(pool, ids, 5L), 15);
  EXPECT_EQ(pool.send(get_balance{3}), 5);
}

TEST(Mock, SubmittedBatchIsAFinishedBatch) {
  mock m;
  m.on<get_balance>([](const get_balance& g) { return 100L * static_cast<long>(g.id); });
  mtp::batch<long> b = m.submit_batch(std::vector<get_balance>{{1}, {2}});
  EXPECT_TRUE(b.ready());
  EXPECT_EQ(b.size(), 2u);
  EXPECT_TRUE(b.wait_for(0s));
  EXPECT_EQ(b.wait()[1].value(), 200);
  const auto taken = b.take();
  EXPECT_EQ(taken[0].value(), 100);
  EXPECT_EQ(b.size(), 0u);
}

TEST(Mock, MethodMessagesAreCompared) {
  mock m;
  m.expect(mtp::make_call(1, &account::add_interest, 5L), 105L);
  EXPECT_EQ(m.call(1, &account::add_interest, 50L), 105) << "the scripted response comes back";
  try {
    m.verify();
    ADD_FAILURE() << "verify() passed a method message with other arguments";
  } catch (const mtp::mock_error& e) {
    EXPECT_TRUE(mtp_test::contains(e.what(), "differs from the one expected")) << e.what();
  }

  mock ok;
  ok.expect(mtp::make_call(1, &account::add_interest, 5L), 105L);
  EXPECT_EQ(ok.call(1, &account::add_interest, 5L), 105);
  EXPECT_NO_THROW(ok.verify());
}

TEST(Mock, MatchersForRequestsWithoutEquality) {
  mock m;
  m.expect<opaque_note>([](const opaque_note& n) { return n.weight > 10; });
  m.expect<audit>([](const audit& a) { return a.token != nullptr; }, 7);
  m.post(opaque_note{1, 50});
  EXPECT_EQ(m.send(audit{1, std::make_unique<int>(1)}), 7);
  EXPECT_NO_THROW(m.verify());

  m.expect<opaque_note>([](const opaque_note& n) { return n.weight > 10; });
  m.post(opaque_note{1, 5});
  EXPECT_THROW(m.verify(), mtp::mock_error);
}

TEST(Mock, ScriptedCreates) {
  mock m;
  m.expect_create(1, 100L);
  m.expect_create(2, 200L).fail(mtp::error{mtp::errc::constructor_failed, 2,
                                           std::make_exception_ptr(std::invalid_argument("bad balance"))});
  m.create(1, 100L);
  EXPECT_THROW(m.create(2, 200L), std::invalid_argument) << "the scripted exception, as from a constructor";
  EXPECT_EQ(m.items(), std::set<mtp::id_t>{1});
  MTP_EXPECT_POOL_ERROR(mtp::errc::duplicate_id, m.create(1, 1L));
  EXPECT_NO_THROW(m.verify());

  m.expect_create(4, 400L);
  m.create(4, 401L);  // other arguments
  m.expect_create(5, 500L);
  m.create(5, 500);  // other argument types: int, not long
  m.expect_create(6, 600L);
  m.create(7, 600L);  // other id
  m.expect_create(8, 1L);  // never happens
  try {
    m.verify();
    ADD_FAILURE() << "verify() passed mismatched creates";
  } catch (const mtp::mock_error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(mtp_test::contains(what, "arguments different")) << what;
    EXPECT_TRUE(mtp_test::contains(what, "arguments of types")) << what;
    EXPECT_TRUE(mtp_test::contains(what, "expected id 6")) << what;
    EXPECT_TRUE(mtp_test::contains(what, "create of id 8 never arrived")) << what;
  }

  // Batches, and removal.
  mock b;
  const std::vector<mtp::id_t> ids{1, 2, 1};
  const auto created = b.create_batch(ids, 5L);
  EXPECT_TRUE(created[0].has_value());
  EXPECT_TRUE(created[1].has_value());
  EXPECT_EQ(created[2].error().code, mtp::errc::duplicate_id);
  const std::vector<mtp::create_request<long>> each{{3, {30L}}, {2, {20L}}};
  const auto created_each = b.create_batch(each);
  EXPECT_TRUE(created_each[0].has_value());
  EXPECT_EQ(created_each[1].error().code, mtp::errc::duplicate_id);
  const std::vector<mtp::id_t> gone{2, 9};
  const auto removed = b.remove_batch(gone);
  EXPECT_TRUE(removed[0].has_value());
  EXPECT_EQ(removed[1].error().code, mtp::errc::unknown_id);
  EXPECT_EQ(b.items(), (std::set<mtp::id_t>{1, 3}));
}

/// What verify() throws, or "" (and a test failure) if it passes.
template <class Item>
std::string verify_failure(const mtp::mock_pool<Item>& m) {
  try {
    m.verify();
  } catch (const mtp::mock_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "verify() passed";
  return {};
}

TEST(MockReport, TypeNamesAreDemangled) {
  EXPECT_EQ(mtp::impl::type_name(typeid(long)), "long");
  EXPECT_EQ(mtp::impl::type_name(typeid(std::tuple<long>)), "std::tuple<long>");

  mock m;
  m.expect(withdraw{1, 50}, 0L);
  m.expect(withdraw{3, 1}, 0L);  // never sent
  (void)m.send(withdraw{1, 70});
  const std::string what = verify_failure(m);
  EXPECT_TRUE(mtp_test::contains(what, "withdraw for id 1 differs from the one expected\n")) << what;
  EXPECT_TRUE(mtp_test::contains(what, "withdraw for id 3 never arrived\n")) << what;
  EXPECT_FALSE(mtp_test::contains(what, "8withdraw")) << "a mangled name: " << what;
  EXPECT_FALSE(mtp_test::contains(what, "typeinfo")) << what;
}

TEST(MockReport, RequestsWithOperatorStreamArePrinted) {
  mock m;
  m.expect(withdraw{1, 50}, 0L);
  m.expect(withdraw{3, 1}, 0L);  // never sent
  EXPECT_EQ(m.send(withdraw{1, 70}), 0) << "a request that differs still gets the expected response";
  const std::string what = verify_failure(m);
  EXPECT_TRUE(mtp_test::contains(what, " for id 1 differs from the one expected\n"
                                       "    received: withdraw{id=1, cents=70}\n"
                                       "    expected: withdraw{id=1, cents=50}\n"))
      << what;
  EXPECT_TRUE(mtp_test::contains(what, " for id 3 never arrived\n    expected: withdraw{id=3, cents=1}\n")) << what;

  // A matcher has no value to show: only the request received.
  mock matched;
  matched.expect<withdraw>([](const withdraw& w) { return w.cents > 100; }, 0L);
  (void)matched.send(withdraw{2, 5});
  const std::string by_matcher = verify_failure(matched);
  EXPECT_TRUE(mtp_test::contains(by_matcher, "differs from the one expected\n    received: withdraw{id=2, cents=5}\n"))
      << by_matcher;
  EXPECT_FALSE(mtp_test::contains(by_matcher, "expected:")) << by_matcher;
}

TEST(MockReport, UnscriptedRequestIsShownAndFailsTheCall) {
  mock m;
  try {
    (void)m.send(withdraw{2, 5});
    ADD_FAILURE() << "a request with no expectation and no responder was answered";
  } catch (const mtp::mock_error& e) {
    EXPECT_TRUE(mtp_test::contains(e.what(), "withdraw to id 2\n    received: withdraw{id=2, cents=5}")) << e.what();
  }
  const std::string what = verify_failure(m);
  EXPECT_TRUE(mtp_test::contains(what, "no response scripted for a request of type ")) << what;
  EXPECT_TRUE(mtp_test::contains(what, "withdraw to id 2\n    received: withdraw{id=2, cents=5}\n")) << what;
}

TEST(MockReport, TriviallyCopyableRequestsArePrintedAsBytes) {
  if constexpr (std::endian::native != std::endian::little) GTEST_SKIP() << "the expected bytes are little-endian";
  mock m;
  m.expect(deposit{1, 2});
  m.post(deposit{1, 0x0403});
  const std::string what = verify_failure(m);
  EXPECT_TRUE(mtp_test::contains(what, "deposit for id 1 differs from the one expected\n"
                                       "    received: bytes: 01 00 00 00 00 00 00 00 03 04 00 00 00 00 00 00\n"
                                       "    expected: bytes: 01 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00\n"))
      << what;

  // At most 64 bytes, then "...".
  mock big;
  statement a{1, {}};
  statement b = a;
  b.lines[99] = 1;
  big.expect(a);
  big.post(b);
  const std::string long_what = verify_failure(big);
  std::string shown = "    received: bytes: 01 00 00 00 00 00 00 00";
  for (int i = 8; i < 64; ++i) shown += " 00";
  EXPECT_TRUE(mtp_test::contains(long_what, shown + " ...\n")) << long_what;
}

TEST(MockReport, OtherRequestsAreSaidToBeUnprintable) {
  mock m;
  m.expect(rename_account{1, "savings"});
  m.post(rename_account{1, "checking"});
  const std::string what = verify_failure(m);
  EXPECT_TRUE(mtp_test::contains(what, "rename_account for id 1 differs from the one expected\n"
                                       "    received: (no operator<< or std::formatter: cannot be printed)\n"
                                       "    expected: (no operator<< or std::formatter: cannot be printed)\n"))
      << what;
}

struct branch {  // created with arguments that cannot all be printed
  branch(mtp::id_t, long, const std::vector<int>&) {}
};

TEST(MockReport, CreateArgumentsArePrintedWhenTheyCanBe) {
  mock m;
  m.expect_create(4, 400L);
  m.create(4, 401L);
  m.expect_create(5, 500L);
  m.create(5, 500);  // an int, not a long
  const std::string what = verify_failure(m);
  EXPECT_TRUE(mtp_test::contains(what, "create #1 (id 4) had arguments different from the ones expected\n"
                                       "    received: 401\n    expected: 400\n"))
      << what;
  EXPECT_TRUE(mtp_test::contains(what, "create #2 (id 5) had arguments of types std::tuple<int>, expected "
                                       "std::tuple<long>\n    received: 500\n    expected: 500\n"))
      << what;

  mtp::mock_pool<branch> b;
  b.expect_create(1, 5L, std::vector<int>{1});
  b.create(1, 5L, std::vector<int>{2});
  const std::string not_printed = verify_failure(b);
  EXPECT_TRUE(mtp_test::contains(not_printed, "(id 1) had arguments different from the ones expected\n")) << not_printed;
  EXPECT_FALSE(mtp_test::contains(not_printed, "received:")) << not_printed;
}

TEST(Mock, TimedFormsAnswerAtOnce) {
  mock m;
  m.expect(get_balance{1}, 1L);
  m.expect_error(get_balance{2}, mtp::error{mtp::errc::timed_out, 2, {}});
  EXPECT_EQ(m.send(get_balance{1}, 1ms), 1);
  MTP_EXPECT_POOL_ERROR(mtp::errc::timed_out, m.send(get_balance{2}, 1ms));
  m.on<get_balance>([](const get_balance&) { return 3L; });
  const std::vector<get_balance> batch{{1}, {2}};
  const auto r = m.send_batch(batch, 10ms);
  EXPECT_EQ(r[1].value(), 3);
  EXPECT_NO_THROW(m.verify());
}

}  // namespace
