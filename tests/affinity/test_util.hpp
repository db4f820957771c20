// SPDX-License-Identifier: MIT
// Helpers shared by the affinity tests.
#pragma once

#include <mtp/affinity/placement.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtp_test {

/// The message of the affinity_error `fn` throws, or nullopt (with a test failure) if it does
/// not throw one.
template <class Fn>
std::optional<std::string> affinity_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const mtp::affinity_error& e) {
    return std::string(e.what());
  }
  ADD_FAILURE() << "expected mtp::affinity_error";
  return std::nullopt;
}

/// Expects `message` to contain every one of `parts`.
inline void expect_contains(const std::string& message, std::initializer_list<std::string_view> parts) {
  for (const std::string_view part : parts) {
    EXPECT_NE(message.find(part), std::string::npos) << "message: " << message << "\nmissing: " << part;
  }
}

/// Sets (or unsets, with nullopt) an environment variable for the scope, then restores it.
class env_guard {
 public:
  env_guard(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    set(value);
  }
  env_guard(const env_guard&) = delete;
  env_guard& operator=(const env_guard&) = delete;
  ~env_guard() { set(old_); }

 private:
  void set(const std::optional<std::string>& value) {
    if (value) {
      ::setenv(name_, value->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace mtp_test
