// SPDX-License-Identifier: MIT
// Many caller threads over a pool's lifetime: does what a caller thread leaves behind slow the
// pool down or grow the process?
//
//   churn/<kind>/threads:T/alive:A
//     One thread's round-trip p50 (20,000 round trips; 5,000 with --quick) and the process's
//     RSS (/proc/self/statm), before and after T short-lived caller threads (at most A alive at
//     once, each making one call, then exiting). Full run: T = 100,000, A = 4,000; --quick:
//     T = 2,000, A = 500.
//     <kind>: mtp (the threads send to the pool), mtp_untouched (the same churn, but the
//     threads never touch the pool: what thread churn alone costs), mutex_pool (the baseline,
//     its own round trip before and after).
//     A warm-up wave of A threads that only allocate runs before the "before" figures.
//     Counters: p50_before_us, p50_after_us, p50_ratio (after / before), rss_before_mb,
//     rss_after_mb, rss_delta_mb, heap_delta_mb (what malloc holds: see heap_mb), churn_s (time
//     to run the T threads). The RSS is the process's: pages that earlier benchmarks touched
//     and freed are reused without growing it, so heap_delta_mb is the sharper of the two.
//
//   idle_callers/mtp/threads:1000/{exited,blocked}
//     Round-trip p50 and the CPU the process uses while idle (the caller sleeps for a window:
//     every thread's CPU time from getrusage, in ms per s), first with one caller thread, then
//     after 1,000 more threads have each sent once and then exited, or stay alive blocked on a
//     latch. Counters: p50_before_us, p50_after_us, p50_ratio, idle_before_ms_per_s,
//     idle_after_ms_per_s, idle_ratio.
//
// The pools have MTP_BENCH_WORKERS workers (default 2) and 1,000 items; round trips go to item 1.
// While it times its round trips the measuring thread is pinned to a CPU other than item 1's
// worker's (the mutex pool: to the last allowed CPU), so that before and after compare the same
// placement; the threads it starts are not pinned.
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
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

std::size_t round_trips() { return config().quick ? 5000 : 20000; }

// A CPU other than the one item `id`'s worker is pinned to, or -1.
template <class Pool>
int cpu_away_from(const Pool& pool, mtp::id_t id) {
  const std::vector<unsigned> mine = pool.stats().workers[pool.worker_of(id)].placement.cpus;
  for (unsigned cpu : allowed_cpus()) {
    if (mine.size() == 1 && cpu != mine[0]) return static_cast<int>(cpu);
  }
  return -1;
}

// One thread's round trips, on `cpu` (unpinned when -1): `call(x)` makes one and returns true
// when the reply was right.
percentiles time_round_trips(const std::function<bool(std::uint64_t)>& call, std::size_t n, std::uint64_t& wrong,
                             int cpu) {
  affinity_guard guard;
  if (cpu >= 0) (void)pin_current_thread(static_cast<unsigned>(cpu));
  std::vector<double> ns;
  ns.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto t0 = clock_type::now();
    const bool ok = call(i);
    ns.push_back(elapsed_ns(t0, clock_type::now()));
    wrong += ok ? 0 : 1;
  }
  return summarise(ns);
}

// Runs `threads` threads, at most `alive` at once, each running one_call(i) once.
void churn_threads(std::size_t threads, std::size_t alive, const std::function<bool(std::uint64_t)>& one_call,
                   std::atomic<std::uint64_t>& wrong) {
  std::deque<std::thread> live;
  for (std::size_t i = 0; i < threads; ++i) {
    if (live.size() >= alive) {
      live.front().join();
      live.pop_front();
    }
    live.emplace_back([&one_call, &wrong, i] {
      if (!one_call(i)) wrong.fetch_add(1, std::memory_order_relaxed);
    });
  }
  for (auto& t : live) t.join();
}

// The shared shape: warm up, measure, churn, measure again.
void churn_case(benchmark::State& state, std::size_t threads, std::size_t alive, int cpu,
                const std::function<bool(std::uint64_t)>& round_trip, const std::function<bool(std::uint64_t)>& one_call) {
  std::uint64_t wrong = 0;
  std::atomic<std::uint64_t> wrong_churn{0};
  for (auto _ : state) {
    // Warm-up: one wave of `alive` threads that allocate and free but never touch the pool, so
    // that what a first use of threads sets up once (the allocator's per-thread arenas, cached
    // stacks) is in the baseline, and no caller has been seen by the pool yet.
    churn_threads(alive, alive, [](std::uint64_t i) {
      auto p = std::make_unique<std::uint64_t[]>(32);
      p[i % 32] = i;
      benchmark::DoNotOptimize(p.get());
      return true;
    }, wrong_churn);
    (void)time_round_trips(round_trip, round_trips() / 4, wrong, cpu);
    const percentiles before = time_round_trips(round_trip, round_trips(), wrong, cpu);
    const double rss0 = rss_mb();
    const double heap0 = heap_mb();
    const auto t0 = clock_type::now();
    churn_threads(threads, alive, one_call, wrong_churn);
    const double churn_s = elapsed_ns(t0, clock_type::now()) * 1e-9;
    const percentiles after = time_round_trips(round_trip, round_trips(), wrong, cpu);
    const double rss1 = rss_mb();
    const double heap1 = heap_mb();
    state.SetIterationTime(churn_s);
    state.counters["p50_before_us"] = before.p50 / 1000.0;
    state.counters["p50_after_us"] = after.p50 / 1000.0;
    state.counters["p50_ratio"] = after.p50 / before.p50;
    state.counters["p99_before_us"] = before.p99 / 1000.0;
    state.counters["p99_after_us"] = after.p99 / 1000.0;
    state.counters["rss_before_mb"] = rss0;
    state.counters["rss_after_mb"] = rss1;
    state.counters["rss_delta_mb"] = rss1 - rss0;
    state.counters["heap_before_mb"] = heap0;
    state.counters["heap_after_mb"] = heap1;
    state.counters["heap_delta_mb"] = heap1 - heap0;
    state.counters["churn_s"] = churn_s;
  }
  if (wrong != 0 || wrong_churn.load() != 0) {
    return fail(state, std::to_string(wrong + wrong_churn.load()) + " wrong replies");
  }
  state.counters["threads"] = static_cast<double>(threads);
  state.counters["alive"] = static_cast<double>(alive);
  state.counters["caller_pinned"] = cpu >= 0 ? 1 : 0;
  state.counters["workers"] = static_cast<double>(bench_workers());
}

template <class Pool>
void create_items(Pool& pool) {
  std::vector<mtp::id_t> ids(k_items);
  for (std::size_t i = 0; i < k_items; ++i) ids[i] = i;
  (void)pool.create_batch(std::span<const mtp::id_t>(ids));
}

void mtp_churn(benchmark::State& state, std::size_t threads, std::size_t alive, bool touch) {
  mtp::thread_pool<echo_item> pool(pool_options_for(bench_workers(), where::fallback));
  create_items(pool);
  std::atomic<std::uint64_t> sink{0};
  const auto round_trip = [&pool](std::uint64_t x) { return pool.send(ping{1, x}) == x + 1; };
  const auto one_call = [&pool, &sink, touch](std::uint64_t i) {
    if (!touch) {
      sink.fetch_add(i, std::memory_order_relaxed);
      return true;
    }
    const mtp::id_t id = i % k_items;
    return pool.send(ping{id, i}) == i + id;
  };
  churn_case(state, threads, alive, cpu_away_from(pool, 1), round_trip, one_call);
  if (pool.stats().total_items() != k_items) fail(state, "items lost");
  state.counters["pinned"] = all_pinned(pool);
}

void mutex_churn(benchmark::State& state, std::size_t threads, std::size_t alive) {
  mutex_thread_pool pool(bench_workers());
  locked_objects<echo_item> objects;
  for (std::size_t i = 0; i < k_items; ++i) objects.create(i);
  const auto call = [&](std::uint64_t id, std::uint64_t x) {
    latch done;
    done.reset(1);
    std::uint64_t r = 0;
    pool.submit([&] {
      r = objects.with(id, [&](echo_item& item) { return item.handle(ping{id, x}); });
      done.arrive();
    });
    done.wait();
    return r == x + id;
  };
  const std::vector<unsigned> cpus = allowed_cpus();
  const int cpu = cpus.size() > 1 ? static_cast<int>(cpus.back()) : -1;
  churn_case(
      state, threads, alive, cpu, [&](std::uint64_t x) { return call(1, x); },
      [&](std::uint64_t i) { return call(i % k_items, i); });
}

// ---- Idle poll cost with many registered callers ---------------------------------------------

double idle_window_s() { return config().quick ? 0.3 : 1.0; }

double idle_ms_per_s() {
  const double c0 = process_cpu_seconds();
  const auto t0 = clock_type::now();
  sleep_us(idle_window_s() * 1e6);
  const double wall = elapsed_ns(t0, clock_type::now()) * 1e-9;
  return (process_cpu_seconds() - c0) * 1000.0 / wall;
}

void mtp_idle_callers(benchmark::State& state, std::size_t threads, bool stay_blocked) {
  mtp::thread_pool<echo_item> pool(pool_options_for(bench_workers(), where::fallback));
  create_items(pool);
  const auto round_trip = [&pool](std::uint64_t x) { return pool.send(ping{1, x}) == x + 1; };
  std::uint64_t wrong = 0;
  std::atomic<std::uint64_t> wrong_callers{0};
  const int cpu = cpu_away_from(pool, 1);
  for (auto _ : state) {
    (void)time_round_trips(round_trip, round_trips() / 4, wrong, cpu);
    const percentiles before = time_round_trips(round_trip, round_trips(), wrong, cpu);
    const double idle_before = idle_ms_per_s();

    std::latch sent(static_cast<std::ptrdiff_t>(threads));
    std::latch release(1);
    std::vector<std::thread> callers;
    callers.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) {
      callers.emplace_back([&, i] {
        const mtp::id_t id = i % k_items;
        if (pool.send(ping{id, i}) != i + id) wrong_callers.fetch_add(1, std::memory_order_relaxed);
        sent.count_down();
        if (stay_blocked) release.wait();
      });
    }
    sent.wait();
    if (!stay_blocked) {
      for (auto& t : callers) t.join();
    }

    const percentiles after = time_round_trips(round_trip, round_trips(), wrong, cpu);
    const double idle_after = idle_ms_per_s();
    release.count_down();
    for (auto& t : callers) {
      if (t.joinable()) t.join();
    }
    state.SetIterationTime(2 * idle_window_s());
    state.counters["p50_before_us"] = before.p50 / 1000.0;
    state.counters["p50_after_us"] = after.p50 / 1000.0;
    state.counters["p50_ratio"] = after.p50 / before.p50;
    state.counters["idle_before_ms_per_s"] = idle_before;
    state.counters["idle_after_ms_per_s"] = idle_after;
    state.counters["idle_ratio"] = idle_before > 0 ? idle_after / idle_before : 0;
  }
  if (wrong != 0 || wrong_callers.load() != 0) {
    return fail(state, std::to_string(wrong + wrong_callers.load()) + " wrong replies");
  }
  state.counters["threads"] = static_cast<double>(threads);
  state.counters["caller_pinned"] = cpu >= 0 ? 1 : 0;
  state.counters["window_s"] = idle_window_s();
  state.counters["workers"] = static_cast<double>(pool.worker_count());
  state.counters["pinned"] = all_pinned(pool);
}

void add(const std::string& name, auto fn) {
  benchmark::RegisterBenchmark(name.c_str(), fn)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);
}

}  // namespace

void register_churn() {
  const std::size_t threads = config().quick ? 2000 : 100000;
  const std::size_t alive = config().quick ? 500 : 4000;
  const std::string tail = "/threads:" + std::to_string(threads) + "/alive:" + std::to_string(alive);
  add("churn/mtp" + tail, [=](benchmark::State& s) { mtp_churn(s, threads, alive, true); });
  add("churn/mtp_untouched" + tail, [=](benchmark::State& s) { mtp_churn(s, threads, alive, false); });
  add("churn/mutex_pool" + tail, [=](benchmark::State& s) { mutex_churn(s, threads, alive); });

  for (bool blocked : {false, true}) {
    add(std::string("idle_callers/mtp/threads:1000/") + (blocked ? "blocked" : "exited"),
        [blocked](benchmark::State& s) { mtp_idle_callers(s, 1000, blocked); });
  }
}

}  // namespace bench
