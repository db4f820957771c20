# SPDX-License-Identifier: MIT
# Runs the compiler on one snippet and checks the outcome (run by CTest; see
# mtp_add_compile_check in ../CMakeLists.txt).
#   -DCXX=compiler -DSOURCE=file -DARGS=a|b|c   compiler arguments, '|'-separated
#   -DEXPECT=text   the compile must fail and its diagnostics contain `text` (verbatim)
#   (no EXPECT)     the compile must succeed with no diagnostics at all
string(REPLACE "|" ";" _args "${ARGS}")
execute_process(COMMAND ${CXX} ${_args} ${SOURCE}
  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
if(DEFINED EXPECT AND NOT EXPECT STREQUAL "")
  if(_rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} compiled, but it must fail with: ${EXPECT}")
  endif()
  string(FIND "${_out}" "${EXPECT}" _at)
  if(_at EQUAL -1)
    message(FATAL_ERROR "${SOURCE} failed without the expected text: ${EXPECT}\n--- diagnostics ---\n${_out}")
  endif()
else()
  if(NOT _rc EQUAL 0 OR NOT _out STREQUAL "")
    message(FATAL_ERROR "${SOURCE} must compile cleanly\n--- diagnostics ---\n${_out}")
  endif()
endif()
