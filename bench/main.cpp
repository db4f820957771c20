// SPDX-License-Identifier: MIT
// mtp_bench: the whole suite in one binary, so that every ratio comes from one run.
//   mtp_bench [--quick] [Google Benchmark flags...]
// --quick: fewer sizes, iterations and repetitions (the suite then takes well under a minute).
// Exits non-zero when any benchmark produced a wrong result.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common.hpp"

namespace {
std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown";
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      bench::config().quick = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;

  bench::calibrate_work();
  benchmark::AddCustomContext("mtp_quick", bench::config().quick ? "1" : "0");
  benchmark::AddCustomContext("mtp_cpu_model", cpu_model());
  benchmark::AddCustomContext("mtp_allowed_cpus", std::to_string(bench::allowed_cpus().size()));
  benchmark::AddCustomContext("mtp_work_iters_per_us", std::to_string(bench::work_iters_per_us()));
  benchmark::AddCustomContext("mtp_caf", bench::have_caf() ? "1" : "0");
#ifdef MTP_BENCH_HAVE_ASIO
  benchmark::AddCustomContext("mtp_asio", "1");
#else
  benchmark::AddCustomContext("mtp_asio", "0");
#endif
  benchmark::AddCustomContext("mtp_compiler", __VERSION__);

  // The churn first: its RSS figures mean most in a process that has not yet touched and freed
  // memory (freed pages are reused without growing the RSS).
  bench::register_churn();
  bench::register_floors();
  bench::register_round_trip();
  bench::register_batch();
  bench::register_create();
  bench::register_break_even();
  bench::register_idle();
  bench::register_callers();
  bench::register_async();
  bench::register_timers();
  bench::register_caf();

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (bench::failures() != 0) {
    std::fprintf(stderr, "mtp_bench: %d benchmark(s) produced wrong results\n", bench::failures());
    return 1;
  }
  return 0;
}
