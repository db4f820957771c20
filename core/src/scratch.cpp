#include <mtp/core/thread_pool.hpp>

namespace mtp::impl {

// Reused across blocking calls of one thread so that steady-state batches allocate nothing
// for splitting. A thread runs one blocking call at a time, so one buffer each is enough.
std::vector<std::uint32_t>& scratch_order() {
  thread_local std::vector<std::uint32_t> order;
  return order;
}
std::vector<std::uint32_t>& scratch_counts() {
  thread_local std::vector<std::uint32_t> counts;
  return counts;
}

}  // namespace mtp::impl
