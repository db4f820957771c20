// messaging_thread_pool: the one header an application includes.
#pragma once

#include <mtp/affinity/placement.hpp>
#include <mtp/core/batch.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/mock_pool.hpp>
#include <mtp/core/options.hpp>
#include <mtp/core/result.hpp>
#include <mtp/core/stats.hpp>
#include <mtp/core/this_worker.hpp>
#include <mtp/core/thread_pool.hpp>
