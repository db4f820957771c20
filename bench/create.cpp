// SPDX-License-Identifier: MIT
// Item creation and removal: 100,000 small items created in batches, then removed in batches.
// The benchmark time is the creation; removal goes into a counter.
//
// Pool lifetime: constructing and destroying a thread_pool<echo_item> (no items), per pool.
//   pool_lifetime/mtp/default     pool_options{} (one worker per allowed core, the default
//                                 placement; only the diagnostic sink is silenced)
//   pool_lifetime/mtp/workers:1   one worker
//   pool_lifetime/mutex_pool/threads:2  the baseline: start and join two threads
// The benchmark time is construction + destruction; construct_us and destroy_us split it.
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <string>
#include <vector>

#include "common.hpp"
#include "items.hpp"
#include "mutex_pool.hpp"

namespace bench {
namespace {

constexpr std::size_t k_items = 100000;

void mtp_create(benchmark::State& state, std::size_t batch) {
  mtp::thread_pool<echo_item> pool(pool_options_for(2, where::fallback));
  std::vector<mtp::id_t> ids(k_items);
  for (std::size_t i = 0; i < k_items; ++i) ids[i] = i;
  const std::span<const mtp::id_t> all(ids);
  double create_ns = 0, remove_ns = 0;
  std::size_t bad = 0, seen = 0;
  for (auto _ : state) {
    const auto t0 = clock_type::now();
    for (std::size_t at = 0; at < k_items; at += batch) {
      if (batch == 1) {
        pool.create(ids[at]);
      } else {
        for (const auto& r : pool.create_batch(all.subspan(at, std::min(batch, k_items - at)))) bad += r ? 0 : 1;
      }
    }
    const auto t1 = clock_type::now();
    seen = pool.stats().total_items();
    const auto t2 = clock_type::now();
    for (std::size_t at = 0; at < k_items; at += batch) {
      for (const auto& r : pool.remove_batch(all.subspan(at, std::min(batch, k_items - at)))) bad += r ? 0 : 1;
    }
    const auto t3 = clock_type::now();
    state.SetIterationTime(elapsed_ns(t0, t1) * 1e-9);
    create_ns += elapsed_ns(t0, t1);
    remove_ns += elapsed_ns(t2, t3);
  }
  if (bad != 0) return fail(state, std::to_string(bad) + " creates or removes failed");
  if (seen != k_items) return fail(state, "item count after creation: " + std::to_string(seen));
  if (pool.stats().total_items() != 0) return fail(state, "items left after removal");
  const double n = static_cast<double>(k_items) * static_cast<double>(state.iterations());
  state.counters["create_ns_per_item"] = create_ns / n;
  state.counters["remove_ns_per_item"] = remove_ns / n;
  state.counters["batch"] = static_cast<double>(batch);
  state.counters["items"] = static_cast<double>(k_items);
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
}

// The baseline: each creation is a closure on the mutex pool that inserts into the shared map.
void mutex_create(benchmark::State& state) {
  mutex_thread_pool pool(2);
  locked_objects<echo_item> objects;
  latch done;
  double create_ns = 0, remove_ns = 0;
  std::size_t seen = 0;
  for (auto _ : state) {
    const auto t0 = clock_type::now();
    done.reset(k_items);
    for (std::size_t i = 0; i < k_items; ++i) {
      pool.submit([&, i] {
        objects.create(i);
        done.arrive();
      });
    }
    done.wait();
    const auto t1 = clock_type::now();
    seen = objects.size();
    const auto t2 = clock_type::now();
    done.reset(k_items);
    for (std::size_t i = 0; i < k_items; ++i) {
      pool.submit([&, i] {
        objects.remove(i);
        done.arrive();
      });
    }
    done.wait();
    const auto t3 = clock_type::now();
    state.SetIterationTime(elapsed_ns(t0, t1) * 1e-9);
    create_ns += elapsed_ns(t0, t1);
    remove_ns += elapsed_ns(t2, t3);
  }
  if (seen != k_items) return fail(state, "object count after creation: " + std::to_string(seen));
  if (objects.size() != 0) return fail(state, "objects left after removal");
  const double n = static_cast<double>(k_items) * static_cast<double>(state.iterations());
  state.counters["create_ns_per_item"] = create_ns / n;
  state.counters["remove_ns_per_item"] = remove_ns / n;
  state.counters["items"] = static_cast<double>(k_items);
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
}

template <class Make>
void pool_lifetime(benchmark::State& state, Make make) {
  double construct_ns = 0, destroy_ns = 0;
  std::size_t workers = 0;
  for (auto _ : state) {
    const auto t0 = clock_type::now();
    auto pool = make();
    const auto t1 = clock_type::now();
    workers = pool.second;
    pool.first.reset();
    const auto t2 = clock_type::now();
    construct_ns += elapsed_ns(t0, t1);
    destroy_ns += elapsed_ns(t1, t2);
    state.SetIterationTime(elapsed_ns(t0, t2) * 1e-9);
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["construct_us"] = construct_ns / n / 1000.0;
  state.counters["destroy_us"] = destroy_ns / n / 1000.0;
  state.counters["total_us"] = (construct_ns + destroy_ns) / n / 1000.0;
  state.counters["workers"] = static_cast<double>(workers);
}

mtp::pool_options quiet_defaults() {
  mtp::pool_options o;
  o.on_diagnostic = [](const mtp::diagnostic&) {};
  return o;
}

void add(const std::string& name, std::int64_t iterations, auto fn) {
  repeat(benchmark::RegisterBenchmark(name.c_str(), fn)
             ->UseManualTime()
             ->Iterations(iterations)
             ->Unit(benchmark::kMillisecond));
}

}  // namespace

void register_create() {
  const bool quick = config().quick;
  const std::vector<std::size_t> batches =
      quick ? std::vector<std::size_t>{1000, 100000} : std::vector<std::size_t>{100, 1000, 10000, 100000};
  for (std::size_t b : batches) {
    add("create/mtp/batch:" + std::to_string(b), quick ? 2 : 5, [b](benchmark::State& s) { mtp_create(s, b); });
  }
  if (!quick) add("create/mtp/one_by_one", 1, [](benchmark::State& s) { mtp_create(s, 1); });
  add("create/mutex_pool/one_closure_each", quick ? 1 : 3, [](benchmark::State& s) { mutex_create(s); });

  const auto lifetime = [quick](const std::string& name, auto make) {
    repeat(benchmark::RegisterBenchmark(name.c_str(), [make](benchmark::State& s) { pool_lifetime(s, make); })
               ->UseManualTime()
               ->Iterations(quick ? 20 : 200)
               ->Unit(benchmark::kMicrosecond),
           3, 1);
  };
  lifetime("pool_lifetime/mtp/default", [] {
    auto p = std::make_unique<mtp::thread_pool<echo_item>>(quiet_defaults());
    const std::size_t w = p->worker_count();
    return std::pair{std::move(p), w};
  });
  lifetime("pool_lifetime/mtp/workers:1", [] {
    auto o = quiet_defaults();
    o.workers = 1;
    auto p = std::make_unique<mtp::thread_pool<echo_item>>(std::move(o));
    const std::size_t w = p->worker_count();
    return std::pair{std::move(p), w};
  });
  lifetime("pool_lifetime/mutex_pool/threads:2",
           [] { return std::pair{std::make_unique<mutex_thread_pool>(2), std::size_t{2}}; });
}

}  // namespace bench
