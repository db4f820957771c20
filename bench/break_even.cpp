// SPDX-License-Identifier: MIT
// Break-even sweep: how much work a message must carry before the pool pays off. For each work
// size W the pool runs a batch of ~10 ms of W-microsecond requests; sweep.cpp times the same
// calls run sequentially and split over two threads with no queue (the ceiling).
//   awake  : the workers were just answering (a tiny warm-up batch right before).
//   asleep : the caller slept 1 ms first, past the workers' spin budget.
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "common.hpp"
#include "items.hpp"
#include "mutex_pool.hpp"
#include "sweep.hpp"

namespace bench {
namespace {

void mtp_sweep(benchmark::State& state, double work_us, std::size_t workers, where w, bool awake) {
  const sweep_case c = make_sweep_case(work_us, sweep_total_us());
  mtp::thread_pool<work_item> pool(pool_options_for(workers, w));
  std::vector<mtp::id_t> ids(c.items);
  for (std::size_t i = 0; i < c.items; ++i) ids[i] = i;
  for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(ids))) {
    if (!r) return fail(state, "create failed");
  }
  std::vector<mtp::result<std::uint64_t>> results(c.reqs.size());
  // The warm-up reads one item per worker: it leaves the item state alone.
  std::vector<sum_query> warm;
  for (std::size_t i = 0; i < std::min(workers, c.items); ++i) warm.push_back(sum_query{i});
  std::vector<mtp::result<std::uint64_t>> warm_out(warm.size());

  sweep_runner r;
  if (awake) {
    r.before = [&] { pool.send_batch(std::span<const sum_query>(warm), std::span<mtp::result<std::uint64_t>>(warm_out)); };
  } else {
    r.before = [] { sleep_us(1000); };
  }
  r.run = [&](std::span<const work> reqs, std::span<std::uint64_t> out) {
    pool.send_batch(reqs, std::span<mtp::result<std::uint64_t>>(results));
    for (std::size_t i = 0; i < reqs.size(); ++i) out[i] = results[i] ? results[i].value() : ~std::uint64_t{0};
  };
  r.sums = [&] {
    std::vector<sum_query> q;
    for (mtp::id_t i = 0; i < c.items; ++i) q.push_back(sum_query{i});
    std::vector<std::uint64_t> s;
    for (const auto& x : pool.send_batch(q)) s.push_back(x.value());
    return s;
  };
  run_sweep(state, c, r);
  state.counters["workers"] = static_cast<double>(workers);
  state.counters["pinned"] = all_pinned(pool);
  state.counters["awake"] = awake ? 1 : 0;
}

void mutex_sweep(benchmark::State& state, double work_us) {
  const sweep_case c = make_sweep_case(work_us, sweep_total_us());
  mutex_thread_pool pool(2);
  locked_objects<work_item> objects;
  for (std::size_t i = 0; i < c.items; ++i) objects.create(i);
  latch done;
  sweep_runner r;
  r.run = [&](std::span<const work> reqs, std::span<std::uint64_t> out) {
    done.reset(reqs.size());
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      pool.submit([&, i] {
        out[i] = objects.with(reqs[i].id, [&](work_item& item) { return item.handle(reqs[i]); });
        done.arrive();
      });
    }
    done.wait();
  };
  r.sums = [&] {
    std::vector<std::uint64_t> s;
    for (std::size_t i = 0; i < c.items; ++i) s.push_back(objects.with(i, [](work_item& item) { return item.sum(); }));
    return s;
  };
  run_sweep(state, c, r);
  state.counters["workers"] = 2;
}

std::string work_name(double us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", us);
  return buf;
}

void add(const std::string& name, auto fn) {
  repeat(benchmark::RegisterBenchmark(name.c_str(), fn)
             ->UseManualTime()
             ->Iterations(sweep_iterations())
             ->Unit(benchmark::kMillisecond),
         5, 2);
}

}  // namespace

void register_break_even() {
  const bool quick = config().quick;
  for (double w : sweep_work_sizes()) {
    const std::string ws = "/work_us:" + work_name(w);
    for (bool awake : {true, false}) {
      const std::string regime = awake ? "/awake" : "/asleep";
      add("sweep/mtp/workers:2" + regime + ws, [w, awake](benchmark::State& s) { mtp_sweep(s, w, 2, where::fallback, awake); });
      if (!quick) {
        add("sweep/mtp/workers:1" + regime + ws,
            [w, awake](benchmark::State& s) { mtp_sweep(s, w, 1, where::fallback, awake); });
        add("sweep/mtp_unpinned/workers:2" + regime + ws,
            [w, awake](benchmark::State& s) { mtp_sweep(s, w, 2, where::unpinned, awake); });
      }
    }
    add("sweep/mutex_pool/workers:2" + ws, [w](benchmark::State& s) { mutex_sweep(s, w); });
  }
}

}  // namespace bench
