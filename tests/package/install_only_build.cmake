# SPDX-License-Identifier: MIT
# Script mode: configures the project as a consumer building it only to install it (no
# tests, examples or benchmarks) and checks, in the default target's rules, that the
# build compiles nothing the install does not ship (mtp::mpi is not installed yet).
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR} -G "Unix Makefiles" -DCMAKE_CXX_COMPILER=${CXX}
  -DMTP_BUILD_TESTS=OFF -DMTP_BUILD_EXAMPLES=OFF -DMTP_BUILD_BENCHMARKS=OFF
  RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "configuring an install-only build failed: ${rc}")
endif()
# The default target's rules, as the Makefile generator writes them: `DIR/all: TARGET/all`.
file(READ ${WORK_DIR}/CMakeFiles/Makefile2 rules)
if(NOT rules MATCHES "core/all: core/CMakeFiles/mtp_core.dir/all")
  message(FATAL_ERROR "the default target does not list the core library; cannot judge it")
endif()
if(rules MATCHES "mpi/all: mpi/CMakeFiles/mtp_mpi.dir/all")
  message(FATAL_ERROR "an install-only build compiles mtp_mpi, which it does not install")
endif()
file(REMOVE_RECURSE ${WORK_DIR})
message(STATUS "an install-only build compiles only what it installs")
