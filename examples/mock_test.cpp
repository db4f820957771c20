// SPDX-License-Identifier: MIT
// Testing code that uses a pool, without threads: write it against the capability concepts
// (mtp::sends, mtp::creates, ...) and hand it a mtp::mock_pool in tests.
#include <mtp/testing.hpp>

#include <cstdio>
#include <span>
#include <vector>

namespace {

struct get_balance {
  mtp::id_t id;
  using response_type = long;
  friend bool operator==(const get_balance&, const get_balance&) = default;
};

class account {
 public:
  account(mtp::id_t id, long balance) : balance_(balance) { (void)id; }
  long handle(const get_balance&) const { return balance_; }
  long add_interest(long percent) { return balance_ += balance_ * percent / 100; }

 private:
  long balance_;
};

// The code under test: works with the real pool and with the mock.
template <mtp::sends<get_balance> Pool>
long total_balance(Pool& pool, const std::vector<mtp::id_t>& accounts) {
  std::vector<get_balance> requests;
  for (mtp::id_t id : accounts) requests.push_back({id});
  long sum = 0;
  for (auto& r : pool.send_batch(requests)) sum += r.value();
  return sum;
}

// Opens an account and pays it interest: creates and method messages, through concepts too.
template <class Pool>
  requires mtp::creates<Pool, long> && mtp::sends<Pool, mtp::call_t<&account::add_interest>>
long open_with_interest(Pool& pool, mtp::id_t id, long deposit) {
  pool.create(id, deposit);
  return pool.call(id, &account::add_interest, 5L);
}

}  // namespace

int main() {
  mtp::mock_pool<account> mock;
  mock.expect(get_balance{1}, 100L);
  mock.expect(get_balance{2}, 250L);
  const long total = total_balance(mock, {1, 2});
  mock.verify();  // throws if the requests differed or an expectation was not met
  std::printf("total with mock: %ld, requests seen: %zu\n", total, mock.requests<get_balance>().size());

  mtp::mock_pool<account> opener;
  opener.expect_create(3, 1000L);                                       // this id, these arguments
  opener.expect(mtp::make_call(3, &account::add_interest, 5L), 1050L);  // method messages compare too
  const long paid = open_with_interest(opener, 3, 1000);
  opener.verify();

  mtp::thread_pool<account> pool({.workers = 2, .placement = mtp::plan_placement("none")});
  pool.create(1, 100L);
  pool.create(2, 250L);
  const long real = total_balance(pool, {1, 2});
  const long real_paid = open_with_interest(pool, 3, 1000);
  std::printf("total with pool: %ld; interest paid: mock %ld, pool %ld\n", real, paid, real_paid);
  return (total == 350 && real == 350 && paid == 1050 && real_paid == 1050) ? 0 : 1;
}
