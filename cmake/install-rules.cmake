# Install rules: headers, the static libraries, and a CMake package so that consumers write
#   find_package(messaging_thread_pool 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE mtp::mtp)
include(CMakePackageConfigHelpers)

set(MTP_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/messaging_thread_pool
  CACHE STRING "Where the CMake package files are installed")

install(DIRECTORY core/include/ affinity/include/
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
  install(TARGETS mtp_asio EXPORT mtp-targets COMPONENT mtp_development)
endif()

install(EXPORT mtp-targets
  NAMESPACE mtp::
  DESTINATION ${MTP_INSTALL_CMAKEDIR}
  COMPONENT mtp_development)

configure_package_config_file(cmake/mtp-config.cmake.in
  ${PROJECT_BINARY_DIR}/messaging_thread_pool-config.cmake
  INSTALL_DESTINATION ${MTP_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/messaging_thread_pool-config-version.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/messaging_thread_pool-config.cmake
  ${PROJECT_BINARY_DIR}/messaging_thread_pool-config-version.cmake
  DESTINATION ${MTP_INSTALL_CMAKEDIR}
  COMPONENT mtp_development)
