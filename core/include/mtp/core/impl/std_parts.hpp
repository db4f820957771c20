// SPDX-License-Identifier: MIT
// Internals: the parts of <chrono>, <memory>, <functional> and <ranges> that the library's
// headers use (durations, clocks and time points; unique_ptr and make_unique; function; the
// range concepts and range access), without the rest. libstdc++ keeps these parts in smaller
// headers of its own, and its full headers bring much that the library's headers never use:
// <chrono> the calendar and time-zone I/O (with <sstream>), <memory> the shared_ptr atomics
// and the parallel algorithms, <functional> the searchers (with <unordered_map>, <array> and
// the algorithms), <ranges> every view. Together about 23,000 preprocessed lines in every
// translation unit that includes <mtp/mtp.hpp> with g++ 12 (BENCHMARKS.md, "Compile cost").
// With another standard library, or a libstdc++ without those headers, the standard headers
// themselves are included. Code that uses more of them than the library's API includes them
// itself. Do not include directly.
#pragma once

#include <version>  // names the standard library (__GLIBCXX__)

#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>) && __has_include(<bits/unique_ptr.h>) && \
    __has_include(<bits/std_function.h>) && __has_include(<bits/ranges_base.h>)
#include <initializer_list>
#include <bits/chrono.h>         // duration, time_point, the clocks, duration_cast, chrono_literals
#include <bits/stl_iterator.h>   // what <bits/ranges_base.h> needs before it
#include <bits/ranges_base.h>    // ranges::range, input_range, sized_range, range_value_t, size, data
#include <bits/std_function.h>   // function
#include <bits/unique_ptr.h>     // unique_ptr, make_unique
#else
#include <chrono>
#include <functional>
#include <memory>
#include <ranges>
#endif
