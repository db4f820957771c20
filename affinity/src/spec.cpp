// SPDX-License-Identifier: MIT
// Spec text: parsing, validation and formatting (no topology needed).
#include "internal.hpp"

#include <mtp/affinity/spec.hpp>
#include <mtp/affinity/topology.hpp>

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace mtp {

namespace impl {

namespace {

constexpr std::size_t k_quote_limit = 80;


// Parses a run of digits already known to be non-empty and all digits; false if it exceeds
// k_max_cpu_number.
bool to_cpu_number(std::string_view digits, unsigned& out) noexcept {
  unsigned long value = 0;
  for (const char c : digits) {
    value = value * 10 + static_cast<unsigned long>(c - '0');
    if (value > k_max_cpu_number) return false;
  }
  out = static_cast<unsigned>(value);
  return true;
}

}  // namespace

std::size_t parse_reserve(std::string_view option, std::string_view spec) {
  constexpr std::string_view k_prefix = "reserve=";
  if (!option.starts_with(k_prefix)) {
    throw_spec_error(spec, "unknown option " + quote(option) +
                               " (the only option is reserve=N, e.g. cores:reserve=1)");
  }
  const std::string_view digits = option.substr(k_prefix.size());
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), is_digit)) {
    throw_spec_error(spec, "malformed reserve count " + quote(digits) +
                               " (expected reserve=N, N a number of cores)");
  }
  unsigned count = 0;
  if (!to_cpu_number(digits, count)) {
    throw_spec_error(spec, "reserve count " + quote(digits) + " is too large (the largest is " +
                               std::to_string(k_max_cpu_number) + ")");
  }
  return count;
}

std::string_view trim(std::string_view text) noexcept {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  return text;
}

std::optional<std::string> env_affinity_spec() {
  // getenv only races with a concurrent setenv, which this library never calls.
  if (const char* env = std::getenv(k_affinity_env)) {  // NOLINT(concurrency-mt-unsafe)
    const std::string_view value = trim(env);
    if (!value.empty()) return std::string(value);
  }
  return std::nullopt;
}

std::string quote(std::string_view text) {
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out = "'";
  std::size_t shown = 0;
  for (const char ch : text) {
    if (shown == k_quote_limit) {
      out += "...";
      break;
    }
    const auto byte = static_cast<unsigned char>(ch);
    if (byte < 0x20 || byte >= 0x7f || ch == '\\' || ch == '\'') {
      out += "\\x";
      out += k_hex[byte >> 4];
      out += k_hex[byte & 0xf];
    } else {
      out += ch;
    }
    ++shown;
  }
  out += "'";
  return out;
}

void throw_spec_error(std::string_view spec, std::string_view why, std::string_view label) {
  throw affinity_error(std::string(label) + " " + quote(spec) + ": " + std::string(why));
}

void check_worker_count(std::size_t workers) {
  if (workers > k_max_workers) {
    throw affinity_error("too many workers: " + std::to_string(workers) + " (a pool has at most " +
                         std::to_string(k_max_workers) + " workers, mtp::k_max_workers)");
  }
}

std::size_t worker_count(std::size_t workers, std::size_t available, std::string_view counted,
                         std::vector<std::string>& notes) {
  if (workers != 0) return workers;
  if (available <= k_max_workers) return available;
  notes.push_back(std::string(counted) + " selected; the pool is cut to " +
                  std::to_string(k_max_workers) + " workers (mtp::k_max_workers)");
  return k_max_workers;
}

void check_synthetic_size(std::string_view description) {
  const auto fail = [&](const std::string& why) {
    throw topology_error("synthetic topology " + quote(description) + ": " + why);
  };
  if (trim(description).empty()) fail("empty description (expected levels such as \"pack:2 core:4 pu:2\")");
  std::uint64_t pus = 1;      // objects at the current level; at the end, hardware threads
  std::uint64_t objects = 1;  // the machine
  std::size_t i = 0;
  while (i < description.size()) {
    if (is_blank(description[i])) {
      ++i;
      continue;
    }
    // One level: up to the next blank outside (attributes) and [memory children].
    const std::size_t start = i;
    int depth = 0;
    while (i < description.size() && (depth > 0 || !is_blank(description[i]))) {
      const char c = description[i];
      if (c == '(' || c == '[') ++depth;
      if ((c == ')' || c == ']') && depth > 0) --depth;
      ++i;
    }
    const std::string_view token = description.substr(start, i - start);
    if (token.front() == '(' || token.front() == '[') continue;  // machine attributes, memory
    std::string_view level = token.substr(0, token.find_first_of("(["));
    const std::size_t colon = level.rfind(':');
    const std::string_view arity_text = colon == std::string_view::npos ? level : level.substr(colon + 1);
    if (arity_text.empty() || !std::all_of(arity_text.begin(), arity_text.end(), is_digit)) {
      fail("cannot read the arity of level " + quote(token) + " (expected TYPE:N, e.g. core:4)");
    }
    std::uint64_t arity = 0;
    for (const char c : arity_text) {
      arity = arity * 10 + static_cast<std::uint64_t>(c - '0');
      if (arity > k_max_synthetic_arity) break;
    }
    if (arity > k_max_synthetic_arity) {
      fail("level " + quote(token) + " has more than " + std::to_string(k_max_synthetic_arity) +
           " children per parent (mtp::k_max_synthetic_arity)");
    }
    pus *= arity;  // both stay <= the limits below before each multiplication: no overflow
    objects += pus;
    if (pus > k_max_synthetic_pus) {
      fail("more than " + std::to_string(k_max_synthetic_pus) +
           " hardware threads (mtp::k_max_synthetic_pus); the levels up to " + quote(level) +
           " already make " + std::to_string(pus));
    }
    if (objects > k_max_synthetic_objects) {
      fail("more than " + std::to_string(k_max_synthetic_objects) +
           " objects in all (mtp::k_max_synthetic_objects)");
    }
  }
}

std::string validate_cpu_list(std::string_view list, std::string_view spec, std::string_view label) {
  if (list.empty()) throw_spec_error(spec, "empty CPU list", label);
  std::string canonical;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = list.find(',', start);
    const std::string_view item =
        list.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (item.empty()) {
      throw_spec_error(spec, "malformed CPU list: empty item (two commas in a row, or a comma "
                             "at the start or end)", label);
    }
    const std::size_t dash = item.find('-');
    const std::string_view first = item.substr(0, dash);
    const std::string_view last =
        dash == std::string_view::npos ? std::string_view{} : item.substr(dash + 1);
    const auto all_digits = [](std::string_view s) {
      return !s.empty() && std::all_of(s.begin(), s.end(), is_digit);
    };
    if (!all_digits(first) || (dash != std::string_view::npos && !all_digits(last))) {
      throw_spec_error(spec, "malformed CPU list item " + quote(item) +
                                 " (expected a CPU number N or a range N-M)", label);
    }
    unsigned lo = 0;
    unsigned hi = 0;
    if (!to_cpu_number(first, lo) || (dash != std::string_view::npos && !to_cpu_number(last, hi))) {
      throw_spec_error(spec, "CPU number in " + quote(item) + " is too large (the largest is " +
                                 std::to_string(k_max_cpu_number) + ")", label);
    }
    if (dash != std::string_view::npos && lo > hi) {
      throw_spec_error(spec, "malformed range " + quote(item) + ": start is greater than end", label);
    }
    if (!canonical.empty()) canonical += ',';
    canonical += std::to_string(lo);
    if (dash != std::string_view::npos) canonical += '-' + std::to_string(hi);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return canonical;
}

}  // namespace impl

std::vector<unsigned> allowed_cpus() {
  // A dynamically sized mask covers every CPU number a spec may name (CPU_SETSIZE is 1024).
  constexpr std::size_t k_count = std::size_t{k_max_cpu_number} + 1;
  cpu_set_t* set = CPU_ALLOC(k_count);
  std::vector<unsigned> cpus;
  if (set == nullptr) return cpus;
  const std::size_t bytes = CPU_ALLOC_SIZE(k_count);
  CPU_ZERO_S(bytes, set);
  if (sched_getaffinity(0, bytes, set) == 0) {
    for (std::size_t cpu = 0; cpu < k_count; ++cpu) {
      if (CPU_ISSET_S(cpu, bytes, set)) cpus.push_back(static_cast<unsigned>(cpu));
    }
  }
  CPU_FREE(set);
  return cpus;
}

affinity_spec parse_affinity_spec(std::string_view text) {
  const std::string_view spec = impl::trim(text);
  affinity_spec out;
  out.text = std::string(spec);
  if (spec.empty()) impl::throw_spec_error(text, std::string("empty spec (") +
                                                     std::string(impl::k_expected) + ")");
  if (impl::is_digit(spec.front()) && spec.find(":reserve") != std::string_view::npos) {
    impl::throw_spec_error(spec, std::string(impl::k_reserve_needs_policy));
  }
  if (impl::is_digit(spec.front())) {
    out.policy = placement_policy::cpu_list;
    out.cpus = impl::expand_cpu_list(impl::validate_cpu_list(spec, spec));
    if (out.cpus.empty()) impl::throw_spec_error(spec, "empty selection: the CPU list names no CPU");
    return out;
  }
  // A policy keyword, alone or followed by ":reserve=N".
  struct keyword {
    std::string_view name;
    placement_policy policy;
  };
  static constexpr keyword k_policies[] = {{"cores", placement_policy::cores},
                                           {"pus", placement_policy::pus},
                                           {"numa:compact", placement_policy::numa_compact},
                                           {"numa:scatter", placement_policy::numa_scatter}};
  for (const keyword& k : k_policies) {
    if (!spec.starts_with(k.name)) continue;
    const std::string_view rest = spec.substr(k.name.size());
    if (!rest.empty() && rest.front() != ':') continue;  // "coresx": not this keyword
    out.policy = k.policy;
    if (!rest.empty()) out.reserve = impl::parse_reserve(rest.substr(1), spec);
    return out;
  }
  if (spec == "none") {
    out.policy = placement_policy::none;
  } else if (spec.starts_with("none:")) {
    impl::throw_spec_error(spec, std::string(impl::k_reserve_needs_policy));
  } else if (spec.starts_with("numa:") || spec == "numa") {
    impl::throw_spec_error(spec, "unknown NUMA policy (expected numa:compact or numa:scatter)");
  } else if (spec.find_first_of(",-") != std::string_view::npos &&
             std::any_of(spec.begin(), spec.end(), impl::is_digit)) {
    impl::throw_spec_error(spec, "malformed CPU list: it must start with a CPU number");
  } else {
    impl::throw_spec_error(spec, std::string("unknown policy (") + std::string(impl::k_expected) + ")");
  }
  return out;
}

std::string default_affinity_spec() {
  return impl::env_affinity_spec().value_or(std::string(k_default_spec));
}

std::string format_cpu_list(std::vector<unsigned> cpus) {
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  std::string out;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) {
      out += '-';
      out += std::to_string(cpus[j]);
    }
    i = j + 1;
  }
  return out;
}

std::string_view to_string(placement_policy policy) noexcept {
  switch (policy) {
    case placement_policy::none: return "none";
    case placement_policy::cores: return "cores";
    case placement_policy::pus: return "pus";
    case placement_policy::numa_compact: return "numa:compact";
    case placement_policy::numa_scatter: return "numa:scatter";
    case placement_policy::cpu_list: return "cpu list";
  }
  return "unknown";
}

}  // namespace mtp
