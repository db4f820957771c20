// SPDX-License-Identifier: MIT
// Must not compile: a span of non-const elements lets the worker write the caller's memory.
#include <mtp/core/messages.hpp>
#include <span>
#include <vector>
struct item {
  explicit item(mtp::id_t) {}
  void fill(std::span<int> out) { out[0] = 1; }
};
int main() {
  std::vector<int> v(4);
  (void)mtp::make_call(1, &item::fill, std::span<int>(v));
}
