// SPDX-License-Identifier: MIT
// Must compile without a warning under -O2 -Wall -Wextra -Werror (g++ 12 once reported
// -Wmaybe-uninitialized in result.hpp here).
#include <mtp/core/mock_pool.hpp>
#include <memory>
#include <string>
struct get_balance {
  mtp::id_t id;
  using response_type = long;
  friend bool operator==(const get_balance&, const get_balance&) = default;
};
struct get_name {
  mtp::id_t id;
  using response_type = std::string;
  friend bool operator==(const get_name&, const get_name&) = default;
};
struct account {
  account(mtp::id_t, long) {}
  long handle(const get_balance&) const { return 1; }
  std::string handle(const get_name&) const { return "n"; }
  long add_interest(long percent) { return percent; }
};
long run() {
  mtp::mock_pool<account> mock;
  mock.expect(get_balance{1}, 100L);
  mock.expect(get_name{1}, std::string("name"));
  mock.expect_error(get_balance{2}, mtp::error{mtp::errc::unknown_id, 2, {}});
  mock.expect(mtp::make_call(1, &account::add_interest, 5L), 105L);
  long v = mock.send(get_balance{1});
  v += static_cast<long>(mock.send(get_name{1}).size());
  v += mock.call(1, &account::add_interest, 5L);
  mtp::result<long> copy = mtp::result<long>(mtp::error{mtp::errc::timed_out, 1, {}});
  mtp::result<long> moved = std::move(copy);
  v += moved.has_error() ? 1 : 0;
  mock.verify();
  return v;
}
int main() { return run() > 0 ? 0 : 1; }
