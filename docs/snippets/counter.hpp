// SPDX-License-Identifier: MIT
// What the docs' fragments about the README's counter use: the request `add`, the item
// `counter`, a pool of counters, and the helpers the fragments call. Declarations only: the
// fragments are compiled, never run.
#pragma once

#include <mtp/mtp.hpp>

#include <chrono>
#include <cstdio>
#include <stop_token>
#include <string>
#include <vector>

namespace mtp_snippets {

struct add {  // an explicit message: target id + response type
  mtp::id_t id;
  int amount;
  using response_type = int;
};

class counter {  // a pool item
 public:
  counter(mtp::id_t id, int start) : id_(id), value_(start) {}
  int handle(const add& a) { return value_ += a.amount; }
  int increment(int by) { return value_ += by; }
  mtp::id_t id() const { return id_; }

 private:
  mtp::id_t id_;
  int value_;
};

extern mtp::thread_pool<counter> pool;
extern std::vector<add> requests;  // a batch
extern std::vector<add> batch;
extern std::stop_source stop_source;

void use(int response);
void log(const std::string& text);
void do_other_work();

}  // namespace mtp_snippets
