// SPDX-License-Identifier: MIT
// hwloc helpers shared by the hwloc backend's sources (namespace mtp::impl).
#pragma once

#include <mtp/affinity/topology.hpp>

#include <hwloc.h>

#include <memory>
#include <string>
#include <vector>

namespace mtp::impl {

using unique_bitmap = std::unique_ptr<hwloc_bitmap_s, bitmap_deleter>;

/// A new empty bitmap; throws std::bad_alloc.
[[nodiscard]] unique_bitmap make_bitmap();

/// The members of a finite bitmap, ascending (empty for an infinite one).
[[nodiscard]] std::vector<unsigned> to_cpus(hwloc_const_bitmap_t set);

/// The text of an errno value (thread-safe, unlike strerror).
[[nodiscard]] std::string errno_text(int error);

}  // namespace mtp::impl
