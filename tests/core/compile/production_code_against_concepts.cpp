// SPDX-License-Identifier: MIT
// Production code includes only <mtp/mtp.hpp> and is written against the capability
// concepts, with no warning under -Wall -Wextra -Werror; a fire-and-forget send_async (its
// handle dropped) does not warn either.
#include <mtp/mtp.hpp>

#include <span>

struct get_balance {
  mtp::id_t id;
  using response_type = long;
};
struct account {
  explicit account(mtp::id_t) {}
  long handle(const get_balance&) const { return 1; }
};

template <mtp::sends<get_balance> Pool>
long total(Pool& pool, std::span<const get_balance> accounts) {
  long sum = 0;
  for (const auto& r : pool.send_batch(accounts)) sum += r.value();
  return sum;
}

static_assert(mtp::sends<mtp::thread_pool<account>, get_balance>);
static_assert(mtp::creates<mtp::thread_pool<account>>);
static_assert(mtp::pool_of<mtp::thread_pool<account>, get_balance>);

long run(mtp::thread_pool<account>& pool) {
  pool.send_async(get_balance{1}, [](mtp::result<long>) {});  // fire and forget: no warning
  const get_balance one[] = {{1}};
  return total(pool, one);
}
