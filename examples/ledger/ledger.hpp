// SPDX-License-Identifier: MIT
// A ledger: one pool item per account; a transfer debits its account on that account's
// worker and posts the credit to the other account through mtp::this_pool(), so no account is
// ever touched off its own thread and no lock is taken. The settlement code is written
// against the capability concept mtp::sends, so that ledger_test.cpp can test it with
// mtp::mock_pool and no threads, and run it on a real pool too.
#pragma once

#include <mtp/mtp.hpp>

#include <cstddef>
#include <ostream>
#include <span>
#include <vector>

namespace ledger {

/// Credits an account; sent by the account a transfer debits.
struct deposit {
  mtp::id_t id;
  long amount;
  using response_type = void;
};

/// Moves `amount` from account `id` to account `to`: true when the money left `id` (an
/// account `to` that does not exist pays it back), false when nothing moved (a balance too
/// low, an amount of zero or less, a transfer to itself).
struct transfer {
  mtp::id_t id;
  mtp::id_t to;
  long amount;
  using response_type = bool;
  friend bool operator==(const transfer&, const transfer&) = default;  // for mock expectations
  friend std::ostream& operator<<(std::ostream& out, const transfer& t) {  // for mock reports
    return out << "transfer{" << t.id << " -> " << t.to << ", " << t.amount << "}";
  }
};

struct balance {
  mtp::id_t id;
  using response_type = long;
  friend bool operator==(const balance&, const balance&) = default;
};

/// An account: plain state, built, used and destroyed on one worker.
class account {
 public:
  account(mtp::id_t id, long opening) : id_(id), balance_(opening) {}

  void handle(const deposit& d) { balance_ += d.amount; }
  bool handle(const transfer& t) {
    if (t.amount <= 0 || t.amount > balance_ || t.to == id_) return false;
    balance_ -= t.amount;
    // The credit goes to a sibling item, wherever it lives: asynchronously, never a blocking
    // send (the sibling may share this worker). When it cannot land (no such account), the
    // callback, which runs on a worker of this pool, pays the money back: nothing is lost.
    mtp::this_pool<account>().send_async(deposit{t.to, t.amount},
                                         [from = id_, amount = t.amount](mtp::result<void> credited) {
                                           if (credited.has_error()) {
                                             (void)mtp::this_pool<account>().post(deposit{from, amount});
                                           }
                                         });
    return true;
  }
  [[nodiscard]] long handle(const balance&) const { return balance_; }

 private:
  mtp::id_t id_;
  long balance_;
};

/// The business logic under test: settles a day's transfers in one batch, returns how many
/// went through. Works with mtp::thread_pool<account> and with mtp::mock_pool<account>.
template <mtp::sends<transfer> Pool>
std::size_t settle(Pool& pool, std::span<const transfer> day) {
  std::size_t moved = 0;
  for (const mtp::result<bool>& r : pool.send_batch(day)) {
    if (r.has_value() && r.value()) ++moved;
  }
  return moved;
}

}  // namespace ledger
