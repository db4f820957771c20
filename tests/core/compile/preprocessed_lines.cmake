# SPDX-License-Identifier: MIT
# Preprocesses one snippet and fails when the output has more lines than the limit: a size
# check of what the headers cost every translation unit, not a timing (run by CTest; see
# ../CMakeLists.txt). The count is that of `CXX ARGS -E SOURCE | wc -l`.
#   -DCXX=compiler -DSOURCE=file -DARGS=a|b|c   compiler arguments, '|'-separated
#   -DLIMIT=lines   the most lines the preprocessed output may have
string(REPLACE "|" ";" _args "${ARGS}")
execute_process(COMMAND ${CXX} ${_args} -E ${SOURCE}
  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} did not preprocess\n--- diagnostics ---\n${_err}")
endif()
# Lines = newlines: the length of the output minus its length without them.
string(LENGTH "${_out}" _with)
string(REPLACE "\n" "" _without "${_out}")
string(LENGTH "${_without}" _rest)
math(EXPR _lines "${_with} - ${_rest}")
if(_lines GREATER LIMIT)
  message(FATAL_ERROR "${SOURCE} preprocesses to ${_lines} lines, more than the limit of ${LIMIT}: "
                      "a public header now includes more than it did (BENCHMARKS.md, \"Compile cost\")")
endif()
message("${SOURCE} preprocesses to ${_lines} lines (limit ${LIMIT})")
