// SPDX-License-Identifier: MIT
/// \file
/// messaging_thread_pool for tests: everything in <mtp/mtp.hpp>, plus mtp::mock_pool, a
/// pool stand-in without threads for testing code written against mtp::sends.
#pragma once

#include <mtp/core/mock_pool.hpp>
#include <mtp/mtp.hpp>
