// Placement config files (JSON, read with nlohmann-json).
#include "internal.hpp"

#include <mtp/affinity/config.hpp>
#include <mtp/affinity/spec.hpp>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <system_error>

namespace mtp {

namespace {

constexpr std::string_view k_keys = "\"affinity\", \"workers\", \"bind_memory\"";

[[noreturn]] void config_error(std::string_view origin, std::string_view why) {
  throw affinity_error(std::string(origin) + ": " + std::string(why));
}

}  // namespace

placement_config parse_placement_config(std::string_view json_text, std::string_view origin) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json_text.begin(), json_text.end());
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
      config.workers = value.get<std::size_t>();
    } else if (name == "bind_memory") {
      if (!value.is_boolean()) config_error(origin, "\"bind_memory\" must be true or false");
      config.bind_memory = value.get<bool>();
    } else {
      config_error(origin, "unknown key " + impl::quote(name) + " (expected " + std::string(k_keys) + ")");
    }
  }
  return config;
}

placement_config read_placement_config(const std::filesystem::path& path) {
  const std::string origin = "affinity config '" + path.string() + "'";
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    config_error(origin, "cannot open: " + std::error_code(error, std::generic_category()).message());
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) config_error(origin, "read error");
  return parse_placement_config(text.str(), origin);
}

placement make_placement(const placement_config& config) {
  placement plan = config.affinity ? plan_placement(*config.affinity, config.workers)
                                   : default_placement(config.workers);
  plan.bind_memory = config.bind_memory;
  return plan;
}

placement load_placement_config(const std::filesystem::path& path) {
  return make_placement(read_placement_config(path));
}

}  // namespace mtp
