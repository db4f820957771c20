// SPDX-License-Identifier: MIT
#include "sweep.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <optional>
#include <string>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace bench {

namespace {

/// A persistent helper thread for the no-queue ceiling: it sleeps in atomic::wait between
/// batches and runs the task it is handed.
class helper_thread {
 public:
  /// `cpu` >= 0: the helper pins itself there.
  explicit helper_thread(int cpu) : thread_([this, cpu] {
    if (cpu >= 0) (void)pin_current_thread(static_cast<unsigned>(cpu));
    loop();
  }) {}
  ~helper_thread() {
    stop_ = true;
    gen_.fetch_add(1, std::memory_order_release);
    gen_.notify_one();
    thread_.join();
  }
  helper_thread(const helper_thread&) = delete;
  helper_thread& operator=(const helper_thread&) = delete;

  void start(std::function<void()> task) {
    task_ = std::move(task);
    done_.store(false, std::memory_order_relaxed);
    gen_.fetch_add(1, std::memory_order_release);
    gen_.notify_one();
  }
  void wait() {
    for (unsigned polls = 1; !done_.load(std::memory_order_acquire); ++polls) {
#if defined(__x86_64__) || defined(__i386__)
      _mm_pause();
#endif
      if (polls % 64 == 0) std::this_thread::yield();
    }
  }

 private:
  void loop() {
    std::uint32_t seen = 0;
    for (;;) {
      gen_.wait(seen, std::memory_order_acquire);
      seen = gen_.load(std::memory_order_acquire);
      if (stop_) return;
      task_();
      done_.store(true, std::memory_order_release);
    }
  }

  std::function<void()> task_;
  bool stop_ = false;
  alignas(64) std::atomic<std::uint32_t> gen_{0};
  alignas(64) std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace

double sweep_total_us() { return config().quick ? 3000.0 : 10000.0; }

std::vector<double> sweep_work_sizes() {
  if (config().quick) return {0.1, 1, 10, 100};
  return {0.1, 0.3, 1, 3, 10, 100, 1000};
}

std::int64_t sweep_iterations() { return config().quick ? 2 : 6; }

sweep_case make_sweep_case(double work_us, double total_us) {
  sweep_case c;
  c.work_us = work_us;
  const auto n = static_cast<std::size_t>(std::max(4.0, std::round(total_us / work_us)));
  c.items = std::min<std::size_t>(n, 1000);
  const std::uint64_t iters = work_iters(work_us);
  c.reqs.resize(n);
  c.expect.resize(n);
  c.item_sums.assign(c.items, 0);
  std::vector<work_item> items;
  items.reserve(c.items);
  for (std::size_t i = 0; i < c.items; ++i) items.emplace_back(i);
  for (std::size_t i = 0; i < n; ++i) {
    c.reqs[i] = work{i % c.items, 0x1234567ull * (i + 1), iters};
    c.expect[i] = items[i % c.items].handle(c.reqs[i]);
  }
  for (std::size_t i = 0; i < c.items; ++i) c.item_sums[i] = items[i].sum();
  return c;
}

void run_sweep(benchmark::State& state, const sweep_case& c, const sweep_runner& runner) {
  const std::size_t n = c.reqs.size();
  // The ceiling's items get a cache line each, so its two threads never share one by accident
  // (the pool's items live apart too: each worker allocates its own).
  struct alignas(64) padded_item {
    explicit padded_item(mtp::id_t id) : item(id) {}
    work_item item;
  };
  std::vector<work_item> seq_items;
  std::vector<padded_item> ceil_items;
  for (std::size_t i = 0; i < c.items; ++i) {
    seq_items.emplace_back(i);
    ceil_items.emplace_back(i);
  }
  std::vector<std::uint64_t> out_seq(n), out_ceil(n), out(n);
  // The ceiling pins the caller and the helper to different CPUs for its run: left to itself
  // the kernel tends to wake the helper on the caller's CPU, and the ceiling would measure one.
  const std::vector<unsigned> cpus = allowed_cpus();
  const bool pin = cpus.size() >= 2;
  helper_thread helper(pin ? static_cast<int>(cpus.back()) : -1);
  double t_seq = 0, t_ceil = 0, t_run = 0;
  std::size_t wrong = 0;

  for (auto _ : state) {
    // Sequential.
    auto t0 = clock_type::now();
    for (std::size_t i = 0; i < n; ++i) out_seq[i] = seq_items[c.reqs[i].id].handle(c.reqs[i]);
    auto t1 = clock_type::now();
    t_seq += elapsed_ns(t0, t1);

    // Ceiling: odd items on the helper, even items here.
    std::optional<affinity_guard> caller_pin;
    if (pin) {
      caller_pin.emplace();
      (void)pin_current_thread(cpus.front());
    }
    t0 = clock_type::now();
    helper.start([&] {
      for (std::size_t i = 0; i < n; ++i) {
        if (c.reqs[i].id % 2 == 1) out_ceil[i] = ceil_items[c.reqs[i].id].item.handle(c.reqs[i]);
      }
    });
    for (std::size_t i = 0; i < n; ++i) {
      if (c.reqs[i].id % 2 == 0) out_ceil[i] = ceil_items[c.reqs[i].id].item.handle(c.reqs[i]);
    }
    helper.wait();
    t1 = clock_type::now();
    t_ceil += elapsed_ns(t0, t1);
    caller_pin.reset();

    // The implementation.
    if (runner.before) runner.before();
    t0 = clock_type::now();
    runner.run(c.reqs, out);
    t1 = clock_type::now();
    t_run += elapsed_ns(t0, t1);
    state.SetIterationTime(elapsed_ns(t0, t1) * 1e-9);

    for (std::size_t i = 0; i < n; ++i) {
      wrong += (out[i] != c.expect[i]) + (out_seq[i] != c.expect[i]) + (out_ceil[i] != c.expect[i]);
    }
  }
  if (wrong != 0) return fail(state, std::to_string(wrong) + " wrong replies");
  const auto iters = static_cast<std::uint64_t>(state.iterations());
  const std::vector<std::uint64_t> sums = runner.sums();
  for (std::size_t i = 0; i < c.items; ++i) {
    const std::uint64_t want = c.item_sums[i] * iters;
    if (sums.at(i) != want || seq_items[i].sum() != want || ceil_items[i].item.sum() != want) {
      return fail(state, "item state differs from the sequential run at item " + std::to_string(i));
    }
  }
  const double speedup = t_seq / t_run;
  const double ceiling = t_seq / t_ceil;
  state.counters["work_us"] = c.work_us;
  state.counters["requests"] = static_cast<double>(n);
  state.counters["speedup"] = speedup;
  state.counters["ceiling"] = ceiling;
  state.counters["vs_ceiling"] = speedup / ceiling;
  state.counters["ns_per_msg_seq"] = t_seq / static_cast<double>(n * iters);
  state.counters["ns_per_msg"] = t_run / static_cast<double>(n * iters);
}

}  // namespace bench
