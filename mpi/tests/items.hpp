// SPDX-License-Identifier: MIT
// Items and requests shared by the MPI tests.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <mtp/core/result.hpp>

namespace mtp_mpi_test {

struct add {  // trivially copyable: travels as bytes
  mtp::id_t id;
  long amount;
  using response_type = long;
};
struct get {
  mtp::id_t id;
  using response_type = long;
};
struct boom {  // the handler throws std::invalid_argument
  mtp::id_t id;
  using response_type = int;
};
struct where {  // the rank the item lives on
  mtp::id_t id;
  using response_type = int;
};
struct note {  // through cereal: a string in, a vector of strings out
  mtp::id_t id;
  std::string text;
  using response_type = std::vector<std::string>;
  template <class A>
  void serialize(A& a) { a(id, text); }
};
struct append {  // the shadow model: (sender, seq) recorded in arrival order
  mtp::id_t id;
  std::uint32_t sender;
  std::uint32_t seq;
  using response_type = void;
};
struct history {
  mtp::id_t id;
  using response_type = std::vector<std::pair<std::uint32_t, std::uint32_t>>;
};
struct slow {  // sleeps, then answers
  mtp::id_t id;
  int micros;
  using response_type = int;
};

struct hold {  // waits until a release reaches the same rank (at most 30 s); answers 1 if released
  mtp::id_t id;
  using response_type = int;
};
struct release {  // lets every hold on this rank go on
  mtp::id_t id;
  using response_type = int;
};

struct forward {  // adds `amount` to item `to` through the pool that runs the handler; answers
                  // 1 when mtp::mpi::this_pool named the sharded pool the test expects
  mtp::id_t id;
  mtp::id_t to;
  long amount;
  using response_type = int;
};

struct item {
  item(mtp::id_t id, long start, std::string name) : id_(id), total_(start), name_(std::move(name)) {
    if (start < 0) throw std::domain_error("negative start for " + name_);
  }
  item(mtp::id_t id, long start) : item(id, start, "item") {}
  long handle(const add& a) { return total_ += a.amount; }
  long handle(const get&) const { return total_; }
  int handle(const boom& b) { throw std::invalid_argument("boom " + std::to_string(b.id)); }
  int handle(const where&) const;
  std::vector<std::string> handle(const note& n) {
    notes_.push_back(name_ + ":" + n.text);
    return notes_;
  }
  void handle(const append& a) { log_.emplace_back(a.sender, a.seq); }
  std::vector<std::pair<std::uint32_t, std::uint32_t>> handle(const history&) const { return log_; }
  int handle(const slow& s);
  int handle(const hold&);
  int handle(const release&);
  int handle(const forward&);
  // Members for pool.call<&item::...>.
  [[nodiscard]] long scaled(long k) const { return total_ * k; }
  [[nodiscard]] std::string named(const std::string& suffix) const { return name_ + suffix; }
  void bump() { ++total_; }

  mtp::id_t id_;
  long total_;
  std::string name_;
  std::vector<std::string> notes_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> log_;
};

}  // namespace mtp_mpi_test
