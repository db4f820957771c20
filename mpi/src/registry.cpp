// SPDX-License-Identifier: MIT
// The registry of operations (impl/registry.hpp): keys and their serving functions.
#include <mtp/mpi/impl/registry.hpp>

#include <cstdio>
#include <cstdlib>
#include <unordered_map>

namespace mtp::mpi::impl {

namespace {
std::unordered_map<std::uint64_t, op_entry>& op_registry() {
  static std::unordered_map<std::uint64_t, op_entry> map;
  return map;
}
}  // namespace

std::uint64_t op_key(const char* s) noexcept {
  std::uint64_t h = 1469598103934665603ull;
  for (; *s != 0; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ull;
  return h;
}

void add_op(std::uint64_t key, op_entry entry) {
  auto [it, fresh] = op_registry().emplace(key, entry);
  if (!fresh && it->second.serve != entry.serve) {
    std::fprintf(stderr, "mtp::mpi: two operations share the key %llu\n", static_cast<unsigned long long>(key));
    std::abort();
  }
}

const op_entry* find_op(std::uint64_t key) noexcept {
  const auto& map = op_registry();
  const auto it = map.find(key);
  return it == map.end() ? nullptr : &it->second;
}

}  // namespace mtp::mpi::impl
