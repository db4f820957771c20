// SPDX-License-Identifier: MIT
// Callers at scale: C caller threads (std::thread, started before timing and released together
// by a start latch) call items spread over all workers for a fixed window, then stop; every
// thread makes at least one call. Each call is timed on its own thread; the per-thread samples
// are merged for the percentiles.
//   callers/<impl>/send/callers:C       round trips: one send at a time per thread
//   callers/<impl>/batch:100/callers:C  batches of 100 (mtp: send_batch into a reused span)
// <impl>: mtp (MTP_BENCH_WORKERS workers, default 2) or mutex_pool (as many threads).
// C: 1, 8, 64, 1000 (MTP_BENCH_CALLERS overrides the list).
// Counters: msgs_per_s (all threads together, from the release to the last reply), p50_us /
// p99_us / mean_us per call (for a batch: the whole batch, which is how long each of its
// messages waits), calls, min_calls / max_calls per thread.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <latch>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "items.hpp"
#include "mutex_pool.hpp"

namespace bench {
namespace {

constexpr std::size_t k_items = 1000;
constexpr std::size_t k_batch = 100;

double window_s() { return config().quick ? 0.15 : 0.5; }

struct per_thread {
  std::vector<double> ns;
  std::uint64_t wrong = 0;
  clock_type::time_point last{};
};

// Runs `callers` threads; make(t) builds thread t's call (a callable returning the number of
// wrong replies) on that thread, before the start. Returns false (and fails the state) on a
// wrong reply.
template <class Make>
bool run_callers(benchmark::State& state, std::size_t callers, std::size_t per_call, Make make) {
  std::vector<per_thread> out(callers);
  std::latch ready(static_cast<std::ptrdiff_t>(callers));
  std::latch go(1);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  threads.reserve(callers);
  for (std::size_t t = 0; t < callers; ++t) {
    threads.emplace_back([&, t] {
      auto call = make(t);
      per_thread& mine = out[t];
      mine.ns.reserve(1024);
      ready.count_down();
      go.wait();
      do {
        const auto t0 = clock_type::now();
        mine.wrong += call();
        const auto t1 = clock_type::now();
        mine.ns.push_back(elapsed_ns(t0, t1));
        mine.last = t1;
      } while (!stop.load(std::memory_order_relaxed));
    });
  }
  ready.wait();
  const auto start = clock_type::now();
  go.count_down();
  sleep_us(window_s() * 1e6);
  stop.store(true, std::memory_order_relaxed);
  for (auto& th : threads) th.join();

  auto end = start;
  std::vector<double> all;
  std::uint64_t wrong = 0;
  std::size_t min_calls = SIZE_MAX, max_calls = 0;
  for (auto& p : out) {
    end = std::max(end, p.last);
    wrong += p.wrong;
    min_calls = std::min(min_calls, p.ns.size());
    max_calls = std::max(max_calls, p.ns.size());
    all.insert(all.end(), p.ns.begin(), p.ns.end());
  }
  if (wrong != 0) {
    fail(state, std::to_string(wrong) + " wrong replies");
    return false;
  }
  const double s = elapsed_ns(start, end) * 1e-9;
  state.SetIterationTime(s);
  const double calls = static_cast<double>(all.size());
  const percentiles p = summarise(all);
  state.counters["msgs_per_s"] = calls * static_cast<double>(per_call) / s;
  state.counters["p50_us"] = p.p50 / 1000.0;
  state.counters["p99_us"] = p.p99 / 1000.0;
  state.counters["mean_us"] = p.mean / 1000.0;
  state.counters["calls"] = calls;
  state.counters["min_calls"] = static_cast<double>(min_calls);
  state.counters["max_calls"] = static_cast<double>(max_calls);
  state.counters["callers"] = static_cast<double>(callers);
  state.counters["batch"] = static_cast<double>(per_call);
  state.counters["window_s"] = window_s();
  state.SetItemsProcessed(static_cast<std::int64_t>(calls) * static_cast<std::int64_t>(per_call));
  return true;
}

void mtp_callers(benchmark::State& state, std::size_t callers, std::size_t per_call) {
  mtp::thread_pool<echo_item> pool(pool_options_for(bench_workers(), where::fallback));
  std::vector<mtp::id_t> ids(k_items);
  for (std::size_t i = 0; i < k_items; ++i) ids[i] = i;
  for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(ids))) {
    if (!r) return fail(state, "create failed");
  }
  std::uint64_t sent = 0;
  for (auto _ : state) {
    bool ok = false;
    if (per_call == 1) {
      ok = run_callers(state, callers, 1, [&pool](std::size_t t) {
        return [&pool, t, k = std::uint64_t{0}]() mutable -> std::uint64_t {
          const mtp::id_t id = (t * 31 + k) % k_items;  // consecutive calls walk over the workers
          const std::uint64_t x = (t << 32) | k;
          ++k;
          return pool.send(ping{id, x}) != x + id ? 1 : 0;
        };
      });
    } else {
      ok = run_callers(state, callers, per_call, [&pool, per_call](std::size_t t) {
        auto reqs = std::make_shared<std::vector<ping>>(per_call);
        auto out = std::make_shared<std::vector<mtp::result<std::uint64_t>>>(per_call);
        for (std::size_t i = 0; i < per_call; ++i) (*reqs)[i] = ping{(t * 7 + i) % k_items, (t << 32) | i};
        return [&pool, reqs, out]() -> std::uint64_t {
          pool.send_batch(std::span<const ping>(*reqs), std::span<mtp::result<std::uint64_t>>(*out));
          std::uint64_t wrong = 0;
          for (std::size_t i = 0; i < reqs->size(); ++i) {
            const auto& r = (*out)[i];
            wrong += (!r || r.value() != (*reqs)[i].x + (*reqs)[i].id) ? 1 : 0;
          }
          return wrong;
        };
      });
    }
    if (!ok) return;
    sent += static_cast<std::uint64_t>(state.counters["calls"].value) * per_call;
  }
  std::vector<calls_query> q(k_items);
  for (std::size_t i = 0; i < k_items; ++i) q[i] = calls_query{i};
  std::uint64_t total = 0;
  for (const auto& r : pool.send_batch(q)) total += r.value();
  if (total != sent) return fail(state, "items saw " + std::to_string(total) + " of " + std::to_string(sent));
  state.counters["workers"] = static_cast<double>(pool.worker_count());
  state.counters["pinned"] = all_pinned(pool);
}

void mutex_callers(benchmark::State& state, std::size_t callers, std::size_t per_call) {
  mutex_thread_pool pool(bench_workers());
  locked_objects<echo_item> objects;
  for (std::size_t i = 0; i < k_items; ++i) objects.create(i);
  std::uint64_t sent = 0;
  for (auto _ : state) {
    const bool ok = run_callers(state, callers, per_call, [&pool, &objects, per_call](std::size_t t) {
      auto done = std::make_shared<latch>();
      auto got = std::make_shared<std::vector<std::uint64_t>>(per_call);
      return [&pool, &objects, per_call, t, done, got, k = std::uint64_t{0}]() mutable -> std::uint64_t {
        done->reset(per_call);
        const std::uint64_t base = (t << 32) | k;
        for (std::size_t i = 0; i < per_call; ++i) {
          const std::uint64_t id = per_call == 1 ? (t * 31 + k) % k_items : (t * 7 + i) % k_items;
          pool.submit([&objects, id, x = base + i, slot = &(*got)[i], d = done.get()] {
            *slot = objects.with(id, [&](echo_item& item) { return item.handle(ping{id, x}); });
            d->arrive();
          });
        }
        done->wait();
        std::uint64_t wrong = 0;
        for (std::size_t i = 0; i < per_call; ++i) {
          const std::uint64_t id = per_call == 1 ? (t * 31 + k) % k_items : (t * 7 + i) % k_items;
          wrong += (*got)[i] != base + i + id ? 1 : 0;
        }
        ++k;
        return wrong;
      };
    });
    if (!ok) return;
    sent += static_cast<std::uint64_t>(state.counters["calls"].value) * per_call;
  }
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < k_items; ++i) total += objects.with(i, [](echo_item& item) { return item.calls(); });
  if (total != sent) return fail(state, "objects saw " + std::to_string(total) + " of " + std::to_string(sent));
  state.counters["workers"] = static_cast<double>(bench_workers());
}

void add(const std::string& name, auto fn) {
  repeat(benchmark::RegisterBenchmark(name.c_str(), fn)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond),
         3, 1);
}

}  // namespace

void register_callers() {
  for (std::size_t c : bench_callers({1, 8, 64, 1000})) {
    const std::string tail = "/callers:" + std::to_string(c);
    add("callers/mtp/send" + tail, [c](benchmark::State& s) { mtp_callers(s, c, 1); });
    add("callers/mtp/batch:100" + tail, [c](benchmark::State& s) { mtp_callers(s, c, k_batch); });
    add("callers/mutex_pool/send" + tail, [c](benchmark::State& s) { mutex_callers(s, c, 1); });
    add("callers/mutex_pool/batch:100" + tail, [c](benchmark::State& s) { mutex_callers(s, c, k_batch); });
  }
}

}  // namespace bench
