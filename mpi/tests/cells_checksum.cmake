# SPDX-License-Identifier: MIT
# Runs the cells example as a plain loop (--serial) and with 1, 2 and 4 ranks; fails unless
# every run prints the same checksum line (final temperatures and total heat).
# cmake -DMPIEXEC=... -DEXE=... -P cells_checksum.cmake
set(first "")
foreach(mode serial 1 2 4)
  if(mode STREQUAL "serial")
    execute_process(COMMAND ${EXE} --serial OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  else()
    execute_process(COMMAND ${MPIEXEC} -np ${mode} --oversubscribe ${EXE}
                    OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  endif()
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cells (${mode}) failed with ${rc}:\n${out}\n${err}")
  endif()
  string(REGEX MATCH "checksum ([^\n]+)" _ "${out}")
  set(sum "${CMAKE_MATCH_1}")
  if(sum STREQUAL "")
    message(FATAL_ERROR "cells (${mode}) printed no checksum:\n${out}\n${err}")
  endif()
  message(STATUS "cells ${mode}: checksum ${sum}")
  if(first STREQUAL "")
    set(first "${sum}")
  elseif(NOT sum STREQUAL first)
    message(FATAL_ERROR "cells (${mode}): checksum ${sum} differs from ${first} (serial)")
  endif()
endforeach()
