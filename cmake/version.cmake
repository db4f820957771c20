# SPDX-License-Identifier: MIT
# <mtp/version.hpp>: the version of project() as macros, generated into the build tree,
# on mtp::core's include path, and installed beside the other headers.
set(MTP_GENERATED_INCLUDE_DIR ${PROJECT_BINARY_DIR}/generated/include)
configure_file(${PROJECT_SOURCE_DIR}/cmake/version.hpp.in
  ${MTP_GENERATED_INCLUDE_DIR}/mtp/version.hpp @ONLY)
target_include_directories(mtp_core PUBLIC $<BUILD_INTERFACE:${MTP_GENERATED_INCLUDE_DIR}>)
