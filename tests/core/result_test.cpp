// SPDX-License-Identifier: MIT
// mtp::result, mtp::error and mtp::pool_error on their own.
#include "pool_test_util.hpp"

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

TEST(Result, PendingHasNeitherValueNorError) {
  const mtp::result<int> r;
  EXPECT_FALSE(r.has_value());
  EXPECT_FALSE(r.has_error());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_THROW((void)r.value(), std::logic_error);
  const mtp::result<void> v;
  EXPECT_FALSE(v.has_value());
  EXPECT_THROW(v.value(), std::logic_error);
}

TEST(Result, Value) {
  mtp::result<int> r = 5;
  EXPECT_TRUE(r.has_value());
  EXPECT_FALSE(r.has_error());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.value(), 5);
  r.value() = 6;  // value() & gives a reference
  EXPECT_EQ(r.value(), 6);
  r.emplace(7);
  EXPECT_EQ(r.value(), 7);

  mtp::result<std::string> s = std::string("text");
  const std::string moved = std::move(s).value();
  EXPECT_EQ(moved, "text");

  mtp::result<std::unique_ptr<int>> p = std::make_unique<int>(3);
  const std::unique_ptr<int> owned = std::move(p).value();
  ASSERT_NE(owned, nullptr);
  EXPECT_EQ(*owned, 3);
}

TEST(Result, VoidResult) {
  mtp::result<void> r;
  r.emplace();
  EXPECT_TRUE(r.has_value());
  EXPECT_NO_THROW(r.value());
  const mtp::result<void> u = mtp::unit{};
  EXPECT_TRUE(u.has_value());
  r.set_error(mtp::error{mtp::errc::pool_stopped, 4, {}});
  EXPECT_TRUE(r.has_error());
  EXPECT_FALSE(r.has_value());
  EXPECT_THROW(r.value(), mtp::pool_error);
}

TEST(Result, ErrorWithoutExceptionRaisesPoolError) {
  const mtp::result<int> r = mtp::error{mtp::errc::unknown_id, 42, {}};
  ASSERT_TRUE(r.has_error());
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, mtp::errc::unknown_id);
  EXPECT_EQ(r.error().id, 42u);
  const std::string msg = r.error().message();
  EXPECT_TRUE(mtp_test::contains(msg, "42")) << msg;
  EXPECT_TRUE(mtp_test::contains(msg, "unknown_id")) << msg;
  try {
    (void)r.value();
    ADD_FAILURE() << "value() did not throw";
  } catch (const mtp::pool_error& e) {
    EXPECT_EQ(e.code(), mtp::errc::unknown_id);
    EXPECT_EQ(e.id(), 42u);
    EXPECT_EQ(std::string(e.what()), msg);
  }
}

TEST(Result, ErrorWithExceptionRethrowsIt) {
  const auto ex = std::make_exception_ptr(std::out_of_range("inner text"));
  const mtp::result<int> r = mtp::error{mtp::errc::handler_failed, 9, ex};
  EXPECT_THROW((void)r.value(), std::out_of_range);
  EXPECT_TRUE(mtp_test::contains(r.error().message(), "inner text")) << r.error().message();
  EXPECT_TRUE(mtp_test::contains(r.error().message(), "handler_failed")) << r.error().message();
  const mtp::result<int> n = mtp::error{mtp::errc::handler_failed, 9, std::make_exception_ptr(3.5)};
  EXPECT_THROW((void)n.value(), double);
  EXPECT_FALSE(n.error().message().empty());
}

TEST(Result, EveryCodeHasAName) {
  using mtp::errc;
  const std::pair<errc, const char*> names[] = {
      {errc::unknown_id, "unknown_id"},         {errc::duplicate_id, "duplicate_id"},
      {errc::constructor_failed, "constructor_failed"}, {errc::handler_failed, "handler_failed"},
      {errc::hook_failed, "hook_failed"},       {errc::pool_stopped, "pool_stopped"},
      {errc::would_deadlock, "would_deadlock"}, {errc::invalid_route, "invalid_route"},
      {errc::queue_full, "queue_full"},         {errc::timed_out, "timed_out"},
      {errc::cancelled, "cancelled"},
  };
  for (const auto& [code, name] : names) {
    EXPECT_STREQ(mtp::to_string(code), name);
    const mtp::error e{code, 77, {}};
    EXPECT_TRUE(mtp_test::contains(e.message(), name)) << e.message();
    EXPECT_TRUE(mtp_test::contains(e.message(), "77")) << e.message();
    const mtp::pool_error pe(e);
    EXPECT_EQ(pe.code(), code);
    EXPECT_EQ(pe.id(), 77u);
  }
  // The one code that names no item: it stands for an error whose item was lost.
  EXPECT_STREQ(mtp::to_string(errc::out_of_memory), "out_of_memory");
  const mtp::error lost{errc::out_of_memory, 0, {}};
  EXPECT_TRUE(mtp_test::contains(lost.message(), "memory ran out")) << lost.message();
  EXPECT_TRUE(mtp_test::contains(lost.message(), "(out_of_memory)")) << lost.message();
}

// ---- Layout and ownership ---------------------------------------------------------------

static_assert(sizeof(mtp::result<std::uint64_t>) == 16, "a value and one state word");
static_assert(sizeof(mtp::result<double>) == 16);
static_assert(sizeof(mtp::result<void>) <= 16);
static_assert(std::is_copy_constructible_v<mtp::result<int>>);
static_assert(std::is_copy_constructible_v<mtp::result<std::string>>);
static_assert(!std::is_copy_constructible_v<mtp::result<std::unique_ptr<int>>>);
static_assert(std::is_nothrow_move_constructible_v<mtp::result<std::unique_ptr<int>>>);
static_assert(std::is_nothrow_default_constructible_v<mtp::result<std::string>>);

// Counts live instances, to check that a result destroys exactly what it built.
struct tracked {
  static inline int live = 0;
  int v;
  explicit tracked(int x) : v(x) { ++live; }
  tracked(const tracked& o) : v(o.v) { ++live; }
  tracked(tracked&& o) noexcept : v(o.v) { ++live; }
  tracked& operator=(const tracked&) = default;
  ~tracked() { --live; }
};

TEST(Result, CopyAndMoveKeepTheState) {
  const mtp::result<std::string> v = std::string("text");
  mtp::result<std::string> c = v;  // copy of a value
  EXPECT_EQ(c.value(), "text");
  EXPECT_EQ(v.value(), "text");

  const mtp::result<std::string> e = mtp::error{mtp::errc::timed_out, 3, {}};
  mtp::result<std::string> ce = e;  // copy of an error: its own error
  ASSERT_TRUE(ce.has_error());
  EXPECT_EQ(ce.error().code, mtp::errc::timed_out);
  EXPECT_NE(&ce.error(), &e.error());

  mtp::result<std::string> moved = std::move(ce);  // the error changes hands
  ASSERT_TRUE(moved.has_error());
  EXPECT_EQ(moved.error().id, 3u);
  EXPECT_FALSE(ce.has_error());  // NOLINT(bugprone-use-after-move): moved-from is pending
  EXPECT_FALSE(ce.has_value());  // NOLINT(bugprone-use-after-move)

  moved = c;  // error -> value by copy assignment
  EXPECT_EQ(moved.value(), "text");
  moved = e;  // value -> error
  EXPECT_TRUE(moved.has_error());
  moved = mtp::result<std::string>();  // back to pending
  EXPECT_FALSE(moved.has_value());
  EXPECT_FALSE(moved.has_error());
}

TEST(Result, MoveOnlyValues) {
  mtp::result<std::unique_ptr<int>> p = std::make_unique<int>(4);
  mtp::result<std::unique_ptr<int>> q = std::move(p);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(*q.value(), 4);
  std::vector<mtp::result<std::unique_ptr<int>>> many(3);
  many[1] = std::move(q);
  many.emplace_back(std::make_unique<int>(5));
  many.resize(10);  // relocation moves every state
  EXPECT_FALSE(many[0].has_value());
  EXPECT_EQ(*many[1].value(), 4);
  EXPECT_EQ(*many[3].value(), 5);
}

TEST(Result, DestroysWhatItBuilt) {
  {
    mtp::result<tracked> r;
    EXPECT_EQ(tracked::live, 0) << "a pending result builds no value";
    r.emplace(1);
    EXPECT_EQ(tracked::live, 1);
    r.emplace(2);  // replaces the value
    EXPECT_EQ(tracked::live, 1);
    EXPECT_EQ(r.value().v, 2);
    r.set_error(mtp::error{mtp::errc::handler_failed, 1, {}});
    EXPECT_EQ(tracked::live, 0) << "an error replaces the value";
    r.emplace(3);
    EXPECT_EQ(tracked::live, 1);
    mtp::result<tracked> copy = r;
    EXPECT_EQ(tracked::live, 2);
    mtp::result<tracked> moved = std::move(copy);
    EXPECT_EQ(tracked::live, 2) << "a moved-from result holds no value";
    moved = r;  // copy assignment: the old value goes, the copy comes
    EXPECT_EQ(tracked::live, 2);
    const mtp::result<tracked> failed = mtp::error{mtp::errc::unknown_id, 1, {}};
    moved = failed;
    EXPECT_EQ(tracked::live, 1) << "an error copied over a value destroys it";
    EXPECT_EQ(moved.error().id, 1u);
    moved = r;
    EXPECT_EQ(tracked::live, 2);
    EXPECT_EQ(moved.value().v, 3);
  }
  EXPECT_EQ(tracked::live, 0);
}

TEST(Result, ErrorOverwritesError) {
  mtp::result<int> r = mtp::error{mtp::errc::unknown_id, 1, std::make_exception_ptr(std::runtime_error("a"))};
  r.set_error(mtp::error{mtp::errc::queue_full, 2, {}});
  EXPECT_EQ(r.error().code, mtp::errc::queue_full);
  EXPECT_EQ(r.error().id, 2u);
  EXPECT_THROW((void)r.value(), mtp::pool_error);
  r.emplace(8);
  EXPECT_EQ(r.value(), 8);
}

TEST(Result, RvalueValueMovesOut) {
  mtp::result<std::string> r = std::string(100, 'x');
  std::string s = std::move(r).value();
  EXPECT_EQ(s.size(), 100u);
  EXPECT_THROW((void)std::move(mtp::result<std::string>()).value(), std::logic_error);
  mtp::result<std::string> e = mtp::error{mtp::errc::pool_stopped, 1, {}};
  EXPECT_THROW((void)std::move(e).value(), mtp::pool_error);
}

TEST(ErrorCode, ErrcIsAnErrorCodeEnumInTheMtpCategory) {
  static_assert(std::is_error_code_enum_v<mtp::errc>);
  EXPECT_STREQ(mtp::error_category().name(), "mtp");
  const mtp::errc all[] = {mtp::errc::unknown_id,     mtp::errc::duplicate_id,   mtp::errc::constructor_failed,
                           mtp::errc::handler_failed, mtp::errc::hook_failed,    mtp::errc::pool_stopped,
                           mtp::errc::would_deadlock, mtp::errc::invalid_route,  mtp::errc::queue_full,
                           mtp::errc::timed_out,      mtp::errc::cancelled,      mtp::errc::out_of_memory};
  for (const mtp::errc c : all) {
    const std::error_code ec = c;  // implicit, through make_error_code found by ADL
    EXPECT_TRUE(ec) << "never a success code, also for unknown_id (0): " << mtp::to_string(c);
    EXPECT_EQ(&ec.category(), &mtp::error_category());
    EXPECT_EQ(ec, mtp::make_error_code(c));
    EXPECT_TRUE(ec == c);
    EXPECT_TRUE(mtp_test::contains(ec.message(), mtp::to_string(c))) << ec.message();
    for (const mtp::errc other : all) {
      if (other != c) {
        EXPECT_FALSE(ec == other) << mtp::to_string(c) << " " << mtp::to_string(other);
      }
    }
  }
  EXPECT_EQ(mtp::make_error_code(mtp::errc::unknown_id).message(), "no item with this id (unknown_id)");
  EXPECT_TRUE(mtp_test::contains(mtp::error_category().message(0), "unknown error"));
  EXPECT_TRUE(mtp_test::contains(mtp::error_category().message(99), "unknown error"));
}

TEST(ErrorCode, PortableCodesMatchTheirStdConditions) {
  EXPECT_TRUE(mtp::make_error_code(mtp::errc::timed_out) == std::errc::timed_out);
  EXPECT_TRUE(mtp::make_error_code(mtp::errc::cancelled) == std::errc::operation_canceled);
  EXPECT_TRUE(mtp::make_error_code(mtp::errc::out_of_memory) == std::errc::not_enough_memory);
  EXPECT_FALSE(mtp::make_error_code(mtp::errc::unknown_id) == std::errc::timed_out);
  EXPECT_FALSE(mtp::make_error_code(mtp::errc::pool_stopped) == std::errc::operation_canceled);
}

TEST(ErrorCode, PoolErrorIsASystemErrorWithTheMtpCode) {
  const mtp::error e{mtp::errc::pool_stopped, 7, {}};
  try {
    throw mtp::pool_error(e);
  } catch (const std::system_error& se) {
    EXPECT_EQ(se.code(), mtp::errc::pool_stopped);
    EXPECT_EQ(std::string(se.what()), e.message()) << "what() is the message, nothing appended";
    const auto* pe = dynamic_cast<const mtp::pool_error*>(&se);
    ASSERT_NE(pe, nullptr);
    EXPECT_EQ(pe->code(), mtp::errc::pool_stopped);
    EXPECT_EQ(pe->id(), 7u);
  }
  static_assert(std::is_base_of_v<std::runtime_error, mtp::pool_error>);
  static_assert(std::is_nothrow_copy_constructible_v<mtp::pool_error>);
}

}  // namespace
