// SPDX-License-Identifier: MIT
// Readable type names for diagnostics: std::type_info::name() demangled where the ABI allows.
#pragma once

#include <string>
#include <typeinfo>

namespace mtp::impl {

/// The name of `type` as written in source (e.g. "withdraw", "std::tuple<long>"), or the
/// implementation's raw name where it cannot be demangled.
[[nodiscard]] std::string type_name(const std::type_info& type);

}  // namespace mtp::impl
