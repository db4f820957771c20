// Helpers shared by the affinity tests.
#pragma once

#include <mtp/affinity/placement.hpp>

#include <gtest/gtest.h>

#include <sched.h>

#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtp_test {

/// The CPUs the calling thread may run on, read from the kernel (sched_getaffinity).
inline std::vector<unsigned> cpus_of_this_thread() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<unsigned> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

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
