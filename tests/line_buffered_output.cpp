// SPDX-License-Identifier: MIT
// Linked into every test: stdout is line-buffered from start-up, so that a test that aborts
// or is killed by its timeout still shows the failures it reported before.
#include <cstdio>

namespace {
[[maybe_unused]] const int line_buffered = std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
}  // namespace
