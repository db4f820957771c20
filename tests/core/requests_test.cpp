// SPDX-License-Identifier: MIT
// Requests: explicit messages, method messages, void responses, const members, and per-item
// FIFO order under many concurrent callers.
#include "pool_test_util.hpp"
#include "requests.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

// ---- Explicit and method messages -----------------------------------------------------------

using mtp_test::add;

struct reset {
  mtp::id_t id;
  using response_type = void;
};
struct describe {
  mtp::id_t id;
  std::string prefix;  // not trivially copyable: travels by heap copy when posted
  using response_type = std::string;
};

class counter {
 public:
  counter(mtp::id_t id, int start) : id_(id), value_(start) {}

  // Explicit messages.
  int handle(const add& m) { return value_ += m.amount; }
  void handle(const reset&) { value_ = 0; }
  std::string handle(const describe& m) const { return m.prefix + std::to_string(id_) + "=" + std::to_string(value_); }

  // Method messages.
  int increment(int by) { return value_ += by; }
  int value() const { return value_; }
  void set(int v) noexcept { value_ = v; }
  std::string label(const std::string& text, int times) const {
    std::string out;
    for (int i = 0; i < times; ++i) out += text;
    return out + std::to_string(value_);
  }
  std::size_t text_size(std::string text) const noexcept { return text.size(); }

 private:
  mtp::id_t id_;
  int value_;
};

using counter_pool = mtp::thread_pool<counter>;

TEST(Requests, ExplicitMessages) {
  counter_pool pool(mtp_test::options(2));
  pool.create(1, 10);
  pool.create(2, 20);
  EXPECT_EQ(pool.send(add{1, 5}), 15);
  EXPECT_EQ(pool.send(add{2, -5}), 15);
  EXPECT_EQ(pool.send(add{1, 1}), 16);
  EXPECT_EQ(pool.send(describe{1, "item "}), "item 1=16");
  static_assert(std::is_void_v<decltype(pool.send(reset{1}))>);
  pool.send(reset{1});
  EXPECT_EQ(pool.send(add{1, 0}), 0);
  EXPECT_EQ(pool.send(add{2, 0}), 15) << "reset of item 1 touched item 2";
}

TEST(Requests, MethodMessages) {
  counter_pool pool(mtp_test::options(2));
  pool.create(3, 1);
  EXPECT_EQ(pool.call(3, &counter::increment, 5), 6);
  EXPECT_EQ(pool.call(3, &counter::value), 6);  // const member function
  static_assert(std::is_void_v<decltype(pool.call(3, &counter::set, 0))>);
  pool.call(3, &counter::set, 40);  // void, noexcept member function
  EXPECT_EQ(pool.call(3, &counter::value), 40);
  EXPECT_EQ(pool.call(3, &counter::label, std::string("ab"), 2), "abab40");  // const& parameter
  EXPECT_EQ(pool.call(3, &counter::text_size, std::string("four")), 4u);    // by-value parameter

  const auto m = mtp::make_call(3, &counter::increment, 2);
  static_assert(std::is_same_v<decltype(m), const mtp::call_t<&counter::increment>>);
  EXPECT_EQ(m.id, 3u);
  EXPECT_EQ(pool.send(m), 42);
  EXPECT_EQ(pool.send(m), 44) << "a method message can be sent again";
  EXPECT_EQ(pool.send(mtp::make_call(3, &counter::value)), 44);
}

TEST(Requests, BatchOfMethodMessages) {
  counter_pool pool(mtp_test::options(2));
  for (mtp::id_t id = 0; id < 6; ++id) pool.create(id, 100 * static_cast<int>(id));
  std::vector<mtp::call_t<&counter::increment>> calls;
  for (int round = 1; round <= 3; ++round) {
    for (mtp::id_t id = 0; id < 6; ++id) calls.push_back(mtp::make_call(id, &counter::increment, round));
  }
  const auto results = pool.send_batch(calls);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(results[0])>, mtp::result<int>>);
  ASSERT_EQ(results.size(), calls.size());
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const int round = static_cast<int>(i / 6) + 1;
    const int base = 100 * static_cast<int>(calls[i].id);
    EXPECT_EQ(results[i].value(), base + round * (round + 1) / 2) << "i=" << i;
  }
  // A batch of void member calls, then of const member calls.
  std::vector<mtp::call_t<&counter::set>> sets;
  for (mtp::id_t id = 0; id < 6; ++id) sets.push_back(mtp::make_call(id, &counter::set, static_cast<int>(id) + 1));
  const auto set_results = pool.send_batch(sets);
  for (const auto& r : set_results) EXPECT_TRUE(r.has_value());
  std::vector<mtp::call_t<&counter::value>> reads;
  for (mtp::id_t id = 0; id < 6; ++id) reads.push_back(mtp::make_call(id, &counter::value));
  const auto values = pool.send_batch(reads);
  for (mtp::id_t id = 0; id < 6; ++id) EXPECT_EQ(values[id].value(), static_cast<int>(id) + 1);
}

TEST(Requests, VoidResponsesInBatchesAndPosts) {
  counter_pool pool(mtp_test::options(2));
  pool.create(1, 5);
  pool.create(2, 6);
  const std::vector<reset> resets{{1}, {2}, {3}};
  const auto results = pool.send_batch(resets);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(results[0])>, mtp::result<void>>);
  EXPECT_TRUE(results[0].has_value());
  EXPECT_TRUE(results[1].has_value());
  ASSERT_TRUE(results[2].has_error());
  EXPECT_EQ(results[2].error().code, mtp::errc::unknown_id);
  EXPECT_EQ(pool.call(1, &counter::value), 0);
  EXPECT_EQ(pool.call(2, &counter::value), 0);

  // Posts, small and trivially copyable or not, run in the order sent by this thread.
  EXPECT_TRUE(pool.post(add{1, 3}).has_value());
  EXPECT_TRUE(pool.post(mtp::make_call(1, &counter::increment, 4)).has_value());
  EXPECT_TRUE(pool.post(describe{1, "ignored"}).has_value());
  EXPECT_EQ(pool.call(1, &counter::value), 7);
}

// ---- Per-item FIFO under many concurrent callers -----------------------------------------

constexpr std::size_t k_callers = 8;

struct numbered {
  mtp::id_t id;
  std::uint32_t caller;
  std::uint32_t seq;  // 1, 2, 3, ... per (caller, item)
  using response_type = std::uint32_t;
};

/// Checks that each caller's messages arrive in order, each exactly once.
class sequenced {
 public:
  explicit sequenced(mtp::id_t) {}
  std::uint32_t handle(const numbered& m) {
    std::uint32_t& last = last_[m.caller];
    if (m.seq != last + 1) ++violations_;
    last = m.seq;
    return m.seq;
  }
  std::array<std::uint32_t, k_callers> last_seen() const { return last_; }
  std::uint32_t violations() const { return violations_; }

 private:
  std::array<std::uint32_t, k_callers> last_{};
  std::uint32_t violations_ = 0;
};

TEST(Requests, PerItemFifoUnderManyConcurrentCallers) {
  constexpr int k_ops = MTP_TEST_TSAN ? 1500 : 3000;
  constexpr mtp::id_t k_items = 1000;
  mtp::thread_pool<sequenced> pool(mtp_test::options(2));
  {
    std::vector<mtp::id_t> ids(k_items);
    for (mtp::id_t id = 0; id < k_items; ++id) ids[id] = id;
    for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(ids))) ASSERT_TRUE(r.has_value());
  }

  std::array<std::vector<std::uint32_t>, k_callers> sent;  // sent[c][item]: last seq caller c sent
  std::atomic<std::uint64_t> wrong_responses{0};
  std::atomic<std::uint64_t> failed_sends{0};
  auto caller = [&](std::uint32_t c) {
    std::vector<std::uint32_t>& next = sent[c];
    next.assign(k_items, 0);
    std::mt19937_64 rng(0xF1F0 + c);
    std::uniform_int_distribution<mtp::id_t> pick(0, k_items - 1);
    auto make = [&](mtp::id_t id) { return numbered{id, c, ++next[id]}; };
    std::vector<numbered> batch;
    for (int op = 0; op < k_ops; ++op) {
      switch (rng() % 3) {
        case 0: {
          const numbered m = make(pick(rng));
          if (pool.send(m) != m.seq) ++wrong_responses;
          break;
        }
        case 1: {
          batch.clear();
          const std::size_t n = 1 + rng() % 40;
          // A few ids, repeated: many requests to one item in one batch.
          const mtp::id_t base = pick(rng);
          for (std::size_t i = 0; i < n; ++i) batch.push_back(make((base + rng() % 4) % k_items));
          const auto results = pool.send_batch(batch);
          for (std::size_t i = 0; i < n; ++i) {
            if (!results[i].has_value() || results[i].value() != batch[i].seq) ++wrong_responses;
          }
          break;
        }
        default:
          if (!pool.post(make(pick(rng))).has_value()) ++failed_sends;
          break;
      }
    }
    // A final blocking round from this thread: one more message to every item, after (FIFO)
    // everything this thread posted.
    batch.clear();
    for (mtp::id_t id = 0; id < k_items; ++id) batch.push_back(make(id));
    const auto results = pool.send_batch(batch);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!results[i].has_value() || results[i].value() != batch[i].seq) ++wrong_responses;
    }
  };
  MTP_BOUNDED(
      [&] {
        std::vector<std::thread> threads;
        for (std::uint32_t c = 0; c < k_callers; ++c) threads.emplace_back(caller, c);
        for (auto& t : threads) t.join();
      },
      std::chrono::seconds(240));

  EXPECT_EQ(wrong_responses.load(), 0u);
  EXPECT_EQ(failed_sends.load(), 0u);
  std::vector<mtp::call_t<&sequenced::last_seen>> reads;
  std::vector<mtp::call_t<&sequenced::violations>> checks;
  for (mtp::id_t id = 0; id < k_items; ++id) {
    reads.push_back(mtp::make_call(id, &sequenced::last_seen));
    checks.push_back(mtp::make_call(id, &sequenced::violations));
  }
  const auto seen = pool.send_batch(reads);
  const auto violations = pool.send_batch(checks);
  std::uint64_t total = 0;
  std::size_t bad_items = 0;
  for (mtp::id_t id = 0; id < k_items; ++id) {
    bool ok = violations[id].value() == 0;
    for (std::size_t c = 0; c < k_callers; ++c) {
      ok = ok && seen[id].value()[c] == sent[c][id];
      total += sent[c][id];
    }
    if (!ok && ++bad_items <= 5) {
      ADD_FAILURE() << "item " << id << ": " << violations[id].value() << " out-of-order messages";
    }
  }
  EXPECT_EQ(bad_items, 0u) << "items that lost, duplicated or reordered a caller's messages";
  EXPECT_GT(total, static_cast<std::uint64_t>(k_callers) * k_items);
}

}  // namespace
