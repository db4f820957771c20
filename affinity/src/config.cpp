// SPDX-License-Identifier: MIT
// Placement config files (JSON, read with nlohmann-json).
#include "internal.hpp"

#include <mtp/affinity/config.hpp>
#include <mtp/affinity/spec.hpp>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <system_error>
#include <vector>

namespace mtp {

namespace {

// A config is a few lines; anything far bigger (a device, a log file given by mistake) is
// rejected before it is read into memory whole.
constexpr std::size_t k_max_config_bytes = 1 << 20;

constexpr std::string_view k_keys = "\"affinity\", \"workers\", \"bind_memory\"";

[[noreturn]] void config_error(std::string_view origin, std::string_view why) {
  throw affinity_error(std::string(origin) + ": " + std::string(why));
}

}  // namespace

placement_config parse_placement_config(std::string_view json_text, std::string_view origin) {
  // The keys seen so far in each open object, innermost last: a key given twice is an error
  // (nlohmann-json would silently keep the last value).
  std::vector<std::set<std::string>> open_objects;
  const nlohmann::json::parser_callback_t reject_duplicates =
      [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using event_t = nlohmann::json::parse_event_t;
        if (event == event_t::object_start) {
          open_objects.emplace_back();
        } else if (event == event_t::object_end) {
          if (!open_objects.empty()) open_objects.pop_back();
        } else if (event == event_t::key && !open_objects.empty()) {
          const auto& name = parsed.get_ref<const std::string&>();
          if (!open_objects.back().insert(name).second) {
            config_error(origin, "duplicate key " + impl::quote(name) + " (each key may appear once)");
          }
        }
        return true;
      };
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json_text.begin(), json_text.end(), reject_duplicates);
  } catch (const nlohmann::json::parse_error& e) {
    config_error(origin, std::string("malformed JSON: ") + e.what());
  }
  if (!doc.is_object()) {
    config_error(origin, "expected a JSON object such as {\"affinity\": \"cores\", \"workers\": 4}");
  }
  placement_config config;
  for (const auto& [name, value] : doc.items()) {
    if (name == "affinity") {
      if (!value.is_string()) config_error(origin, "\"affinity\" must be a string (an affinity spec)");
      const auto text = value.get<std::string>();
      try {
        config.affinity = parse_affinity_spec(text).text;
      } catch (const affinity_error& e) {
        config_error(origin, std::string("\"affinity\": ") + e.what());
      }
    } else if (name == "workers") {
      if (!value.is_number_unsigned()) {
        config_error(origin, "\"workers\" must be a non-negative integer (0 = one per core or CPU)");
      }
      const auto workers = value.get<std::uint64_t>();
      if (workers > k_max_workers) {
        config_error(origin, "\"workers\": " + std::to_string(workers) + " is too many (a pool has at most " +
                                 std::to_string(k_max_workers) + " workers, mtp::k_max_workers)");
      }
      config.workers = static_cast<std::size_t>(workers);
    } else if (name == "bind_memory") {
      if (!value.is_boolean()) config_error(origin, "\"bind_memory\" must be true or false");
      config.bind_memory = value.get<bool>();
    } else {
      config_error(origin, "unknown key " + impl::quote(name) + " (expected " + std::string(k_keys) + ")");
    }
  }
  return config;
}

placement_config read_placement_config(const std::string& path) {
  const std::string origin = "affinity config '" + path + "'";
  std::error_code status_error;
  if (std::filesystem::is_directory(path, status_error)) {
    config_error(origin, "cannot read: is a directory (expected a JSON file)");
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    config_error(origin, "cannot open: " + (error != 0 ? std::error_code(error, std::generic_category()).message() : "unknown error"));
  }
  std::string text;
  char buffer[4096];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (text.size() > k_max_config_bytes) {
      config_error(origin, "cannot read: larger than " + std::to_string(k_max_config_bytes) +
                               " bytes (a placement config is a few lines of JSON)");
    }
  }
  if (in.bad()) {
    const int error = errno;
    config_error(origin, "cannot read: " + (error != 0 ? std::error_code(error, std::generic_category()).message() : "read error"));
  }
  return parse_placement_config(text, origin);
}

placement make_placement(const placement_config& config) {
  placement plan = config.affinity ? plan_placement(*config.affinity, config.workers)
                                   : default_placement(config.workers);
  plan.bind_memory = config.bind_memory;
  return plan;
}

placement load_placement_config(const std::string& path) {
  return make_placement(read_placement_config(path));
}

}  // namespace mtp
