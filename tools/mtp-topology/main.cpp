// SPDX-License-Identifier: MIT
// mtp-topology: prints the machine as mtp sees it (only the CPUs this process may use) and the
// worker-to-CPU plan an affinity spec would produce on it.
//
//   mtp-topology                              this machine, default spec (MTP_AFFINITY or cores)
//   mtp-topology --spec numa:scatter -w 6 --synthetic "pack:2 numa:2 core:8 pu:2"
//   mtp-topology --xml machine.xml --restrict 0-7 --spec pus --json
//   mtp-topology --config pool.json           plan a config file
//
// Exit status (also in --help): 0 = planned; 1 = the topology could not be loaded (this
// machine, --xml, or --synthetic: invalid or over mtp's size limits); 2 = usage error (unknown
// option, a malformed or missing value, an empty --synthetic/--xml/--restrict/--config);
// 3 = invalid spec, config file, --restrict list or worker count (over mtp::k_max_workers);
// 4 = internal error (e.g. out of memory).
#include <mtp/affinity/config.hpp>
#include <mtp/affinity/placement.hpp>
#include <mtp/affinity/spec.hpp>
#include <mtp/affinity/topology.hpp>
#include <mtp/version.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr int k_exit_topology = 1;
constexpr int k_exit_usage = 2;
constexpr int k_exit_invalid = 3;
constexpr int k_exit_internal = 4;

constexpr const char* k_exit_footer =
    "Exit status:\n"
    "  0  planned\n"
    "  1  the topology could not be loaded (this machine, --xml, or --synthetic: invalid, or\n"
    "     over 4096 hardware threads, 256 children per level or 32768 objects)\n"
    "  2  usage error: unknown option, malformed or missing value, empty --synthetic, --xml,\n"
    "     --restrict or --config\n"
    "  3  invalid spec, config file or --restrict list, or more than 4096 workers\n"
    "  4  internal error (e.g. out of memory)";

// The command line is wrong (exit status 2).
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct options {
  std::optional<std::string> spec;
  std::optional<std::string> workers;  // checked by workers_of: CLI11 would wrap "-1"
  std::optional<std::string> synthetic;
  std::optional<std::string> xml;
  std::optional<std::string> restrict_to;
  std::optional<std::string> config;
  bool json = false;
};

bool is_blank_text(const std::string& text) {
  return text.find_first_not_of(" \t\n\r\f\v") == std::string::npos;
}

// An option that was given must not be blank ("--synthetic ''" used to be ignored).
const std::string* non_empty(const std::optional<std::string>& value, const char* option,
                             const char* expected) {
  if (!value) return nullptr;
  if (is_blank_text(*value)) throw usage_error(std::string(option) + ": empty value (expected " + expected + ")");
  return &*value;
}

// -w/--workers: a non-negative whole number. Any number over mtp::k_max_workers (however
// large) is a worker-count error, not a usage error.
std::optional<std::size_t> workers_of(const std::optional<std::string>& text) {
  if (!text) return std::nullopt;
  const std::string& digits = *text;
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) {
    throw usage_error("--workers: '" + digits +
                      "' is not a whole number of workers (expected 0 for one per selected "
                      "core or CPU, up to " + std::to_string(mtp::k_max_workers) + ")");
  }
  const std::size_t first = std::min(digits.find_first_not_of('0'), digits.size());
  const std::string value = digits.substr(first);
  if (value.size() > 9 || (!value.empty() && std::stoull(value) > mtp::k_max_workers)) {
    throw mtp::affinity_error("too many workers: " + (value.empty() ? std::string("0") : value) +
                              " (a pool has at most " + std::to_string(mtp::k_max_workers) +
                              " workers, mtp::k_max_workers)");
  }
  return value.empty() ? 0 : static_cast<std::size_t>(std::stoull(value));
}

std::string human_size(std::uint64_t bytes) {
  constexpr std::array<const char*, 5> k_units = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < k_units.size()) {
    value /= 1024.0;
    ++unit;
  }
  std::ostringstream out;
  out.precision(value < 10.0 && unit > 0 ? 2 : 0);
  out << std::fixed << value << ' ' << k_units[unit];
  return out.str();
}

std::string cpus_text(const std::vector<unsigned>& cpus) {
  return (cpus.size() == 1 ? "CPU " : "CPUs ") + mtp::format_cpu_list(cpus);
}

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

nlohmann::json topology_json(const mtp::topology& topo) {
  nlohmann::json out;
  out["source"] = topo.source();
  out["this_system"] = topo.is_this_system();
  out["allowed_cpus"] = topo.allowed_cpus();
  out["allowed_cpu_list"] = mtp::format_cpu_list(topo.allowed_cpus());
  out["packages"] = nlohmann::json::array();
  for (const auto& p : topo.packages()) out["packages"].push_back({{"index", p.index}, {"cpus", p.cpus}});
  out["numa_nodes"] = nlohmann::json::array();
  for (const auto& n : topo.numa_nodes()) {
    out["numa_nodes"].push_back({{"index", n.index},
                                 {"os_index", n.os_index},
                                 {"memory_bytes", n.memory_bytes},
                                 {"cpus", n.cpus}});
  }
  out["caches"] = nlohmann::json::array();
  for (const auto& c : topo.caches()) {
    out["caches"].push_back(
        {{"level", c.level}, {"index", c.index}, {"size_bytes", c.size_bytes}, {"cpus", c.cpus}});
  }
  out["cores"] = nlohmann::json::array();
  for (const auto& c : topo.cores()) {
    out["cores"].push_back({{"index", c.index},
                            {"package", c.package},
                            {"numa_node", c.numa_node},
                            {"l3", c.l3},
                            {"l2", c.l2},
                            {"cpus", c.cpus}});
  }
  return out;
}

nlohmann::json plan_json(const mtp::placement& plan) {
  nlohmann::json out;
  out["spec"] = plan.spec;
  out["bind_memory"] = plan.bind_memory;
  out["notes"] = plan.notes;
  out["caller_cpus"] = plan.caller_cpus;
  out["workers"] = nlohmann::json::array();
  for (std::size_t i = 0; i < plan.workers.size(); ++i) {
    const auto& w = plan.workers[i];
    out["workers"].push_back({{"worker", i},
                              {"cpus", w.cpus},
                              {"core", w.core},
                              {"numa_node", w.numa_node},
                              {"package", w.package}});
  }
  return out;
}

void print_topology(const mtp::topology& topo) {
  std::cout << "Topology: " << topo.source() << "\n";
  std::cout << "  allowed: " << cpus_text(topo.allowed_cpus()) << " ("
            << plural(topo.allowed_cpus().size(), "hardware thread", "hardware threads") << ", "
            << plural(topo.cores().size(), "core", "cores") << ", "
            << plural(topo.packages().size(), "package", "packages") << ", "
            << plural(topo.numa_nodes().size(), "NUMA node", "NUMA nodes") << ")\n";
  for (const auto& p : topo.packages()) {
    std::cout << "  package " << p.index << ": " << cpus_text(p.cpus) << "\n";
  }
  for (const auto& n : topo.numa_nodes()) {
    std::cout << "  NUMA node " << n.index << " (OS node " << n.os_index;
    if (n.memory_bytes != 0) std::cout << ", " << human_size(n.memory_bytes);
    std::cout << "): " << cpus_text(n.cpus) << "\n";
  }
  std::map<unsigned, std::map<std::uint64_t, std::size_t>> caches;  // level -> size -> count
  for (const auto& c : topo.caches()) ++caches[c.level][c.size_bytes];
  if (!caches.empty()) {
    std::cout << "  caches:";
    const char* sep = " ";
    for (const auto& [level, sizes] : caches) {
      for (const auto& [size, count] : sizes) {
        std::cout << sep << "L" << level << " " << count << " x " << human_size(size);
        sep = ", ";
      }
    }
    std::cout << "\n";
  }
  for (const auto& c : topo.cores()) {
    std::cout << "  core " << c.index << ": " << cpus_text(c.cpus) << " (package " << c.package
              << ", NUMA node " << c.numa_node;
    if (c.l3 >= 0) std::cout << ", L3 #" << c.l3;
    if (c.l2 >= 0) std::cout << ", L2 #" << c.l2;
    std::cout << ")\n";
  }
}

void print_plan(const mtp::placement& plan) {
  std::cout << "Plan for '" << plan.spec << "': "
            << plural(plan.workers.size(), "worker", "workers")
            << (plan.bind_memory ? ", memory bound to each worker's NUMA node" : "") << "\n";
  for (std::size_t i = 0; i < plan.workers.size(); ++i) {
    const auto& w = plan.workers[i];
    std::cout << "  worker " << i << " -> ";
    if (w.cpus.empty()) {
      std::cout << "not pinned\n";
      continue;
    }
    std::cout << cpus_text(w.cpus);
    if (w.core >= 0) {
      std::cout << " (core " << w.core << ", NUMA node " << w.numa_node << ", package "
                << w.package << ")";
    }
    std::cout << "\n";
  }
  if (!plan.caller_cpus.empty()) {
    std::cout << "  callers -> " << cpus_text(plan.caller_cpus) << " (reserved: no worker runs there)\n";
  }
  if (!plan.notes.empty()) {
    std::cout << "Notes:\n";
    for (const auto& note : plan.notes) std::cout << "  - " << note << "\n";
  }
}

int run(const options& opt) {
  const std::string* synthetic =
      non_empty(opt.synthetic, "--synthetic", "an hwloc synthetic description such as \"pack:2 core:4 pu:2\"");
  const std::string* xml = non_empty(opt.xml, "--xml", "an hwloc XML file");
  const std::string* restrict_to = non_empty(opt.restrict_to, "--restrict", "a CPU list such as 0-7");
  const std::string* config_file = non_empty(opt.config, "-c/--config", "a JSON config file");
  const std::optional<std::size_t> workers_option = workers_of(opt.workers);

  mtp::placement_config config;
  if (config_file != nullptr) config = mtp::read_placement_config(*config_file);
  const std::string spec = opt.spec.value_or(config.affinity.value_or(mtp::default_affinity_spec()));
  const std::size_t workers = workers_option.value_or(config.workers);

  std::optional<mtp::topology> topo;
  std::string unavailable;
  try {
    if (synthetic != nullptr) {
      topo.emplace(mtp::topology::from_synthetic(*synthetic));
    } else if (xml != nullptr) {
      topo.emplace(mtp::topology::from_xml(*xml));
    } else {
      topo.emplace(mtp::topology::load());
    }
  } catch (const mtp::topology_error& e) {
    if (synthetic != nullptr || xml != nullptr || restrict_to != nullptr) {
      std::cerr << "mtp-topology: " << e.what() << "\n";
      return k_exit_topology;
    }
    unavailable = e.what();  // this machine: still show the fallback plan
  }
  if (topo && restrict_to != nullptr) topo->restrict_to(*restrict_to);

  mtp::placement plan = topo ? mtp::plan_placement(*topo, spec, workers)
                             : mtp::plan_placement(spec, workers);
  plan.bind_memory = config.bind_memory;

  if (opt.json) {
    nlohmann::json out;
    out["topology"] = topo ? topology_json(*topo) : nlohmann::json{{"unavailable", unavailable}};
    out["plan"] = plan_json(plan);
    std::cout << out.dump(2) << "\n";
  } else {
    if (topo) {
      print_topology(*topo);
    } else {
      std::cout << "Topology: unavailable (" << unavailable << ")\n";
    }
    print_plan(plan);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Shows the machine as mtp sees it (only the CPUs this process may use) and the "
               "worker-to-CPU plan an affinity spec produces on it."};
  options opt;
  app.add_option("-s,--spec", opt.spec,
                 "Affinity spec: cores, pus, numa:compact, numa:scatter, none, or a CPU list such "
                 "as 0-3,8 (default: $MTP_AFFINITY, else cores)");
  app.add_option("-w,--workers", opt.workers, "Number of workers (0 = one per selected core/CPU)");
  auto* synthetic = app.add_option("--synthetic", opt.synthetic,
                                   "Plan on an hwloc synthetic machine, e.g. \"pack:2 numa:2 core:8 pu:2\"");
  auto* xml = app.add_option("--xml", opt.xml, "Plan on an hwloc XML topology (lstopo --of xml)");
  synthetic->excludes(xml);
  app.add_option("--restrict", opt.restrict_to,
                 "Only treat these CPUs as allowed (a CPU list such as 0-7), as taskset would");
  app.add_option("-c,--config", opt.config,
                 "Plan a JSON config file ({\"affinity\": ..., \"workers\": ..., \"bind_memory\": ...}); "
                 "--spec and --workers override it");
  app.add_flag("--json", opt.json, "Print JSON instead of text");
  app.set_version_flag("--version", "mtp-topology " MTP_VERSION_STRING);
  app.footer(k_exit_footer);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);  // prints help, or the error and "Run with --help"
    return status == 0 ? 0 : k_exit_usage;
  }

  try {
    return run(opt);
  } catch (const usage_error& e) {
    std::cerr << "mtp-topology: " << e.what() << "\nRun with --help for more information.\n";
    return k_exit_usage;
  } catch (const mtp::affinity_error& e) {
    std::cerr << "mtp-topology: " << e.what() << "\n";
    return k_exit_invalid;
  } catch (const mtp::topology_error& e) {
    std::cerr << "mtp-topology: " << e.what() << "\n";
    return k_exit_topology;
  } catch (const std::exception& e) {
    std::cerr << "mtp-topology: internal error: " << e.what() << "\n";
    return k_exit_internal;
  }
}
