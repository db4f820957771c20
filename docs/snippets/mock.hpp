// SPDX-License-Identifier: MIT
// What the mock guide uses: an `account` item. The guide declares its request itself, so this
// account answers any request (a stand-in: the fragment is compiled, never run).
#pragma once

#include <mtp/testing.hpp>

#include <cassert>
#include <vector>

namespace mtp_snippets {

class account {
 public:
  account(mtp::id_t, long balance) : balance_(balance) {}
  template <class Request>
  typename Request::response_type handle(const Request&) const {
    return balance_;
  }

 private:
  long balance_;
};

}  // namespace mtp_snippets
