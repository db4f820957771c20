// SPDX-License-Identifier: MIT
#include "common.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <time.h>

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace bench {

settings& config() {
  static settings s;
  return s;
}

std::size_t bench_workers() {
  const char* env = std::getenv("MTP_BENCH_WORKERS");
  if (env == nullptr) return 2;
  const long n = std::strtol(env, nullptr, 10);
  return n > 0 ? static_cast<std::size_t>(n) : 2;
}

std::vector<std::size_t> bench_callers(const std::vector<std::size_t>& fallback) {
  const char* env = std::getenv("MTP_BENCH_CALLERS");
  if (env == nullptr || *env == '\0') return fallback;
  std::vector<std::size_t> out;
  std::stringstream in(env);
  std::string part;
  while (std::getline(in, part, ',')) {
    const long n = std::strtol(part.c_str(), nullptr, 10);
    if (n > 0) out.push_back(static_cast<std::size_t>(n));
  }
  return out.empty() ? fallback : out;
}

benchmark::internal::Benchmark* repeat(benchmark::internal::Benchmark* b, int full, int quick) {
  return b->Repetitions(config().quick ? quick : full)->ReportAggregatesOnly(true);
}

namespace {
std::atomic<int> g_failures{0};
double g_iters_per_us = 0;
}  // namespace

void fail(benchmark::State& state, const std::string& why) {
  g_failures.fetch_add(1, std::memory_order_relaxed);
  std::fprintf(stderr, "mtp_bench: WRONG RESULT (thread %d): %s\n", state.thread_index(), why.c_str());
  state.SkipWithError(why.c_str());
}
int failures() { return g_failures.load(std::memory_order_relaxed); }

std::uint64_t spin_work(std::uint64_t seed, std::uint64_t iters) noexcept {
  std::uint64_t x = seed | 1u;
  for (std::uint64_t i = 0; i < iters; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    benchmark::DoNotOptimize(x);  // keeps the chain a chain: no closed form, no vectorising
  }
  return x;
}

void calibrate_work() {
  // Several 20 ms rounds; keep the fastest (the least disturbed) rate.
  double best = 0;
  std::uint64_t iters = 1u << 16;
  for (int round = 0; round < 8; ++round) {
    const auto t0 = clock_type::now();
    benchmark::DoNotOptimize(spin_work(static_cast<std::uint64_t>(round), iters));
    const double us = elapsed_ns(t0, clock_type::now()) / 1000.0;
    if (us < 20000.0) {
      iters *= 2;
      --round;
      continue;
    }
    best = std::max(best, static_cast<double>(iters) / us);
  }
  g_iters_per_us = best;
}

std::uint64_t work_iters(double us) {
  return static_cast<std::uint64_t>(std::llround(std::max(1.0, us * g_iters_per_us)));
}
double work_iters_per_us() { return g_iters_per_us; }

void sleep_us(double us) {
  timespec ts{};
  const auto ns = static_cast<long>(us * 1000.0);
  ts.tv_sec = ns / 1000000000L;
  ts.tv_nsec = ns % 1000000000L;
  while (nanosleep(&ts, &ts) != 0) {
  }
}

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

double rss_mb() {
  std::ifstream in("/proc/self/statm");
  long size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

double heap_mb() {
  const struct mallinfo2 mi = mallinfo2();
  return static_cast<double>(mi.uordblks + mi.hblkhd) / (1024.0 * 1024.0);
}

percentiles summarise(std::vector<double>& samples) {
  percentiles p;
  if (samples.empty()) return p;
  std::sort(samples.begin(), samples.end());
  const auto at = [&](double q) {
    const auto i = static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1) + 0.5);
    return samples[std::min(i, samples.size() - 1)];
  };
  p.p50 = at(0.50);
  p.p99 = at(0.99);
  double sum = 0;
  for (double s : samples) sum += s;
  p.mean = sum / static_cast<double>(samples.size());
  return p;
}

std::vector<unsigned> allowed_cpus() { return mtp::allowed_cpus(); }

bool pin_current_thread(unsigned cpu) {
  mtp::worker_placement where;
  where.cpus = {cpu};
  return mtp::bind_current_thread(where).pinned;
}

affinity_guard::affinity_guard() : saved_(mtp::allowed_cpus()) {}
affinity_guard::~affinity_guard() {
  if (saved_.empty()) return;
  mtp::worker_placement where;
  where.cpus = saved_;
  (void)mtp::bind_current_thread(where);
}

const char* to_string(where w) {
  switch (w) {
    case where::fallback: return "default";
    case where::pinned: return "pinned";
    case where::unpinned: return "unpinned";
  }
  return "?";
}

mtp::pool_options pool_options_for(std::size_t workers, where w, std::chrono::nanoseconds worker_spin) {
  mtp::pool_options o;
  o.workers = workers;
  o.worker_spin = worker_spin;
  if (w == where::pinned) o.placement = mtp::plan_placement("cores", workers);
  if (w == where::unpinned) o.placement = mtp::plan_placement("none", workers);
  o.on_diagnostic = [](const mtp::diagnostic&) {};  // "workers share CPUs" etc.: not news here
  return o;
}

#ifndef MTP_BENCH_HAVE_ASIO
void register_async() {}
#endif

#ifndef MTP_BENCH_HAVE_CAF
void register_caf() {}
bool have_caf() { return false; }
#endif

}  // namespace bench
