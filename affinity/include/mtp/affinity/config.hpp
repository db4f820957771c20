// SPDX-License-Identifier: MIT
// Placement config files: the affinity settings of a pool kept outside the code.
//
// Contract: a config is a JSON object with three optional keys,
//
//   { "affinity": "numa:scatter", "workers": 8, "bind_memory": true }
//
// "affinity" is an affinity spec (see spec.hpp); when absent the default applies (MTP_AFFINITY,
// else "cores"), exactly as for a pool given no placement. "workers" is a non-negative integer
// (0 or absent = one per selected core or CPU). "bind_memory" is a boolean (default false).
// "workers" may not exceed k_max_workers. Unknown or duplicate keys, wrong types, malformed
// JSON, and files that cannot be read (missing, a directory, over 1 MiB) throw affinity_error
// naming the file, the key and why; a bad "affinity" value throws the spec's affinity_error.
#pragma once

#include <mtp/affinity/placement.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mtp {

/// The settings read from a config file, not yet planned.
struct placement_config {
  std::optional<std::string> affinity;  ///< Spec text; nullopt = the default.
  std::size_t workers = 0;              ///< 0 = one per selected core or CPU.
  bool bind_memory = false;
};

/// Parses config JSON text. `origin` names the source in error messages.
[[nodiscard]] placement_config parse_placement_config(std::string_view json_text,
                                                      std::string_view origin = "config");

/// Reads and parses a config file. A std::filesystem::path converts to the string it takes
/// (taking a string keeps the large `<filesystem>` header out of `<mtp/mtp.hpp>`).
[[nodiscard]] placement_config read_placement_config(const std::string& path);

/// Plans a config on the running machine: plan_placement(affinity, workers) or, without
/// "affinity", default_placement(workers); bind_memory is copied into the plan.
[[nodiscard]] placement make_placement(const placement_config& config);

/// read_placement_config + make_placement: the placement to hand to a pool.
[[nodiscard]] placement load_placement_config(const std::string& path);

}  // namespace mtp
