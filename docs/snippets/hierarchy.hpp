// SPDX-License-Identifier: MIT
// What the hierarchies guide uses: an employee item and the two requests.
#pragma once

#include <mtp/mtp.hpp>

#include <memory>
#include <numeric>
#include <span>
#include <vector>

namespace mtp_snippets {

struct raise_salary {
  mtp::id_t id;
  int amount;
  using response_type = int;  // the new salary
};

struct give_everyone_a_raise {
  mtp::id_t id;
  int amount;
  using response_type = long;  // the payroll after the raise
};

class employee {
 public:
  employee(mtp::id_t, int salary) : salary_(salary) {}
  int handle(const raise_salary& r) { return salary_ += r.amount; }

 private:
  int salary_;
};

}  // namespace mtp_snippets
