// SPDX-License-Identifier: MIT
// Shared helpers for the benchmark suite: configuration, calibrated work, percentiles,
// checking, CPU time and pinning.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <mtp/mtp.hpp>

namespace bench {

using clock_type = std::chrono::steady_clock;

/// Run-wide settings; --quick (see main.cpp) shrinks sizes, iterations and repetitions.
struct settings {
  bool quick = false;
  int repetitions = 5;
};
settings& config();

/// Workers of the pools in round_trip/, batch/, callers/ and churn/ (and threads of their
/// mutex-pool baselines): MTP_BENCH_WORKERS when set to a positive number, else 2.
std::size_t bench_workers();
/// Caller-thread counts for callers/: MTP_BENCH_CALLERS (a comma-separated list, e.g. "1,2")
/// when set, else `fallback`.
std::vector<std::size_t> bench_callers(const std::vector<std::size_t>& fallback);

/// Applies the suite's repetition policy: medians (and mean, stddev) only.
benchmark::internal::Benchmark* repeat(benchmark::internal::Benchmark* b, int full = 5, int quick = 2);

/// Marks the run as wrong: the benchmark shows the error and the process exits non-zero.
void fail(benchmark::State& state, const std::string& why);
int failures();

// ---- Calibrated work --------------------------------------------------------------------------

/// A dependent chain of multiply-adds: `iters` steps, not vectorisable, not removable.
std::uint64_t spin_work(std::uint64_t seed, std::uint64_t iters) noexcept;
/// Measures spin_work's speed once (call before any benchmark runs).
void calibrate_work();
/// spin_work steps in `us` microseconds, from the calibration.
std::uint64_t work_iters(double us);
double work_iters_per_us();

// ---- Time, CPU, percentiles ----------------------------------------------------------------

inline double elapsed_ns(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::nano>(b - a).count();
}
/// Sleeps about `us` microseconds (nanosleep: the kernel may add tens of microseconds).
void sleep_us(double us);
/// CPU time of the whole process (all threads), user + system, in seconds.
double process_cpu_seconds();
/// Resident set size of the process in MB (2^20 bytes), from /proc/self/statm.
double rss_mb();
/// Bytes held by malloc (every arena, and its mmapped chunks) in MB, from mallinfo2: unlike the
/// RSS, it falls when memory is freed and does not grow when freed memory is reused.
double heap_mb();

struct percentiles {
  double p50 = 0, p99 = 0, mean = 0;
};
/// Percentiles of `samples` (sorted in place).
percentiles summarise(std::vector<double>& samples);

// ---- CPUs and placement ----------------------------------------------------------------------

/// The CPUs this process may run on.
std::vector<unsigned> allowed_cpus();
/// Pins the calling thread to `cpu`; false when not possible.
bool pin_current_thread(unsigned cpu);
/// Restores the calling thread's CPU mask saved at construction.
class affinity_guard {
 public:
  affinity_guard();
  ~affinity_guard();
  affinity_guard(const affinity_guard&) = delete;
  affinity_guard& operator=(const affinity_guard&) = delete;

 private:
  std::vector<unsigned> saved_;
};

/// Placement kinds used by the suite: the pool default (MTP_AFFINITY or "cores"), explicit
/// "cores" (pinned, one per core) and "none" (unpinned).
enum class where { fallback, pinned, unpinned };
const char* to_string(where w);
/// Pool options for `workers` workers at `w`; diagnostics are kept quiet.
mtp::pool_options pool_options_for(std::size_t workers, where w,
                                   std::chrono::nanoseconds worker_spin = std::chrono::microseconds(50));
/// 1 when every worker of the pool is pinned.
template <class Pool>
double all_pinned(const Pool& pool) {
  for (const auto& w : pool.stats().workers) {
    if (!w.pinned) return 0.0;
  }
  return 1.0;
}

// ---- Registration (each file registers its own benchmarks) ---------------------------------

void register_round_trip();
void register_batch();
void register_create();
void register_break_even();
void register_idle();
void register_floors();
void register_callers();
void register_churn();
void register_caf();  // no-op when CAF was not found
void register_async();  // no-op when standalone Asio was not found
void register_timers();
bool have_caf();

}  // namespace bench
