# SPDX-License-Identifier: MIT
# Script mode: install the already-built project to WORK_DIR/prefix, then build and run the
# consumer against it twice: as a CMake project (find_package) and with pkg-config only.
# With WITH_MPI (the build has mtp::mpi): first the core alone is installed, and asking for the
# mpi component must fail with a message naming its package; then the component
# mtp_mpi_development is installed into the same prefix and tests/package/consumer_mpi is built
# (find_package COMPONENTS mpi, then pkg-config) and run on 2 ranks.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "${what} failed: ${rc}")
  endif()
endfunction()

run("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} --component mtp_development)
run("configuring the consumer against the installed package"
  ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/consumer -B ${WORK_DIR}/build
  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release
  -DMTP_CONSUMER_WANTS_VERSION=${VERSION})
run("building the consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run("running the consumer" ${WORK_DIR}/build/consumer)

# pkg-config alone: only the installed .pc file says where headers and libraries are.
file(GLOB_RECURSE pc_files ${prefix}/*/messaging_thread_pool.pc)
if(NOT pc_files)
  message(FATAL_ERROR "messaging_thread_pool.pc was not installed under ${prefix}")
endif()
list(GET pc_files 0 pc_file)
get_filename_component(pc_dir ${pc_file} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pc_dir})
set(ENV{CXX} ${CXX})
run("building or running the consumer with pkg-config"
  bash ${SOURCE_DIR}/tests/package/consumer/build-with-pkg-config.sh ${WORK_DIR}/pkg-config)
message(STATUS "installed package works (find_package and pkg-config)")

if(NOT WITH_MPI)
  message(STATUS "no mtp::mpi in this build: the mpi component is not checked")
  return()
endif()

# The core alone: the mpi component is reported missing, naming its package.
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/consumer_mpi
  -B ${WORK_DIR}/build-mpi-missing -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc OR NOT "${out}${err}" MATCHES "component mpi: not installed \\(Debian: messaging-thread-pool-mpi-dev")
  message(FATAL_ERROR "without the mpi component installed, find_package(... COMPONENTS mpi) "
                      "should fail naming messaging-thread-pool-mpi-dev (rc ${rc}):\n${out}\n${err}")
endif()

# The MPI adapter, added to the same prefix.
run("installing the component mtp_mpi_development"
  ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} --component mtp_mpi_development)
run("configuring the MPI consumer against the installed package"
  ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/consumer_mpi -B ${WORK_DIR}/build-mpi
  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release
  -DMTP_CONSUMER_WANTS_VERSION=${VERSION})
run("building the MPI consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/build-mpi)
# The launcher that FindMPI found for the consumer.
file(STRINGS ${WORK_DIR}/build-mpi/CMakeCache.txt mpiexec REGEX "^MPIEXEC_EXECUTABLE:")
string(REGEX REPLACE "^[^=]*=" "" mpiexec "${mpiexec}")
if(mpiexec)
  set(ENV{MPIEXEC} ${mpiexec})
endif()
run("running the MPI consumer on 2 ranks"
  bash ${SOURCE_DIR}/tests/package/consumer_mpi/run.sh ${WORK_DIR}/build-mpi/consumer_mpi)
run("building or running the MPI consumer with pkg-config"
  bash ${SOURCE_DIR}/tests/package/consumer_mpi/build-with-pkg-config.sh ${WORK_DIR}/pkg-config-mpi)
message(STATUS "installed mpi component works (find_package COMPONENTS mpi and pkg-config, 2 ranks)")
