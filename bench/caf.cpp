// SPDX-License-Identifier: MIT
// Baseline: CAF (C++ Actor Framework 0.17), one stateful actor per item, the caller a
// scoped_actor. Round trips use request/receive; batches send every request and then receive
// the replies (which come back in completion order, tagged with their index). The scheduler
// runs 2 threads (one per vCPU here) with its default idle strategy.
#include <caf/all.hpp>

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common.hpp"
#include "items.hpp"
#include "sweep.hpp"

namespace bench {
namespace {

using calls_atom = caf::atom_constant<caf::atom("calls")>;
using sum_atom = caf::atom_constant<caf::atom("sum")>;

struct echo_state {
  std::uint64_t calls = 0;
};
caf::behavior echo_actor(caf::stateful_actor<echo_state>* self, std::uint64_t id) {
  return {
      [=](std::uint64_t x) -> std::uint64_t {
        ++self->state.calls;
        return x + id;
      },
      [=](std::uint64_t index, std::uint64_t x) -> caf::message {
        ++self->state.calls;
        return caf::make_message(index, x + id);
      },
      [=](calls_atom) -> std::uint64_t { return self->state.calls; },
  };
}

struct work_state {
  std::uint64_t sum = 0;
};
caf::behavior work_actor(caf::stateful_actor<work_state>* self, std::uint64_t id) {
  return {
      [=](std::uint64_t index, std::uint64_t x, std::uint64_t iters) -> caf::message {
        const std::uint64_t r = spin_work(x ^ (id * 0x9E3779B97F4A7C15ull), iters);
        self->state.sum += r;
        return caf::make_message(index, r);
      },
      [=](sum_atom) -> std::uint64_t { return self->state.sum; },
  };
}

caf::actor_system_config& make_config(caf::actor_system_config& cfg) {
  cfg.set("scheduler.max-threads", 2);
  return cfg;
}

/// An actor system with 2 scheduler threads, and `n` actors spawned by `make`.
struct caf_world {
  caf::actor_system_config cfg;
  caf::actor_system sys{make_config(cfg)};
  std::vector<caf::actor> actors;
};

std::uint64_t ask_u64(caf::scoped_actor& self, const caf::actor& a, auto msg, bool& ok) {
  std::uint64_t v = 0;
  self->request(a, caf::infinite, msg).receive([&](std::uint64_t r) { v = r; }, [&](caf::error&) { ok = false; });
  return v;
}

void caf_round_trip(benchmark::State& state, double pause_us) {
  caf_world w;
  const std::uint64_t id = 1;
  w.actors.push_back(w.sys.spawn(echo_actor, id));
  caf::scoped_actor self{w.sys};
  std::vector<double> ns;
  ns.reserve(static_cast<std::size_t>(state.max_iterations));
  std::uint64_t wrong = 0, x = 0;
  bool ok = true;
  for (auto _ : state) {
    if (pause_us > 0) sleep_us(pause_us);
    ++x;
    const auto t0 = clock_type::now();
    const std::uint64_t r = ask_u64(self, w.actors[0], x, ok);
    const auto t1 = clock_type::now();
    wrong += r != x + id ? 1 : 0;
    state.SetIterationTime(elapsed_ns(t0, t1) * 1e-9);
    ns.push_back(elapsed_ns(t0, t1));
  }
  if (!ok || wrong != 0) return fail(state, std::to_string(wrong) + " wrong replies");
  if (ask_u64(self, w.actors[0], calls_atom::value, ok) != x || !ok) return fail(state, "the actor missed requests");
  const percentiles p = summarise(ns);
  state.counters["p50_us"] = p.p50 / 1000.0;
  state.counters["p99_us"] = p.p99 / 1000.0;
  state.counters["mean_us"] = p.mean / 1000.0;
  state.counters["pause_us"] = pause_us;
  state.counters["workers"] = 2;
}

/// Sends request i = (i, x=i) to actor i mod items; replies land in out[i].
void caf_send_batch(caf::scoped_actor& self, const std::vector<caf::actor>& actors, std::size_t batch,
                    std::vector<std::uint64_t>& out) {
  for (std::size_t i = 0; i < batch; ++i) self->send(actors[i % actors.size()], std::uint64_t{i}, std::uint64_t{i});
  std::size_t got = 0;
  self->receive_for(got, batch)([&](std::uint64_t index, std::uint64_t r) { out[index] = r; });
}

void caf_batch(benchmark::State& state, std::size_t batch, std::size_t items) {
  caf_world w;
  for (std::size_t i = 0; i < items; ++i) w.actors.push_back(w.sys.spawn(echo_actor, std::uint64_t{i}));
  caf::scoped_actor self{w.sys};
  std::vector<std::uint64_t> out(batch);
  const auto t0 = clock_type::now();
  for (auto _ : state) caf_send_batch(self, w.actors, batch, out);
  const double ns = elapsed_ns(t0, clock_type::now());
  for (std::size_t i = 0; i < batch; ++i) {
    if (out[i] != i + i % items) return fail(state, "wrong reply at " + std::to_string(i));
  }
  bool ok = true;
  std::uint64_t total = 0;
  for (const auto& a : w.actors) total += ask_u64(self, a, calls_atom::value, ok);
  if (!ok || total != batch * static_cast<std::uint64_t>(state.iterations())) return fail(state, "actors missed requests");
  const double msgs = static_cast<double>(batch) * static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(msgs));
  state.counters["ns_per_msg"] = ns / msgs;
  state.counters["batch"] = static_cast<double>(batch);
  state.counters["items"] = static_cast<double>(items);
  state.counters["workers"] = 2;
}

/// Async callers baseline: one event-based driver actor keeps `in_flight` requests in flight
/// with request(...).then(...) over 1,000 echo actors; each reply issues the next request.
struct then_state {
  std::vector<double> ns;
  std::vector<clock_type::time_point> started;
  std::size_t sent = 0, done = 0;
  std::uint64_t wrong = 0;
};

void caf_then_in_flight(benchmark::State& state, std::size_t in_flight) {
  caf_world w;
  const std::size_t items = 1000;
  for (std::size_t i = 0; i < items; ++i) w.actors.push_back(w.sys.spawn(echo_actor, std::uint64_t{i}));
  const std::size_t base = config().quick ? 20000 : 200000;
  const std::size_t total = (in_flight == 1 ? base / 4 : base) / in_flight * in_flight;
  std::uint64_t wrong = 0;
  for (auto _ : state) {
    auto st = std::make_shared<then_state>();
    st->ns.reserve(total);
    st->started.resize(total);
    std::promise<void> finished;
    auto fut = finished.get_future();
    const auto t0 = clock_type::now();
    w.sys.spawn([&, st](caf::event_based_actor* self) -> caf::behavior {
      auto issue = std::make_shared<std::function<void()>>();
      *issue = [&, self, st, weak = std::weak_ptr<std::function<void()>>(issue)] {
        const std::size_t i = st->sent++;
        const std::uint64_t id = i % items;
        st->started[i] = clock_type::now();
        self->request(w.actors[id], caf::infinite, std::uint64_t{i}).then([&, self, st, weak, i, id](std::uint64_t r) {
          st->ns.push_back(elapsed_ns(st->started[i], clock_type::now()));
          if (r != i + id) ++st->wrong;
          if (st->sent < total) {
            if (auto next = weak.lock()) (*next)();
          }
          if (++st->done == total) {
            finished.set_value();
            self->quit();
          }
        });
      };
      for (std::size_t c = 0; c < in_flight; ++c) (*issue)();
      return {[issue](int) {}};  // the behavior keeps `issue` alive until the actor quits
    });
    fut.wait();
    const double seconds = elapsed_ns(t0, clock_type::now()) / 1e9;
    wrong += st->wrong;
    const percentiles p = summarise(st->ns);
    state.SetIterationTime(seconds);
    state.SetItemsProcessed(static_cast<std::int64_t>(total));
    state.counters["msgs_per_s"] = static_cast<double>(total) / seconds;
    state.counters["p50_us"] = p.p50 / 1000.0;
    state.counters["p99_us"] = p.p99 / 1000.0;
  }
  if (wrong != 0) return fail(state, std::to_string(wrong) + " wrong replies");
  state.counters["in_flight"] = static_cast<double>(in_flight);
}

void caf_create(benchmark::State& state, std::size_t n) {
  caf_world w;
  caf::scoped_actor self{w.sys};
  double create_ns = 0;
  bool ok = true;
  std::uint64_t answered = 0;
  for (auto _ : state) {
    w.actors.clear();
    w.actors.reserve(n);
    const auto t0 = clock_type::now();
    for (std::size_t i = 0; i < n; ++i) w.actors.push_back(w.sys.spawn(echo_actor, std::uint64_t{i}));
    const auto t1 = clock_type::now();
    state.SetIterationTime(elapsed_ns(t0, t1) * 1e-9);
    create_ns += elapsed_ns(t0, t1);
    state.PauseTiming();
    for (const auto& a : w.actors) self->send(a, calls_atom::value);
    std::size_t got = 0;
    self->receive_for(got, n)([&](std::uint64_t) { ++answered; });
    w.actors.clear();  // the actors terminate once unreferenced
    state.ResumeTiming();
  }
  if (!ok || answered != n * static_cast<std::uint64_t>(state.iterations())) return fail(state, "not every actor answered");
  const double total = static_cast<double>(n) * static_cast<double>(state.iterations());
  state.counters["create_ns_per_item"] = create_ns / total;
  state.counters["items"] = static_cast<double>(n);
  state.SetItemsProcessed(static_cast<std::int64_t>(total));
}

void caf_sweep(benchmark::State& state, double work_us) {
  const sweep_case c = make_sweep_case(work_us, sweep_total_us());
  caf_world w;
  for (std::size_t i = 0; i < c.items; ++i) w.actors.push_back(w.sys.spawn(work_actor, std::uint64_t{i}));
  caf::scoped_actor self{w.sys};
  sweep_runner r;
  r.run = [&](std::span<const work> reqs, std::span<std::uint64_t> out) {
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      self->send(w.actors[reqs[i].id], std::uint64_t{i}, reqs[i].x, reqs[i].iters);
    }
    std::size_t got = 0;
    self->receive_for(got, reqs.size())([&](std::uint64_t index, std::uint64_t v) { out[index] = v; });
  };
  bool ok = true;
  r.sums = [&] {
    std::vector<std::uint64_t> s;
    for (const auto& a : w.actors) s.push_back(ask_u64(self, a, sum_atom::value, ok));
    return s;
  };
  run_sweep(state, c, r);
  if (!ok) return fail(state, "a sum request failed");
  state.counters["workers"] = 2;
}

void caf_idle(benchmark::State& state) {
  caf_world w;
  for (std::size_t i = 0; i < 1000; ++i) w.actors.push_back(w.sys.spawn(echo_actor, std::uint64_t{i}));
  caf::scoped_actor self{w.sys};
  std::vector<std::uint64_t> out(10000);
  const double window = config().quick ? 0.3 : 1.0;
  double cpu = 0, wall = 0;
  for (auto _ : state) {
    caf_send_batch(self, w.actors, out.size(), out);
    const double c0 = process_cpu_seconds();
    const auto t0 = clock_type::now();
    sleep_us(window * 1e6);
    const auto t1 = clock_type::now();
    cpu += process_cpu_seconds() - c0;
    wall += elapsed_ns(t0, t1) * 1e-9;
    state.SetIterationTime(elapsed_ns(t0, t1) * 1e-9);
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] != i + i % 1000) return fail(state, "wrong reply in the burst");
  }
  state.counters["idle_ms_per_s"] = cpu * 1000.0 / wall;
  state.counters["window_s"] = window;
}

}  // namespace

bool have_caf() { return true; }

void register_caf() {
  const bool quick = config().quick;
  const auto rt = [&](const char* name, double pause) {
    repeat(benchmark::RegisterBenchmark(name, [pause](benchmark::State& s) { caf_round_trip(s, pause); })
               ->UseManualTime()
               ->Iterations(pause > 0 ? (quick ? 300 : 2000) : (quick ? 2000 : 20000))
               ->Unit(benchmark::kMicrosecond));
  };
  rt("round_trip/caf/hot", 0);
  for (std::size_t n : {1, 100, 10000}) {
    repeat(benchmark::RegisterBenchmark(("async/caf_then/in_flight:" + std::to_string(n)).c_str(),
                                        [n](benchmark::State& s) { caf_then_in_flight(s, n); })
               ->UseManualTime()
               ->Iterations(1)
               ->Unit(benchmark::kMillisecond),
           3, 1);
  }
  rt("round_trip/caf/asleep", 200);
  repeat(benchmark::RegisterBenchmark("batch/caf/batch:10000/items:1000",
                                      [](benchmark::State& s) { caf_batch(s, 10000, 1000); })
             ->UseRealTime()
             ->MinTime(quick ? 0.02 : 0.1)
             ->Unit(benchmark::kMicrosecond),
         5, 2);
  repeat(benchmark::RegisterBenchmark("create/caf/spawn:10000", [](benchmark::State& s) { caf_create(s, 10000); })
             ->UseManualTime()
             ->Iterations(quick ? 1 : 3)
             ->Unit(benchmark::kMillisecond),
         5, 2);
  for (double w : sweep_work_sizes()) {
    char name[64];
    std::snprintf(name, sizeof name, "sweep/caf/workers:2/work_us:%g", w);
    repeat(benchmark::RegisterBenchmark(name, [w](benchmark::State& s) { caf_sweep(s, w); })
               ->UseManualTime()
               ->Iterations(sweep_iterations())
               ->Unit(benchmark::kMillisecond),
           5, 2);
  }
  repeat(benchmark::RegisterBenchmark("idle/caf", [](benchmark::State& s) { caf_idle(s); })
             ->UseManualTime()
             ->Iterations(1)
             ->Unit(benchmark::kMillisecond),
         3, 2);
}

}  // namespace bench
