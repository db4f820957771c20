// SPDX-License-Identifier: MIT
// mtp::result, mtp::error and mtp::pool_error on their own.
#include "pool_test_util.hpp"

#include <memory>
#include <stdexcept>
#include <string>

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
}

}  // namespace
