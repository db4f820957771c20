# SPDX-License-Identifier: MIT
# Install rules: headers, the static libraries, a CMake package and a pkg-config file, so that
# consumers write
#   find_package(messaging_thread_pool 0.2 REQUIRED)
#   target_link_libraries(app PRIVATE mtp::mtp)
# or
#   g++ -std=c++20 app.cpp $(pkg-config --cflags --libs messaging_thread_pool)
# and, for the MPI adapter (component mtp_mpi_development),
#   find_package(messaging_thread_pool 0.2 REQUIRED COMPONENTS mpi)
#   target_link_libraries(app PRIVATE mtp::mpi)
include(CMakePackageConfigHelpers)

set(MTP_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/messaging_thread_pool
  CACHE STRING "Where the CMake package files are installed")
set(MTP_INSTALL_PKGCONFIGDIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig
  CACHE STRING "Where the pkg-config file is installed")
set(MTP_INSTALL_DOCDIR ${CMAKE_INSTALL_DATADIR}/doc/messaging_thread_pool
  CACHE STRING "Where the licence and the documentation of the development files go")

# Third-party headers that the installed headers include: consumers need them too. Found by
# reading the headers, so that the CMake package and the Debian package follow the code.
set(MTP_HEADER_DEPENDENCIES "")  # list of "header=debian-package"
file(GLOB_RECURSE _mtp_public_headers
  ${PROJECT_SOURCE_DIR}/core/include/*.hpp ${PROJECT_SOURCE_DIR}/affinity/include/*.hpp)
foreach(_dep IN ITEMS "concurrentqueue/concurrentqueue.h=libconcurrentqueue-dev"
                      "readerwriterqueue/readerwriterqueue.h=libreaderwriterqueue-dev"
                      "nlohmann/json.hpp=nlohmann-json3-dev")
  string(REGEX REPLACE "/.*" "" _prefix "${_dep}")
  foreach(_header IN LISTS _mtp_public_headers)
    file(STRINGS ${_header} _hits REGEX "^#include <${_prefix}/")
    if(_hits)
      list(APPEND MTP_HEADER_DEPENDENCIES "${_dep}")
      break()
    endif()
  endforeach()
endforeach()

install(DIRECTORY core/include/ affinity/include/ ${MTP_GENERATED_INCLUDE_DIR}/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT mtp_development)

install(TARGETS mtp_core mtp_affinity messaging_thread_pool
  EXPORT mtp-targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT mtp_development
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# The Asio adapter (header only; the consumer provides standalone Asio on its include path).
# In the development component: the exported targets file always names mtp::asio.
if(TARGET mtp_asio)
  install(FILES asio/include/mtp/asio.hpp
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/mtp
    COMPONENT mtp_development)
  install(DIRECTORY asio/include/mtp/asio/  # the headers mtp/asio.hpp includes (async_await.hpp)
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/mtp/asio
    COMPONENT mtp_development)
  install(TARGETS mtp_asio EXPORT mtp-targets COMPONENT mtp_development)
endif()

install(EXPORT mtp-targets
  NAMESPACE mtp::
  DESTINATION ${MTP_INSTALL_CMAKEDIR}
  COMPONENT mtp_development)

# The config file looks up each header dependency found above (one find_path per header).
set(MTP_CONFIG_HEADER_CHECKS "")
foreach(_dep IN LISTS MTP_HEADER_DEPENDENCIES)
  string(REPLACE "=" ";" _pair "${_dep}")
  list(GET _pair 0 _header)
  list(GET _pair 1 _package)
  string(APPEND MTP_CONFIG_HEADER_CHECKS "mtp_find_header(${_header} ${_package})\n")
endforeach()
configure_package_config_file(cmake/mtp-config.cmake.in
  ${PROJECT_BINARY_DIR}/messaging_thread_pool-config.cmake
  INSTALL_DESTINATION ${MTP_INSTALL_CMAKEDIR})
# While the major version is 0, a minor release may break the API: 0.2 satisfies only 0.2.x.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_mtp_compatibility SameMinorVersion)
else()
  set(_mtp_compatibility SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/messaging_thread_pool-config-version.cmake
  COMPATIBILITY ${_mtp_compatibility})
install(FILES
  ${PROJECT_BINARY_DIR}/messaging_thread_pool-config.cmake
  ${PROJECT_BINARY_DIR}/messaging_thread_pool-config-version.cmake
  DESTINATION ${MTP_INSTALL_CMAKEDIR}
  COMPONENT mtp_development)

# pkg-config. The libraries are static, so what they link (hwloc, threads) goes in Requires
# and Libs, not in the .private fields: a plain `pkg-config --libs` must link.
# The prefix is found from the .pc file's own place, so that an installed tree can move;
# except in /usr (distribution packages), where pkg-config then drops the system directories.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(MTP_PC_PREFIX "/usr")
else()
  file(RELATIVE_PATH _mtp_pc_to_prefix
    ${CMAKE_INSTALL_PREFIX}/${MTP_INSTALL_PKGCONFIGDIR} ${CMAKE_INSTALL_PREFIX})
  string(REGEX REPLACE "/$" "" _mtp_pc_to_prefix "${_mtp_pc_to_prefix}")
  set(MTP_PC_PREFIX "\${pcfiledir}/${_mtp_pc_to_prefix}")
endif()
set(MTP_PC_REQUIRES "")
if(MTP_WITH_HWLOC)
  set(MTP_PC_REQUIRES "hwloc >= 2.0")
endif()
configure_file(cmake/messaging_thread_pool.pc.in
  ${PROJECT_BINARY_DIR}/messaging_thread_pool.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/messaging_thread_pool.pc
  DESTINATION ${MTP_INSTALL_PKGCONFIGDIR}
  COMPONENT mtp_development)

install(FILES LICENSE DESTINATION ${MTP_INSTALL_DOCDIR} COMPONENT mtp_development)

# ---- The MPI adapter: a component of its own -------------------------------------------------
# Component mtp_mpi_development (Debian: messaging-thread-pool-mpi-dev), so that users of the
# core do not need MPI: its headers, libmtp_mpi.a, its own exported targets file
# (mtp-mpi-targets.cmake, loaded by find_package(messaging_thread_pool COMPONENTS mpi) through
# mtp-mpi.cmake, which finds MPI and cereal first) and messaging_thread_pool_mpi.pc. Without it
# the core install stays whole: the config file then reports the component as not installed.
if(TARGET mtp_mpi)
  # Which MPI the static library was compiled against: its headers fix the ABI (an MPI_Comm is
  # a pointer in Open MPI, an int in MPICH), so consumers must use the same implementation.
  set(_mtp_mpi_paths "${MPI_CXX_INCLUDE_DIRS};${MPI_CXX_LIBRARIES};${MPI_CXX_COMPILER}")
  if(_mtp_mpi_paths MATCHES "openmpi")
    set(_mtp_mpi_pc ompi-cxx)
    set(_mtp_mpi_deb libopenmpi-dev)
  elseif(_mtp_mpi_paths MATCHES "mpich")
    set(_mtp_mpi_pc mpich)
    set(_mtp_mpi_deb libmpich-dev)
  else()
    set(_mtp_mpi_pc "")
    set(_mtp_mpi_deb mpi-default-dev)
  endif()
  set(MTP_PC_MPI_REQUIRES "${_mtp_mpi_pc}" CACHE STRING
    "pkg-config module of the MPI mtp::mpi is built with, for messaging_thread_pool_mpi.pc (empty: compile with mpicxx)")
  set(MTP_DEB_MPI_PACKAGE "${_mtp_mpi_deb}" CACHE STRING
    "Debian package of the MPI mtp::mpi is built with (a Depends of messaging-thread-pool-mpi-dev)")

  install(DIRECTORY mpi/include/
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
    COMPONENT mtp_mpi_development)
  install(TARGETS mtp_mpi
    EXPORT mtp-mpi-targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT mtp_mpi_development)
  install(EXPORT mtp-mpi-targets
    NAMESPACE mtp::
    DESTINATION ${MTP_INSTALL_CMAKEDIR}
    COMPONENT mtp_mpi_development)
  configure_file(cmake/mtp-mpi.cmake.in ${PROJECT_BINARY_DIR}/mtp-mpi.cmake @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/mtp-mpi.cmake
    DESTINATION ${MTP_INSTALL_CMAKEDIR}
    COMPONENT mtp_mpi_development)

  # pkg-config: the core's module, the MPI implementation's module (the Debian name of the
  # one built with: Open MPI's ompi-cxx, MPICH's mpich) and cereal's directory when it is not
  # one the compiler searches anyway (cereal has no .pc file).
  set(MTP_PC_MPI_REQUIRES_LINE "messaging_thread_pool = ${PROJECT_VERSION}")
  if(MTP_PC_MPI_REQUIRES)
    string(APPEND MTP_PC_MPI_REQUIRES_LINE ", ${MTP_PC_MPI_REQUIRES}")
  endif()
  set(MTP_PC_MPI_CFLAGS "-I\${includedir}")
  if(NOT MTP_CEREAL_INCLUDE_DIR IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
    string(APPEND MTP_PC_MPI_CFLAGS " -I${MTP_CEREAL_INCLUDE_DIR}")
  endif()
  configure_file(cmake/messaging_thread_pool_mpi.pc.in
    ${PROJECT_BINARY_DIR}/messaging_thread_pool_mpi.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/messaging_thread_pool_mpi.pc
    DESTINATION ${MTP_INSTALL_PKGCONFIGDIR}
    COMPONENT mtp_mpi_development)
endif()
