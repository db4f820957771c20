// SPDX-License-Identifier: MIT
// Batch throughput: one caller sends batches of trivial requests; request i goes to item
// (i mod items). Reports ns per message (counter) and messages per second (items_per_second).
// The pools have MTP_BENCH_WORKERS workers (default 2).
//   batch/forms/...  the two blocking forms in the same iterations, one after the other:
//                    send_batch(range) (returns a new vector) and send_batch(span, span) (into
//                    a reused span); counters per form and their ratio.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common.hpp"
#include "items.hpp"
#include "mutex_pool.hpp"

namespace bench {
namespace {

enum class form { into_span, vector, submit };

const char* to_string(form f) {
  switch (f) {
    case form::into_span: return "span";
    case form::vector: return "vector";
    case form::submit: return "submit";
  }
  return "?";
}

void finish(benchmark::State& state, double ns, std::size_t batch, std::size_t items, std::size_t workers) {
  const double msgs = static_cast<double>(batch) * static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(msgs));
  state.counters["ns_per_msg"] = ns / msgs;
  state.counters["batch"] = static_cast<double>(batch);
  state.counters["items"] = static_cast<double>(items);
  state.counters["workers"] = static_cast<double>(workers);
}

void mtp_batch(benchmark::State& state, std::size_t batch, std::size_t items, form f) {
  mtp::thread_pool<echo_item> pool(pool_options_for(bench_workers(), where::fallback));
  std::vector<mtp::id_t> ids(items);
  for (std::size_t i = 0; i < items; ++i) ids[i] = i;
  for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(ids))) {
    if (!r) return fail(state, "create failed");
  }
  std::vector<ping> reqs(batch);
  for (std::size_t i = 0; i < batch; ++i) reqs[i] = ping{i % items, i};
  std::vector<mtp::result<std::uint64_t>> out(batch);
  std::vector<mtp::result<std::uint64_t>> last;

  const auto t0 = clock_type::now();
  for (auto _ : state) {
    switch (f) {
      case form::into_span:
        pool.send_batch(std::span<const ping>(reqs), std::span<mtp::result<std::uint64_t>>(out));
        break;
      case form::vector:
        last = pool.send_batch(reqs);
        break;
      case form::submit: {
        auto handle = pool.submit_batch(reqs);  // copies the requests: the handle owns them
        last = handle.take();
        break;
      }
    }
  }
  const double ns = elapsed_ns(t0, clock_type::now());

  const auto& got = f == form::into_span ? out : last;
  for (std::size_t i = 0; i < batch; ++i) {
    if (!got[i] || got[i].value() != reqs[i].x + reqs[i].id) return fail(state, "wrong reply at " + std::to_string(i));
  }
  std::vector<calls_query> q(items);
  for (std::size_t i = 0; i < items; ++i) q[i] = calls_query{i};
  std::uint64_t total = 0;
  for (const auto& r : pool.send_batch(q)) total += r.value();
  if (total != batch * static_cast<std::uint64_t>(state.iterations())) return fail(state, "items missed requests");
  finish(state, ns, batch, items, pool.worker_count());
}

void mutex_batch(benchmark::State& state, std::size_t batch, std::size_t items) {
  mutex_thread_pool pool(bench_workers());
  locked_objects<echo_item> objects;
  for (std::size_t i = 0; i < items; ++i) objects.create(i);
  std::vector<std::uint64_t> out(batch);
  latch done;
  const auto t0 = clock_type::now();
  for (auto _ : state) {
    done.reset(batch);
    for (std::size_t i = 0; i < batch; ++i) {
      pool.submit([&, i] {
        const std::uint64_t id = i % items;
        out[i] = objects.with(id, [&](echo_item& item) { return item.handle(ping{id, i}); });
        done.arrive();
      });
    }
    done.wait();
  }
  const double ns = elapsed_ns(t0, clock_type::now());
  for (std::size_t i = 0; i < batch; ++i) {
    if (out[i] != i + i % items) return fail(state, "wrong reply");
  }
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < items; ++i) total += objects.with(i, [](echo_item& item) { return item.calls(); });
  if (total != batch * static_cast<std::uint64_t>(state.iterations())) return fail(state, "objects missed requests");
  finish(state, ns, batch, items, bench_workers());
}

// Both blocking forms on one pool, alternating within every iteration (the order swaps each
// iteration), so that their ratio comes from the same moments.
void mtp_batch_forms(benchmark::State& state, std::size_t batch, std::size_t items) {
  mtp::thread_pool<echo_item> pool(pool_options_for(bench_workers(), where::fallback));
  std::vector<mtp::id_t> ids(items);
  for (std::size_t i = 0; i < items; ++i) ids[i] = i;
  for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(ids))) {
    if (!r) return fail(state, "create failed");
  }
  std::vector<ping> reqs(batch);
  for (std::size_t i = 0; i < batch; ++i) reqs[i] = ping{i % items, i};
  std::vector<mtp::result<std::uint64_t>> out(batch);
  std::vector<mtp::result<std::uint64_t>> last;
  double span_ns = 0, vector_ns = 0;
  std::size_t wrong = 0;
  bool span_first = true;
  const auto check = [&](const std::vector<mtp::result<std::uint64_t>>& got) {
    for (std::size_t i = 0; i < batch; i += 97) {
      wrong += (!got[i] || got[i].value() != reqs[i].x + reqs[i].id) ? 1 : 0;
    }
  };
  for (auto _ : state) {
    for (int pass = 0; pass < 2; ++pass) {
      const bool span_now = (pass == 0) == span_first;
      const auto t0 = clock_type::now();
      if (span_now) {
        pool.send_batch(std::span<const ping>(reqs), std::span<mtp::result<std::uint64_t>>(out));
      } else {
        last = pool.send_batch(reqs);
      }
      const double ns = elapsed_ns(t0, clock_type::now());
      (span_now ? span_ns : vector_ns) += ns;
    }
    span_first = !span_first;
    check(out);
    check(last);
  }
  if (wrong != 0) return fail(state, std::to_string(wrong) + " wrong replies");
  std::vector<calls_query> q(items);
  for (std::size_t i = 0; i < items; ++i) q[i] = calls_query{i};
  std::uint64_t total = 0;
  for (const auto& r : pool.send_batch(q)) total += r.value();
  if (total != 2 * batch * static_cast<std::uint64_t>(state.iterations())) return fail(state, "items missed requests");
  const double msgs = static_cast<double>(batch) * static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(2 * msgs));
  state.counters["span_ns_per_msg"] = span_ns / msgs;
  state.counters["vector_ns_per_msg"] = vector_ns / msgs;
  state.counters["vector_over_span"] = vector_ns / span_ns;
  state.counters["batch"] = static_cast<double>(batch);
  state.counters["items"] = static_cast<double>(items);
  state.counters["workers"] = static_cast<double>(pool.worker_count());
}

void add(const std::string& name, auto fn) {
  repeat(benchmark::RegisterBenchmark(name.c_str(), fn)
             ->UseRealTime()
             ->MinTime(config().quick ? 0.02 : 0.1)
             ->Unit(benchmark::kMicrosecond),
         5, 2);
}

}  // namespace

void register_batch() {
  const bool quick = config().quick;
  const std::vector<std::size_t> batches =
      quick ? std::vector<std::size_t>{1, 100, 10000} : std::vector<std::size_t>{1, 10, 100, 1000, 10000, 100000};
  const std::vector<std::size_t> item_counts =
      quick ? std::vector<std::size_t>{1000} : std::vector<std::size_t>{1, 1000, 100000};
  for (std::size_t items : item_counts) {
    for (std::size_t b : batches) {
      add("batch/mtp/batch:" + std::to_string(b) + "/items:" + std::to_string(items),
          [b, items](benchmark::State& s) { mtp_batch(s, b, items, form::into_span); });
    }
  }
  for (form f : {form::vector, form::submit}) {
    add(std::string("batch/mtp_") + to_string(f) + "/batch:10000/items:1000",
        [f](benchmark::State& s) { mtp_batch(s, 10000, 1000, f); });
  }
  add("batch/mutex_pool/batch:10000/items:1000", [](benchmark::State& s) { mutex_batch(s, 10000, 1000); });
  repeat(benchmark::RegisterBenchmark("batch/forms/batch:10000/items:1000",
                                      [](benchmark::State& s) { mtp_batch_forms(s, 10000, 1000); })
             ->UseRealTime()
             ->MinTime(quick ? 0.05 : 0.2)
             ->Unit(benchmark::kMicrosecond),
         5, 2);
}

}  // namespace bench
