// SPDX-License-Identifier: MIT
// A two-level hierarchy: each department is an item that owns a pool of its own, whose items
// are its employees. Shutting down the company shuts down each department's pool first.
#include <mtp/mtp.hpp>

#include <cstdio>
#include <memory>
#include <vector>

namespace {

struct raise_salary {
  mtp::id_t id;
  int amount;
  using response_type = int;  // new salary
};

class employee {
 public:
  employee(mtp::id_t id, int salary) : salary_(salary) { (void)id; }
  int handle(const raise_salary& r) { return salary_ += r.amount; }

 private:
  int salary_;
};

struct give_everyone_a_raise {
  mtp::id_t id;
  int amount;
  using response_type = long;  // payroll after the raise
};

class department {
 public:
  department(mtp::id_t id, int staff) : staff_(staff) {
    (void)id;
    std::vector<mtp::id_t> ids;
    for (int e = 0; e < staff; ++e) ids.push_back(static_cast<mtp::id_t>(e));
    for (auto& r : employees_->create_batch(std::span<const mtp::id_t>(ids), 1000)) r.value();
  }
  long handle(const give_everyone_a_raise& g) {
    // A blocking batch from this worker into the child pool: safe, the hierarchy only calls down.
    std::vector<raise_salary> raises;
    for (int e = 0; e < staff_; ++e) raises.push_back({static_cast<mtp::id_t>(e), g.amount});
    long payroll = 0;
    for (auto& salary : employees_->send_batch(raises)) payroll += salary.value();
    return payroll;
  }

 private:
  int staff_;
  std::unique_ptr<mtp::thread_pool<employee>> employees_ =
      std::make_unique<mtp::thread_pool<employee>>(mtp::pool_options{.workers = 1, .placement = mtp::plan_placement("none")});
};

}  // namespace

int main() {
  mtp::thread_pool<department> company({.workers = 2, .placement = mtp::plan_placement("none")});
  company.create(1, 10);
  company.create(2, 20);
  const auto payrolls = company.send_batch(std::vector<give_everyone_a_raise>{{1, 100}, {2, 50}});
  const long a = payrolls[0].value();
  const long b = payrolls[1].value();
  std::printf("payroll: department 1 = %ld, department 2 = %ld\n", a, b);
  company.shutdown();  // each department's employee pool stops before the department dies
  return (a == 10L * 1100 && b == 20L * 1050) ? 0 : 1;
}
