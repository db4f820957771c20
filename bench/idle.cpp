// SPDX-License-Identifier: MIT
// Idle cost: CPU time the pool's threads burn while idle after a burst. The caller sends a
// 10,000-request burst, then sleeps for a window (1 s; 0.3 s with --quick); the process's CPU
// time across the window (getrusage(RUSAGE_SELF): every thread) is the pool's, since the caller
// sleeps. Reported as ms of CPU per second of idling.
#include <chrono>
#include <span>
#include <string>
#include <vector>

#include "common.hpp"
#include "items.hpp"
#include "mutex_pool.hpp"

namespace bench {
namespace {

using namespace std::chrono_literals;

double window_s() { return config().quick ? 0.3 : 1.0; }

template <class Burst>
void measure(benchmark::State& state, Burst&& burst) {
  double cpu = 0, wall = 0;
  for (auto _ : state) {
    burst();
    const double c0 = process_cpu_seconds();
    const auto t0 = clock_type::now();
    sleep_us(window_s() * 1e6);
    const auto t1 = clock_type::now();
    cpu += process_cpu_seconds() - c0;
    wall += elapsed_ns(t0, t1) * 1e-9;
    state.SetIterationTime(elapsed_ns(t0, t1) * 1e-9);
  }
  state.counters["idle_ms_per_s"] = cpu * 1000.0 / wall;
  state.counters["window_s"] = window_s();
}

void mtp_idle(benchmark::State& state, where w, std::chrono::nanoseconds spin) {
  mtp::thread_pool<echo_item> pool(pool_options_for(2, w, spin));
  std::vector<mtp::id_t> ids(1000);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = i;
  for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(ids))) {
    if (!r) return fail(state, "create failed");
  }
  std::vector<ping> reqs(10000);
  for (std::size_t i = 0; i < reqs.size(); ++i) reqs[i] = ping{i % ids.size(), i};
  std::size_t wrong = 0;
  measure(state, [&] {
    const auto out = pool.send_batch(reqs);
    for (std::size_t i = 0; i < reqs.size(); ++i) wrong += (!out[i] || out[i].value() != reqs[i].x + reqs[i].id) ? 1 : 0;
  });
  if (wrong != 0) return fail(state, std::to_string(wrong) + " wrong replies in the burst");
  state.counters["worker_spin_us"] = std::chrono::duration<double, std::micro>(spin).count();
  state.counters["pinned"] = all_pinned(pool);
}

void mutex_idle(benchmark::State& state) {
  mutex_thread_pool pool(2);
  locked_objects<echo_item> objects;
  for (std::size_t i = 0; i < 1000; ++i) objects.create(i);
  std::vector<std::uint64_t> out(10000);
  latch done;
  std::size_t wrong = 0;
  measure(state, [&] {
    done.reset(out.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      pool.submit([&, i] {
        out[i] = objects.with(i % 1000, [&](echo_item& item) { return item.handle(ping{i % 1000, i}); });
        done.arrive();
      });
    }
    done.wait();
    for (std::size_t i = 0; i < out.size(); ++i) wrong += out[i] != i + i % 1000 ? 1 : 0;
  });
  if (wrong != 0) return fail(state, std::to_string(wrong) + " wrong replies in the burst");
}

void add(const std::string& name, auto fn) {
  repeat(benchmark::RegisterBenchmark(name.c_str(), fn)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond),
         3, 2);
}

}  // namespace

void register_idle() {
  add("idle/mtp/spin:50us", [](benchmark::State& s) { mtp_idle(s, where::fallback, 50us); });
  if (!config().quick) {
    for (auto spin : {0us, 20us, 1000us, 10000us}) {
      add("idle/mtp/spin:" + std::to_string(spin.count()) + "us",
          [spin](benchmark::State& s) { mtp_idle(s, where::fallback, spin); });
    }
    add("idle/mtp_unpinned/spin:50us", [](benchmark::State& s) { mtp_idle(s, where::unpinned, 50us); });
  }
  add("idle/mutex_pool", [](benchmark::State& s) { mutex_idle(s); });
}

}  // namespace bench
