// SPDX-License-Identifier: MIT
/// \file
/// messaging_thread_pool: the one header an application includes. It declares the pool, its
/// messages, results, options and batches, the capability concepts code is written against
/// (mtp::sends, mtp::creates, mtp::pool_of, ...), placement and placement config files
/// (mtp::read_placement_config), and the version macros. The mock pool is for tests and
/// comes with <mtp/testing.hpp>.
#pragma once

#include <mtp/affinity/config.hpp>
#include <mtp/affinity/placement.hpp>
#include <mtp/core/async_slot.hpp>
#include <mtp/core/awaitable.hpp>
#include <mtp/core/batch.hpp>
#include <mtp/core/concepts.hpp>
#include <mtp/core/forwarding.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/options.hpp>
#include <mtp/core/result.hpp>
#include <mtp/core/stats.hpp>
#include <mtp/core/this_worker.hpp>
#include <mtp/core/thread_pool.hpp>
#include <mtp/core/timer.hpp>
#include <mtp/version.hpp>
