// SPDX-License-Identifier: MIT
// The registry of operations: every kind of message a sharded pool serves (a call, a post, a
// create, ...) under a key shared by every rank, registered during static initialisation.
#pragma once

#include <cstdint>
#include <typeinfo>

#include <mtp/mpi/wire.hpp>

namespace mtp::mpi::impl {

class sharded_base;
using serve_fn = void (*)(sharded_base& pool, int source, std::uint64_t call, wire::reader& in, std::uint32_t n);
struct op_entry {
  serve_fn serve;
  bool waits;  // a share that may wait for room in a bounded queue: served on the control thread
};

/// Adds the operation `key`; aborts, naming the key, when another operation already holds it.
void add_op(std::uint64_t key, op_entry entry);
/// The operation `key`, or null when no operation of this program has that key.
[[nodiscard]] const op_entry* find_op(std::uint64_t key) noexcept;
/// The key of the operation named `type_name` (FNV-1a).
[[nodiscard]] std::uint64_t op_key(const char* type_name) noexcept;

// Runs during static initialisation, so every rank (one program) knows every operation any
// rank can send before main starts, whatever code path each rank takes.
template <class Tag>
std::uint64_t register_op(serve_fn serve, bool waits) {
  const std::uint64_t key = op_key(typeid(Tag).name());
  add_op(key, op_entry{serve, waits});
  return key;
}

}  // namespace mtp::mpi::impl
