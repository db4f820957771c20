// SPDX-License-Identifier: MIT
// Tests of the ledger (ledger.hpp): the settlement logic against mtp::mock_pool, with no
// threads; the accounts themselves on a real pool.
#include "ledger.hpp"

#include <mtp/testing.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace {

using ledger::account;
using ledger::balance;
using ledger::transfer;

TEST(Settle, CountsTheTransfersThatWentThrough) {
  mtp::mock_pool<account> mock;
  mock.expect(transfer{1, 2, 50}, true);  // exactly these requests, in this order
  mock.expect(transfer{2, 3, 500}, false);
  const std::vector<transfer> day{{1, 2, 50}, {2, 3, 500}};
  EXPECT_EQ(ledger::settle(mock, day), 1u);
  mock.verify();  // throws mtp::mock_error naming every difference
}

TEST(Settle, AFailedTransferIsNotCounted) {
  mtp::mock_pool<account> mock;
  mock.expect_error(transfer{1, 2, 50}, mtp::error{mtp::errc::unknown_id, 1, {}});
  const std::vector<transfer> day{{1, 2, 50}};
  EXPECT_EQ(ledger::settle(mock, day), 0u);
  mock.verify();
}

TEST(Settle, AMismatchIsReportedWithBothRequests) {
  mtp::mock_pool<account> mock;
  mock.expect(transfer{1, 2, 50}, true);
  const std::vector<transfer> day{{1, 2, 60}};  // a wrong amount
  (void)ledger::settle(mock, day);
  try {
    mock.verify();
    ADD_FAILURE() << "verify() accepted a different request";
  } catch (const mtp::mock_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("transfer{1 -> 2, 60}"), std::string::npos) << what;  // what arrived
    EXPECT_NE(what.find("transfer{1 -> 2, 50}"), std::string::npos) << what;  // what was expected
  }
}

TEST(Accounts, TransfersMoveMoneyBetweenItemsAndKeepTheTotal) {
  mtp::thread_pool<account> pool({.workers = 2, .placement = mtp::plan_placement("none")});
  const std::vector<mtp::id_t> ids{1, 2, 3, 4};
  for (auto& created : pool.create_batch(ids, 100L)) created.value();
  std::vector<transfer> day;
  for (mtp::id_t from : ids) {
    for (mtp::id_t to : ids) day.push_back({from, to, 10});  // to itself: refused
  }
  day.push_back({1, 2, 1000});  // too much: refused
  EXPECT_EQ(ledger::settle(pool, day), 12u);
  // The credits were sent before each transfer answered, so they are in place by now.
  std::vector<balance> balances{{1}, {2}, {3}, {4}};
  long total = 0;
  for (auto& b : pool.send_batch(balances)) total += b.value();
  EXPECT_EQ(total, 400);
  EXPECT_EQ(pool.send(balance{1}), 100);  // paid 30, received 30
}

TEST(Accounts, MoneySentToNoAccountComesBack) {
  mtp::thread_pool<account> pool({.workers = 2, .placement = mtp::plan_placement("none")});
  pool.create(1, 100L);
  const std::vector<transfer> day{{1, 99, 40}};  // no account 99
  EXPECT_EQ(ledger::settle(pool, day), 1u);      // it left account 1 ...
  // ... and the refund is posted once the credit failed: wait for it (bounded).
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (pool.send(balance{1}) != 100 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  EXPECT_EQ(pool.send(balance{1}), 100);
}

}  // namespace
