// SPDX-License-Identifier: MIT
// Stress: many callers, thousands of items, a random mix of create, remove, request, batch and
// post (fixed seeds). Each item checks that every caller's messages arrive in sequence; each
// caller keeps a shadow model of what it sent. At the end: no message lost, duplicated or
// reordered, every item destroyed exactly once on the thread that built it.
//
// Sized by MTP_STRESS_SCALE: 1 = the short CI form (about 10^7 messages), 100 = the soak form
// (about 10^9). ThreadSanitizer builds run a tenth of the CI form.
#include <mtp/mtp.hpp>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <iostream>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#ifndef MTP_STRESS_SCALE
#define MTP_STRESS_SCALE 1
#endif

#if defined(__SANITIZE_THREAD__)
#define MTP_STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MTP_STRESS_TSAN 1
#endif
#endif
#ifndef MTP_STRESS_TSAN
#define MTP_STRESS_TSAN 0
#endif

namespace {

constexpr std::uint32_t k_callers = 8;
constexpr std::uint64_t k_scale = MTP_STRESS_SCALE;
constexpr std::uint64_t k_ops_per_caller = (MTP_STRESS_TSAN ? 5000 : 50000) * k_scale;
constexpr mtp::id_t k_shared = 1000;        // items every caller talks to, alive throughout
constexpr std::size_t k_own_cap = 250;      // each caller's own items alive at once, at most

mtp::pool_options stress_options(std::size_t workers) {
  mtp::pool_options o;
  o.workers = workers;
  o.placement = mtp::plan_placement("none", workers);
  return o;
}

// ---- Lifetime registry -------------------------------------------------------------------------

struct life {
  std::thread::id born_on{};
  std::thread::id died_on{};
  int constructed = 0;
  int destroyed = 0;
  std::uint64_t violations = 0;
  std::array<std::uint64_t, k_callers> final_seq{};
};

class registry {
 public:
  void born(mtp::id_t id) {
    std::lock_guard lock(m_);
    life& l = items_[id];
    ++l.constructed;
    l.born_on = std::this_thread::get_id();
  }
  void died(mtp::id_t id, const std::array<std::uint64_t, k_callers>& seq, std::uint64_t violations) {
    std::lock_guard lock(m_);
    life& l = items_[id];
    ++l.destroyed;
    l.died_on = std::this_thread::get_id();
    l.final_seq = seq;
    l.violations += violations;
  }
  void reset() {
    std::lock_guard lock(m_);
    items_.clear();
  }
  std::unordered_map<mtp::id_t, life> take() {
    std::lock_guard lock(m_);
    return std::move(items_);
  }

 private:
  std::mutex m_;
  std::unordered_map<mtp::id_t, life> items_;
};
registry g_registry;

// ---- Item and messages -------------------------------------------------------------------------

struct msg {
  mtp::id_t id;
  std::uint32_t caller;
  std::uint64_t seq;  // 1, 2, 3, ... per (caller, item)
  using response_type = std::uint64_t;
};
static_assert(std::is_trivially_copyable_v<msg>);

class stress_item {
 public:
  explicit stress_item(mtp::id_t id) : id_(id) { g_registry.born(id); }
  stress_item(const stress_item&) = delete;
  stress_item& operator=(const stress_item&) = delete;
  ~stress_item() { g_registry.died(id_, last_, violations_); }

  std::uint64_t handle(const msg& m) {
    std::uint64_t& last = last_[m.caller];
    if (m.seq != last + 1) ++violations_;
    last = m.seq;
    return m.seq;
  }

 private:
  mtp::id_t id_;
  std::array<std::uint64_t, k_callers> last_{};
  std::uint64_t violations_ = 0;
};

using pool_t = mtp::thread_pool<stress_item>;

// ---- Callers -------------------------------------------------------------------------------------

struct caller_state {
  std::vector<std::uint64_t> shared_sent;                  // seq sent to each shared item
  std::unordered_map<mtp::id_t, std::uint64_t> own_sent;   // seq sent to each own item ever created
  std::vector<mtp::id_t> alive;                             // own items alive now
  std::vector<mtp::id_t> removed;                           // own items removed
  std::uint64_t messages = 0;
  std::uint64_t failures = 0;  // wrong responses or unexpected errors
  std::string first_failure;
};

void fail(caller_state& s, const std::string& what) {
  if (s.failures++ == 0) s.first_failure = what;
}

void run_caller(pool_t& pool, std::uint32_t c, caller_state& s) {
  std::mt19937_64 rng(20240 + c);
  s.shared_sent.assign(k_shared, 0);
  mtp::id_t next_own = 0;
  auto fresh_id = [&] { return k_shared + c + k_callers * next_own++; };
  auto pick_target = [&]() -> mtp::id_t {
    if (!s.alive.empty() && rng() % 3 == 0) return s.alive[rng() % s.alive.size()];
    return rng() % k_shared;
  };
  auto make = [&](mtp::id_t id) {
    ++s.messages;
    const std::uint64_t seq = id < k_shared ? ++s.shared_sent[id] : ++s.own_sent[id];
    return msg{id, c, seq};
  };
  std::vector<msg> batch;
  std::vector<mtp::result<std::uint64_t>> out;

  for (std::uint64_t op = 0; op < k_ops_per_caller; ++op) {
    const unsigned dice = static_cast<unsigned>(rng() % 100);
    if (dice < 40) {  // a batch: mixed ids, repeats, sometimes into a reused output span
      batch.clear();
      const std::size_t n = 1 + rng() % 128;
      for (std::size_t i = 0; i < n; ++i) batch.push_back(make(pick_target()));
      if (rng() % 2 == 0) {
        const auto r = pool.send_batch(batch);
        for (std::size_t i = 0; i < n; ++i) {
          if (!r[i].has_value() || r[i].value() != batch[i].seq) fail(s, "batch response " + std::to_string(i));
        }
      } else {
        out.resize(n);
        pool.send_batch(std::span<const msg>(batch), std::span<mtp::result<std::uint64_t>>(out));
        for (std::size_t i = 0; i < n; ++i) {
          if (!out[i].has_value() || out[i].value() != batch[i].seq) fail(s, "span batch response " + std::to_string(i));
        }
      }
    } else if (dice < 60) {  // a round trip
      const msg m = make(pick_target());
      try {
        if (pool.send(m) != m.seq) fail(s, "send response");
      } catch (const std::exception& e) {
        fail(s, std::string("send threw: ") + e.what());
      }
    } else if (dice < 90) {  // fire and forget
      if (!pool.post(make(pick_target())).has_value()) fail(s, "post refused");
    } else if (dice < 95) {  // create, one or a few
      if (s.alive.size() >= k_own_cap) continue;
      if (rng() % 2 == 0) {
        const mtp::id_t id = fresh_id();
        try {
          pool.create(id);
          s.alive.push_back(id);
          s.own_sent[id] = 0;
        } catch (const std::exception& e) {
          fail(s, std::string("create threw: ") + e.what());
        }
      } else {
        std::vector<mtp::id_t> ids;
        for (std::size_t i = 1 + rng() % 8; i > 0; --i) ids.push_back(fresh_id());
        const auto r = pool.create_batch(std::span<const mtp::id_t>(ids));
        for (std::size_t i = 0; i < ids.size(); ++i) {
          if (!r[i].has_value()) fail(s, "create_batch: " + r[i].error().message());
          s.alive.push_back(ids[i]);
          s.own_sent[ids[i]] = 0;
        }
      }
    } else if (dice < 99) {  // remove, one or a few (after everything this thread sent them)
      if (s.alive.empty()) continue;
      std::vector<mtp::id_t> ids;
      for (std::size_t i = 1 + rng() % 3; i > 0 && !s.alive.empty(); --i) {
        const std::size_t at = rng() % s.alive.size();
        ids.push_back(s.alive[at]);
        s.alive[at] = s.alive.back();
        s.alive.pop_back();
      }
      if (ids.size() == 1) {
        if (!pool.remove(ids[0])) fail(s, "remove returned false");
      } else {
        for (const auto& r : pool.remove_batch(std::span<const mtp::id_t>(ids))) {
          if (!r.has_value()) fail(s, "remove_batch: " + r.error().message());
        }
      }
      s.removed.insert(s.removed.end(), ids.begin(), ids.end());
    } else {  // a request to a removed item: unknown_id, nothing counted
      if (s.removed.empty()) continue;
      const mtp::id_t gone = s.removed[rng() % s.removed.size()];
      try {
        (void)pool.send(msg{gone, c, 0});
        fail(s, "a removed item answered");
      } catch (const mtp::pool_error& e) {
        if (e.code() != mtp::errc::unknown_id) fail(s, std::string("removed item: ") + e.what());
      }
    }
  }
}

TEST(Stress, RandomMixKeepsEveryItemsSequence) {
  g_registry.reset();
  std::array<caller_state, k_callers> states;
  std::size_t items_at_end = 0;
  std::uint64_t processed = 0;
  const auto t0 = std::chrono::steady_clock::now();
  {
    pool_t pool(stress_options(2));
    std::vector<mtp::id_t> shared(k_shared);
    for (mtp::id_t id = 0; id < k_shared; ++id) shared[id] = id;
    for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(shared))) ASSERT_TRUE(r.has_value());

    std::vector<std::thread> callers;
    for (std::uint32_t c = 0; c < k_callers; ++c) {
      callers.emplace_back([&pool, &states, c] { run_caller(pool, c, states[c]); });
    }
    for (auto& t : callers) t.join();

    std::size_t expected_items = k_shared;
    for (const auto& s : states) expected_items += s.alive.size();
    items_at_end = pool.stats().total_items();
    EXPECT_EQ(items_at_end, expected_items);
    pool.shutdown();  // answers every queued post, then destroys every item
    processed = pool.stats().total_messages();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::uint64_t messages = 0;
  for (std::uint32_t c = 0; c < k_callers; ++c) {
    messages += states[c].messages;
    EXPECT_EQ(states[c].failures, 0u) << "caller " << c << ": " << states[c].first_failure;
  }

  // The shadow model against what every item saw by the time it died.
  const auto lives = g_registry.take();
  std::size_t created = k_shared;
  for (const auto& s : states) created += s.own_sent.size();
  EXPECT_EQ(lives.size(), created);
  std::size_t bad = 0;
  auto report = [&](mtp::id_t id, const std::string& what) {
    if (++bad <= 10) {
      ADD_FAILURE() << "item " << id << ": " << what;
    }
  };
  for (const auto& [id, l] : lives) {
    if (l.constructed != 1 || l.destroyed != 1) {
      report(id, "constructed " + std::to_string(l.constructed) + ", destroyed " + std::to_string(l.destroyed));
    }
    if (l.born_on != l.died_on) report(id, "destroyed on another thread");
    if (l.violations != 0) report(id, std::to_string(l.violations) + " messages out of sequence");
    for (std::uint32_t c = 0; c < k_callers; ++c) {
      std::uint64_t expected = 0;
      if (id < k_shared) {
        expected = states[c].shared_sent[id];
      } else if (const auto it = states[c].own_sent.find(id); it != states[c].own_sent.end()) {
        expected = it->second;
      }
      if (l.final_seq[c] != expected) {
        report(id, "caller " + std::to_string(c) + " sent " + std::to_string(expected) + ", item saw " +
                       std::to_string(l.final_seq[c]));
      }
    }
  }
  EXPECT_EQ(bad, 0u);
  EXPECT_GE(processed, messages) << "the pool counted fewer messages than were sent";

  const double rate = static_cast<double>(messages) / seconds;
  std::cout << "stress: scale " << k_scale << ", " << messages << " messages, " << created << " items in "
            << seconds << " s (" << static_cast<std::uint64_t>(rate) << " messages/s)" << std::endl;
  ::testing::Test::RecordProperty("messages", std::to_string(messages));
  ::testing::Test::RecordProperty("items", std::to_string(created));
  ::testing::Test::RecordProperty("seconds", std::to_string(seconds));
  ::testing::Test::RecordProperty("messages_per_second", std::to_string(static_cast<std::uint64_t>(rate)));
}

// ---- Shutdown under load, repeated ---------------------------------------------------------------

TEST(Stress, RepeatedShutdownUnderLoad) {
  const int cycles = static_cast<int>((MTP_STRESS_TSAN ? 3 : 20) * k_scale);
  for (int cycle = 0; cycle < cycles; ++cycle) {
    g_registry.reset();
    std::atomic<int> warm{0};
    std::vector<std::future<std::uint64_t>> callers;
    {
      pool_t pool(stress_options(2));
      std::vector<mtp::id_t> ids(256);
      for (mtp::id_t id = 0; id < 256; ++id) ids[id] = id;
      for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(ids))) ASSERT_TRUE(r.has_value());
      for (std::uint32_t c = 0; c < 4; ++c) {
        callers.push_back(std::async(std::launch::async, [&pool, &warm, c, cycle] {
          std::mt19937 rng(static_cast<unsigned>(cycle * 10 + c));
          std::uint64_t wrong = 0;
          std::uint64_t seq = 0;
          for (std::uint64_t n = 0;; ++n) {
            if (n == 20) warm.fetch_add(1);
            std::vector<msg> batch;
            const mtp::id_t id = rng() % 256;
            for (int i = 0; i < 8; ++i) batch.push_back({(id + i) % 256, c, ++seq});
            bool stopped = false;
            if (rng() % 2 == 0) {
              for (const auto& r : pool.send_batch(batch)) {
                if (r.has_error()) {
                  if (r.error().code == mtp::errc::pool_stopped) stopped = true;
                  else ++wrong;
                }
              }
            } else {
              const auto r = pool.post(batch[0]);
              if (r.has_error()) {
                if (r.error().code == mtp::errc::pool_stopped) stopped = true;
                else ++wrong;
              }
            }
            if (stopped) return wrong;
          }
        }));
      }
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (warm.load() < 4 && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
      EXPECT_EQ(warm.load(), 4) << "cycle " << cycle << ": callers made no progress";
      pool.shutdown();
      for (auto& f : callers) {
        ASSERT_EQ(f.wait_for(std::chrono::seconds(60)), std::future_status::ready) << "cycle " << cycle;
        EXPECT_EQ(f.get(), 0u);
      }
    }
    const auto lives = g_registry.take();
    ASSERT_EQ(lives.size(), 256u);
    for (const auto& [id, l] : lives) {
      ASSERT_EQ(l.constructed, 1) << "cycle " << cycle << " id " << id;
      ASSERT_EQ(l.destroyed, 1) << "cycle " << cycle << " id " << id;
      ASSERT_EQ(l.born_on, l.died_on) << "cycle " << cycle << " id " << id;
    }
  }
}

}  // namespace
