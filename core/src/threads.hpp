// SPDX-License-Identifier: MIT
// A worker's std::thread and a pool's shutdown mutex. They live here, behind pointers in
// worker_base and pool_core, so that the public headers include neither <thread> nor <mutex>.
#pragma once

#include <mutex>
#include <thread>

namespace mtp::impl {

struct worker_thread {
  std::thread thread;
};

struct pool_mutex {
  std::mutex mutex;
};

}  // namespace mtp::impl
