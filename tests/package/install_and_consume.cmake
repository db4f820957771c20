# SPDX-License-Identifier: MIT
# Script mode: install the already-built project to WORK_DIR/prefix, then build and run the
# consumer against it twice: as a CMake project (find_package) and with pkg-config only.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} --component mtp_development
  RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "install failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/consumer -B ${WORK_DIR}/build
  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release
  -DMTP_CONSUMER_WANTS_VERSION=${VERSION}
  RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the consumer against the installed package failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the consumer failed: ${rc}")
endif()
execute_process(COMMAND ${WORK_DIR}/build/consumer RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "the consumer ran and failed: ${rc}")
endif()

# pkg-config alone: only the installed .pc file says where headers and libraries are.
file(GLOB_RECURSE pc_files ${prefix}/*/messaging_thread_pool.pc)
if(NOT pc_files)
  message(FATAL_ERROR "messaging_thread_pool.pc was not installed under ${prefix}")
endif()
list(GET pc_files 0 pc_file)
get_filename_component(pc_dir ${pc_file} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pc_dir})
set(ENV{CXX} ${CXX})
execute_process(COMMAND bash ${SOURCE_DIR}/tests/package/consumer/build-with-pkg-config.sh ${WORK_DIR}/pkg-config
  RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building or running the consumer with pkg-config failed: ${rc}")
endif()
message(STATUS "installed package works (find_package and pkg-config)")
