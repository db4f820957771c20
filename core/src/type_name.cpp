// SPDX-License-Identifier: MIT
#include <mtp/core/impl/type_name.hpp>

#include <cstdlib>
#include <memory>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#endif

namespace mtp::impl {

std::string type_name(const std::type_info& type) {
  const char* raw = type.name();
#if __has_include(<cxxabi.h>)
  int status = 0;
  // __cxa_demangle allocates the result with malloc: the unique_ptr frees it on every path.
  const std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(raw, nullptr, nullptr, &status),
                                                         &std::free);
  if (status == 0 && demangled != nullptr) return std::string(demangled.get());
#endif
  return std::string(raw);  // not an Itanium-ABI name (e.g. MSVC's, already readable)
}

}  // namespace mtp::impl
