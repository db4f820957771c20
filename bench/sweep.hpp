// SPDX-License-Identifier: MIT
// The break-even sweep harness: every iteration runs the same batch of calibrated-work requests
// three ways, one after another, so that their ratios come from the same moments:
//   sequential  the calls made one after another on the calling thread,
//   ceiling     the calling thread and one helper std::thread splitting the calls by item (no
//               queue at all: the best two threads can do; the two are pinned to different
//               CPUs for this run),
//   the runner  the implementation under test.
// The benchmark's time is the runner's; counters hold the speedups.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "common.hpp"
#include "items.hpp"

namespace bench {

/// One batch of the sweep: `reqs` over `items` items, each request `work_us` of work.
struct sweep_case {
  double work_us = 0;
  std::size_t items = 0;
  std::vector<work> reqs;
  std::vector<std::uint64_t> expect;     // the reply to each request
  std::vector<std::uint64_t> item_sums;  // each item's sum of replies over one batch
};

/// Builds the batch for `work_us`: about `total_us` of work in all (at least 4 requests).
sweep_case make_sweep_case(double work_us, double total_us);

struct sweep_runner {
  /// Runs before each timed batch (untimed): a wake-up or a sleep.
  std::function<void()> before;
  /// Runs the batch; writes reply i into out[i].
  std::function<void(std::span<const work>, std::span<std::uint64_t>)> run;
  /// Each item's running sum afterwards (index = id), for the check.
  std::function<std::vector<std::uint64_t>()> sums;
};

/// Runs the sweep loop, checks everything, sets the counters.
void run_sweep(benchmark::State& state, const sweep_case& c, const sweep_runner& runner);

/// Total work per batch.
double sweep_total_us();
/// The work sizes swept.
std::vector<double> sweep_work_sizes();
/// Iterations per repetition.
std::int64_t sweep_iterations();

}  // namespace bench
