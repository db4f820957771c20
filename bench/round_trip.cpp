// SPDX-License-Identifier: MIT
// Round trip: one request to an item on another worker; the caller waits for the reply before
// sending the next. Per-call times are recorded; p50 and p99 go into counters.
//   hot    : back to back, the worker is spinning when the request arrives.
//   asleep : a pause longer than the worker's spin budget before each call, so every call
//            pays the wake-up path.
// caller_pinned: the caller is pinned to a CPU other than the item's worker's (cross-CPU);
// caller_colocated: the caller is pinned to the item's worker's own CPU (the same-CPU floors in
// floors.cpp are the reference). Otherwise the kernel places the caller.
// The pools have MTP_BENCH_WORKERS workers (default 2); the item is id 1.
#include <sched.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"
#include "items.hpp"
#include "mutex_pool.hpp"

namespace bench {
namespace {

using namespace std::chrono_literals;

constexpr double k_pause_us = 200;  // well above the 20 us spin budget of the asleep runs

std::int64_t calls_for(double pause_us) {
  if (pause_us > 0) return config().quick ? 300 : 2000;
  return config().quick ? 5000 : 50000;
}

void record(benchmark::State& state, std::vector<double>& ns, double pause_us) {
  const percentiles p = summarise(ns);
  state.counters["p50_us"] = p.p50 / 1000.0;
  state.counters["p99_us"] = p.p99 / 1000.0;
  state.counters["mean_us"] = p.mean / 1000.0;
  state.counters["pause_us"] = pause_us;
}

// Where the calling thread runs.
enum class caller_at {
  kernel,     // unpinned: the kernel places it
  other_cpu,  // pinned to a CPU other than the item's worker's (as the floors pin theirs)
  worker_cpu  // pinned to the item's worker's own CPU
};

// The pool: bench_workers() workers (2 by default), the item is id 1 (on worker 1 of 2).
void mtp_round_trip(benchmark::State& state, where w, std::chrono::nanoseconds worker_spin, double pause_us,
                    caller_at at = caller_at::kernel, bool stall_detector = true) {
  mtp::pool_options options = pool_options_for(bench_workers(), w, worker_spin);
  if (!stall_detector) options.stall_threshold = std::chrono::nanoseconds::zero();
  mtp::thread_pool<echo_item> pool(options);
  const mtp::id_t id = 1;
  pool.create(id);
  affinity_guard guard;
  if (at != caller_at::kernel) {
    const std::vector<unsigned> mine = pool.stats().workers[pool.worker_of(id)].placement.cpus;
    if (mine.size() != 1) return fail(state, "the item's worker is not pinned to one CPU");
    bool pinned = false;
    for (unsigned cpu : allowed_cpus()) {
      if ((at == caller_at::worker_cpu) == (cpu == mine[0])) {
        if (!pin_current_thread(cpu)) return fail(state, "could not pin the caller");
        pinned = true;
        break;
      }
    }
    if (!pinned) return fail(state, "no CPU to pin the caller to");
  }
  std::vector<double> ns;
  ns.reserve(static_cast<std::size_t>(state.max_iterations));
  // Where the caller runs relative to the item's worker: the kernel places the (unpinned)
  // caller, and a caller sharing the worker's CPU turns every round trip into a context switch.
  const std::vector<unsigned> cpus = pool.stats().workers[pool.worker_of(id)].placement.cpus;
  const int worker_cpu = cpus.size() == 1 ? static_cast<int>(cpus[0]) : -1;
  std::uint64_t wrong = 0, x = 0, sent = 0, shared = 0;
  for (auto _ : state) {
    if (pause_us > 0) sleep_us(pause_us);
    ++x;
    const auto t0 = clock_type::now();
    const std::uint64_t r = pool.send(ping{id, x});
    const auto t1 = clock_type::now();
    shared += sched_getcpu() == worker_cpu ? 1 : 0;
    wrong += r != x + id ? 1 : 0;
    ++sent;
    state.SetIterationTime(elapsed_ns(t0, t1) * 1e-9);
    ns.push_back(elapsed_ns(t0, t1));
  }
  if (wrong != 0) return fail(state, std::to_string(wrong) + " wrong replies");
  if (pool.send(calls_query{id}) != sent) return fail(state, "the item did not see every request");
  record(state, ns, pause_us);
  state.counters["workers"] = static_cast<double>(pool.worker_count());
  state.counters["pinned"] = all_pinned(pool);
  state.counters["caller_on_worker_cpu"] = static_cast<double>(shared) / static_cast<double>(sent);
  state.counters["caller_pinned"] = at != caller_at::kernel ? 1 : 0;
  state.counters["worker_spin_us"] = std::chrono::duration<double, std::micro>(worker_spin).count();
}

// The same through the mutex + condition variable pool.
void mutex_round_trip(benchmark::State& state, double pause_us) {
  mutex_thread_pool pool(bench_workers());
  locked_objects<echo_item> objects;
  const std::uint64_t id = 1;
  objects.create(id);
  latch done;
  std::vector<double> ns;
  ns.reserve(static_cast<std::size_t>(state.max_iterations));
  std::uint64_t wrong = 0, x = 0, sent = 0;
  for (auto _ : state) {
    if (pause_us > 0) sleep_us(pause_us);
    ++x;
    std::uint64_t r = 0;
    const auto t0 = clock_type::now();
    done.reset(1);
    pool.submit([&] {
      r = objects.with(id, [&](echo_item& item) { return item.handle(ping{id, x}); });
      done.arrive();
    });
    done.wait();
    const auto t1 = clock_type::now();
    wrong += r != x + id ? 1 : 0;
    ++sent;
    state.SetIterationTime(elapsed_ns(t0, t1) * 1e-9);
    ns.push_back(elapsed_ns(t0, t1));
  }
  if (wrong != 0) return fail(state, std::to_string(wrong) + " wrong replies");
  if (objects.with(id, [](echo_item& item) { return item.calls(); }) != sent) {
    return fail(state, "the object did not see every request");
  }
  record(state, ns, pause_us);
  state.counters["workers"] = static_cast<double>(bench_workers());
}

void add(const std::string& name, double pause_us, auto fn) {
  repeat(benchmark::RegisterBenchmark(name.c_str(), fn)
             ->UseManualTime()
             ->Iterations(calls_for(pause_us))
             ->Unit(benchmark::kMicrosecond));
}

}  // namespace

void register_round_trip() {
  add("round_trip/mtp/hot", 0, [](benchmark::State& s) { mtp_round_trip(s, where::fallback, 50us, 0); });
  add("round_trip/mtp/asleep", k_pause_us,
      [](benchmark::State& s) { mtp_round_trip(s, where::fallback, 20us, k_pause_us); });
  add("round_trip/mtp/hot/caller_pinned", 0,
      [](benchmark::State& s) { mtp_round_trip(s, where::pinned, 50us, 0, caller_at::other_cpu); });
  add("round_trip/mtp/asleep/caller_pinned", k_pause_us,
      [](benchmark::State& s) { mtp_round_trip(s, where::pinned, 20us, k_pause_us, caller_at::other_cpu); });
  // The stall detector's cost on the worker (two plain stores per message): the same round trip
  // with it switched off.
  add("round_trip/mtp/hot/caller_pinned/stall_detector_off", 0, [](benchmark::State& s) {
    mtp_round_trip(s, where::pinned, 50us, 0, caller_at::other_cpu, false);
  });
  add("round_trip/mtp/hot/caller_colocated", 0,
      [](benchmark::State& s) { mtp_round_trip(s, where::pinned, 50us, 0, caller_at::worker_cpu); });
  add("round_trip/mtp/asleep/caller_colocated", k_pause_us,
      [](benchmark::State& s) { mtp_round_trip(s, where::pinned, 20us, k_pause_us, caller_at::worker_cpu); });
  add("round_trip/mutex_pool/hot", 0, [](benchmark::State& s) { mutex_round_trip(s, 0); });
  add("round_trip/mutex_pool/asleep", k_pause_us, [](benchmark::State& s) { mutex_round_trip(s, k_pause_us); });

  // Pinned against unpinned workers.
  for (where w : {where::pinned, where::unpinned}) {
    const std::string p = std::string("round_trip/mtp_") + to_string(w);
    add(p + "/hot", 0, [w](benchmark::State& s) { mtp_round_trip(s, w, 50us, 0); });
    add(p + "/asleep", k_pause_us, [w](benchmark::State& s) { mtp_round_trip(s, w, 20us, k_pause_us); });
  }

  // The spin budget: a 200 us pause before each call; a budget above it keeps the worker awake.
  const std::vector<std::chrono::microseconds> spins =
      config().quick ? std::vector<std::chrono::microseconds>{0us, 1000us}
                     : std::vector<std::chrono::microseconds>{0us, 20us, 50us, 100us, 1000us};
  for (auto spin : spins) {
    add("round_trip/mtp/spin:" + std::to_string(spin.count()) + "us/pause:200us", k_pause_us,
        [spin](benchmark::State& s) { mtp_round_trip(s, where::fallback, spin, k_pause_us); });
  }
}

}  // namespace bench
