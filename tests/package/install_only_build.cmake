# SPDX-License-Identifier: MIT
# Script mode: configures the project as a consumer building it only to install it (no
# tests, examples or benchmarks) and checks, in the default target's rules and the install
# script, that the build compiles nothing the install does not ship, and ships nothing it
# does not compile: mtp::mpi, installed when MPI and cereal are found, is compiled then only.
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
# What the install script installs (install(TARGETS) is in the top directory's script).
file(READ ${WORK_DIR}/cmake_install.cmake install_script)
set(mpi_built FALSE)
if(rules MATCHES "mpi/all: mpi/CMakeFiles/mtp_mpi.dir/all")
  set(mpi_built TRUE)
endif()
set(mpi_installed FALSE)
if(install_script MATCHES "libmtp_mpi\\.a")
  set(mpi_installed TRUE)
endif()
if(mpi_built AND NOT mpi_installed)
  message(FATAL_ERROR "an install-only build compiles mtp_mpi, which it does not install")
elseif(mpi_installed AND NOT mpi_built)
  message(FATAL_ERROR "an install-only build installs mtp_mpi but does not compile it")
endif()
file(REMOVE_RECURSE ${WORK_DIR})
if(mpi_built)
  message(STATUS "an install-only build compiles only what it installs (mtp::mpi included)")
else()
  message(STATUS "an install-only build compiles only what it installs (no mtp::mpi: MPI or cereal not found)")
endif()
