// SPDX-License-Identifier: MIT
// Must not compile: the worker would write into a caller's object long gone.
#include <mtp/core/messages.hpp>
struct item {
  explicit item(mtp::id_t) {}
  void fill(int& out) { out = 1; }
};
int main() {
  int out = 0;
  (void)mtp::make_call(1, &item::fill, out);
}
