// SPDX-License-Identifier: MIT
// Config files and the MTP_AFFINITY environment variable.
#include "test_util.hpp"

#include <mtp/affinity/config.hpp>
#include <mtp/affinity/spec.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace {

using mtp::parse_placement_config;
using mtp::placement_config;
using mtp_test::affinity_error_of;
using mtp_test::env_guard;
using mtp_test::expect_contains;

void expect_config_error(const std::string& json, std::initializer_list<std::string_view> parts) {
  SCOPED_TRACE("config: " + json);
  const auto message = affinity_error_of([&] { (void)parse_placement_config(json, "test.json"); });
  if (message) expect_contains(*message, parts);
}

// A file in the temporary directory, removed at the end of the scope.
class temp_file {
 public:
  explicit temp_file(const std::string& text)
      : path_(std::filesystem::temp_directory_path() /
              ("mtp-affinity-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++) + ".json")) {
    std::ofstream(path_) << text;
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  ~temp_file() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

TEST(AffinityConfig, FullConfig) {
  const placement_config config =
      parse_placement_config(R"({"affinity": "numa:scatter", "workers": 8, "bind_memory": true})");
  EXPECT_EQ(config.affinity, "numa:scatter");
  EXPECT_EQ(config.workers, 8u);
  EXPECT_TRUE(config.bind_memory);
}

TEST(AffinityConfig, EveryKeyIsOptional) {
  const placement_config config = parse_placement_config("{}");
  EXPECT_FALSE(config.affinity.has_value());
  EXPECT_EQ(config.workers, 0u);
  EXPECT_FALSE(config.bind_memory);
  EXPECT_EQ(parse_placement_config(R"({"affinity": " 0-3,8 "})").affinity, "0-3,8");
}

TEST(AffinityConfig, Errors) {
  expect_config_error("{\"affinity\": ", {"test.json: malformed JSON"});
  expect_config_error("[1, 2]", {"test.json: expected a JSON object"});
  expect_config_error(R"({"affinity": 3})", {"test.json: \"affinity\" must be a string"});
  expect_config_error(R"({"affinity": "bogus"})",
                      {"test.json: \"affinity\": affinity spec 'bogus': unknown policy"});
  expect_config_error(R"({"affinity": "4-2"})", {"malformed range '4-2'"});
  expect_config_error(R"({"workers": -1})", {"\"workers\" must be a non-negative integer"});
  expect_config_error(R"({"workers": 2.5})", {"\"workers\" must be a non-negative integer"});
  expect_config_error(R"({"workers": "4"})", {"\"workers\" must be a non-negative integer"});
  expect_config_error(R"({"bind_memory": "yes"})", {"\"bind_memory\" must be true or false"});
  expect_config_error(R"({"workers": 18446744073709551615})",
                      {"test.json: \"workers\": 18446744073709551615 is too many", "at most 4096 workers"});
  expect_config_error(R"({"workers": 100000000000})", {"\"workers\": 100000000000 is too many"});
  expect_config_error(R"({"workers": 4097})", {"\"workers\": 4097 is too many"});
  expect_config_error(R"({"workers": 18446744073709551616})", {"\"workers\" must be a non-negative integer"});
  expect_config_error(R"({"bind_memroy": true})",
                      {"unknown key 'bind_memroy'", "expected \"affinity\", \"workers\", \"bind_memory\""});
}

TEST(AffinityConfig, LargestWorkerCountIsAccepted) {
  EXPECT_EQ(parse_placement_config(R"({"workers": 4096})").workers, mtp::k_max_workers);
}

TEST(AffinityConfig, DuplicateKeysAreErrors) {
  expect_config_error(R"({"workers": 2, "workers": 3})",
                      {"test.json: duplicate key 'workers'", "each key may appear once"});
  expect_config_error(R"({"affinity": "cores", "bind_memory": true, "affinity": "pus"})",
                      {"duplicate key 'affinity'"});
  // Nested objects are checked too (the config then fails on its unknown key, not before).
  expect_config_error(R"({"x": {"a": 1, "a": 2}})", {"duplicate key 'a'"});
  // The same key in different objects is not a duplicate.
  expect_config_error(R"({"x": {"workers": 1}, "workers": 2})", {"unknown key 'x'"});
}

TEST(AffinityConfig, DirectoryIsNotMalformedJson) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path();
  const auto message = affinity_error_of([&] { (void)mtp::read_placement_config(dir); });
  if (message) {
    expect_contains(*message, {"affinity config '" + dir.string() + "'", "is a directory"});
    EXPECT_EQ(message->find("malformed JSON"), std::string::npos) << *message;
  }
}

TEST(AffinityConfig, HugeFileIsRefusedUnread) {
  const temp_file file(std::string(std::size_t{2} << 20, ' ') + "{}");
  const auto message = affinity_error_of([&] { (void)mtp::read_placement_config(file.path()); });
  if (message) expect_contains(*message, {file.path().string(), "cannot read: larger than 1048576 bytes"});
}

TEST(AffinityConfig, LoadFileIntoAPlacement) {
  const temp_file file(R"({"affinity": "none", "workers": 3, "bind_memory": true})");
  const mtp::placement plan = mtp::load_placement_config(file.path());
  EXPECT_EQ(plan.spec, "none");
  EXPECT_EQ(plan.workers.size(), 3u);
  EXPECT_TRUE(plan.bind_memory);
}

TEST(AffinityConfig, MissingFileNamesIt) {
  const auto message = affinity_error_of(
      [] { (void)mtp::load_placement_config("/nonexistent/mtp-pool.json"); });
  if (message) expect_contains(*message, {"affinity config '/nonexistent/mtp-pool.json': cannot open"});
}

TEST(AffinityConfig, MalformedFileNamesIt) {
  const temp_file file("{ nope }");
  const auto message = affinity_error_of([&] { (void)mtp::read_placement_config(file.path()); });
  if (message) expect_contains(*message, {file.path().string(), "malformed JSON"});
}

TEST(AffinityEnvironment, OverridesTheDefault) {
  const env_guard env(mtp::k_affinity_env, "none");
  const mtp::placement plan = mtp::default_placement(3);
  EXPECT_EQ(plan.spec, "none");
  EXPECT_EQ(plan.workers.size(), 3u);
  ASSERT_FALSE(plan.notes.empty());
  EXPECT_EQ(plan.notes.front(), "spec from MTP_AFFINITY");
}

TEST(AffinityEnvironment, DoesNotOverrideAnExplicitSpec) {
  const env_guard env(mtp::k_affinity_env, "none");
  EXPECT_EQ(mtp::plan_placement("cores").spec, "cores");
  const mtp::placement from_file = mtp::make_placement(parse_placement_config(R"({"affinity": "pus"})"));
  EXPECT_EQ(from_file.spec, "pus");
  // A config without "affinity" behaves like a pool given no placement.
  EXPECT_EQ(mtp::make_placement(parse_placement_config(R"({"workers": 2})")).spec, "none");
}

TEST(AffinityEnvironment, BadValueIsAnErrorNotAFallback) {
  const env_guard env(mtp::k_affinity_env, "numa:everywhere");
  const auto message = affinity_error_of([] { (void)mtp::default_placement(); });
  if (message) {
    expect_contains(*message, {"MTP_AFFINITY: affinity spec 'numa:everywhere': unknown NUMA policy"});
  }
}

TEST(AffinityEnvironment, BlankValueMeansUnset) {
  const env_guard env(mtp::k_affinity_env, " ");
  EXPECT_EQ(mtp::default_placement().spec, "cores");
}

}  // namespace
