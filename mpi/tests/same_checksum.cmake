# SPDX-License-Identifier: MIT
# Runs an example once without MPI (its reference: a plain pool, or a plain loop) and then with
# 1, 2, 3 and 4 ranks; fails unless every run exits 0 and prints the same checksum line.
# cmake -DNAME=... -DMPIEXEC=... -DEXE=... -DREFERENCE="--flag" [-DARGS="--a 1 --b 2"] -P same_checksum.cmake
separate_arguments(args UNIX_COMMAND "${ARGS}")
separate_arguments(reference_args UNIX_COMMAND "${REFERENCE}")
set(first "")
foreach(mode without-mpi 1 2 3 4)
  if(mode STREQUAL "without-mpi")
    execute_process(COMMAND ${EXE} ${reference_args} ${args} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  else()
    execute_process(COMMAND ${MPIEXEC} -np ${mode} --oversubscribe ${EXE} ${args}
                    OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  endif()
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NAME} (${mode}) failed with ${rc}:\n${out}\n${err}")
  endif()
  string(REGEX MATCH "checksum ([^\n]+)" _ "${out}")
  set(sum "${CMAKE_MATCH_1}")
  if(sum STREQUAL "")
    message(FATAL_ERROR "${NAME} (${mode}) printed no checksum:\n${out}\n${err}")
  endif()
  message(STATUS "${NAME} ${mode}: checksum ${sum}")
  if(first STREQUAL "")
    set(first "${sum}")
  elseif(NOT sum STREQUAL first)
    message(FATAL_ERROR "${NAME} (${mode}): checksum ${sum} differs from ${first} (${REFERENCE})")
  endif()
endforeach()
