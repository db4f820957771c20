// SPDX-License-Identifier: MIT
// Must compile without a warning under -O3 -Wall -Wextra -Werror (g++ 12 once reported
// -Wmaybe-uninitialized in result.hpp when a vector of results was filled by copy assignment).
#include <mtp/core/result.hpp>

#include <cstddef>
#include <vector>

std::size_t fill(std::size_t n, bool failed) {
  std::vector<mtp::result<long>> out;
  const mtp::result<long> one =
      failed ? mtp::result<long>(mtp::error{mtp::errc::timed_out, 1, {}}) : mtp::result<long>(5L);
  out.assign(n, one);
  out.assign(n + 1, mtp::result<long>(mtp::error{mtp::errc::pool_stopped, 2, {}}));
  std::size_t errors = 0;
  for (const auto& r : out) errors += r.has_error() ? 1 : 0;
  return errors;
}
int main(int argc, char**) { return fill(static_cast<std::size_t>(argc), argc > 2) > 0 ? 0 : 1; }
