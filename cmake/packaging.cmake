# SPDX-License-Identifier: MIT
# Debian packages from the install components (`cpack -G DEB` in a build directory configured
# with -DCMAKE_INSTALL_PREFIX=/usr; tools/test-debs.sh builds and checks them):
#   messaging-thread-pool-dev    component mtp_development: headers, static libraries, CMake
#                                package, pkg-config file, licence
#   messaging-thread-pool-mpi-dev  component mtp_mpi_development: mtp::mpi's headers, static
#                                library, CMake component `mpi` and pkg-config file (when the
#                                build found MPI and cereal); depends on messaging-thread-pool-dev
#                                of the same version, the MPI it was built with, and cereal
#   messaging-thread-pool-tools  component tools: mtp-topology (with MTP_BUILD_TOOLS)

# What a consumer of the development package needs besides it. hwloc: the static library
# links it, and the CMake package finds it through pkg-config. Headers that the installed
# headers include are added from what install-rules.cmake found in them.
set(_mtp_deb_default_depends "")
if(MTP_WITH_HWLOC)
  set(_mtp_deb_default_depends "libhwloc-dev, pkg-config")
endif()
set(MTP_DEB_DEV_DEPENDS "${_mtp_deb_default_depends}" CACHE STRING
  "Depends of messaging-thread-pool-dev (the header packages found in the installed headers are appended)")
set(_mtp_deb_depends ${MTP_DEB_DEV_DEPENDS})
foreach(_dep IN LISTS MTP_HEADER_DEPENDENCIES)
  string(REGEX REPLACE ".*=" "" _package "${_dep}")
  if(_mtp_deb_depends)
    string(APPEND _mtp_deb_depends ", ")
  endif()
  string(APPEND _mtp_deb_depends "${_package}")
endforeach()

install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/messaging-thread-pool-tools
  COMPONENT tools)
if(TARGET mtp_mpi)
  install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/messaging-thread-pool-mpi-dev
    COMPONENT mtp_mpi_development)
endif()

set(CPACK_PACKAGE_NAME messaging-thread-pool)
set(CPACK_PACKAGE_VENDOR "The messaging_thread_pool authors")
set(CPACK_PACKAGE_CONTACT "The messaging_thread_pool authors")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL mtp_development)
if(TARGET mtp_mpi)
  list(APPEND CPACK_COMPONENTS_ALL mtp_mpi_development)
endif()
if(MTP_BUILD_TOOLS)
  list(APPEND CPACK_COMPONENTS_ALL tools)
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "The messaging_thread_pool authors")

set(CPACK_DEBIAN_MTP_DEVELOPMENT_PACKAGE_NAME messaging-thread-pool-dev)
set(CPACK_DEBIAN_MTP_DEVELOPMENT_PACKAGE_DEPENDS "${_mtp_deb_depends}")
set(CPACK_COMPONENT_MTP_DEVELOPMENT_DESCRIPTION
  "${PROJECT_DESCRIPTION}: headers, static libraries, CMake package and pkg-config file")

# The MPI adapter. Its dependency on the core package is CPack's component dependency, so
# that it names the exact version (messaging-thread-pool-dev (= X.Y.Z)).
if(TARGET mtp_mpi)
  set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
  set(CPACK_DEBIAN_MTP_MPI_DEVELOPMENT_PACKAGE_NAME messaging-thread-pool-mpi-dev)
  set(CPACK_COMPONENT_MTP_MPI_DEVELOPMENT_DEPENDS mtp_development)
  set(CPACK_DEBIAN_MTP_MPI_DEVELOPMENT_PACKAGE_DEPENDS "${MTP_DEB_MPI_PACKAGE}, libcereal-dev")
  set(CPACK_COMPONENT_MTP_MPI_DEVELOPMENT_DESCRIPTION
    "${PROJECT_DESCRIPTION}: mtp::mpi, one pool over the ranks of an MPI job (headers, static library, CMake component mpi, pkg-config file)")
endif()

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME messaging-thread-pool-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SHLIBDEPS ON)  # libhwloc15, libstdc++6, ... from the binary
set(CPACK_COMPONENT_TOOLS_DESCRIPTION
  "mtp-topology: the machine as messaging_thread_pool sees it, and the worker-to-CPU plan of an affinity spec")

include(CPack)
