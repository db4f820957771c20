// SPDX-License-Identifier: MIT
// The ids of the items a rank holds, as created and removed through its sharded pool: what a
// broadcast sends to. Its functions are in src/item_ids.cpp.
#pragma once

#include <mutex>
#include <span>
#include <vector>

#include <mtp/core/result.hpp>

namespace mtp::mpi::impl {

// Appended to as items are created and removed through the pool (amortised O(1) each);
// local_ids() sorts both lists and takes the multiset difference (an id removed and created
// again appears twice in created_ and once in removed_). Thread-safe.
class item_ids {
 public:
  void note_created(id_t id);
  // Note the ids whose create (remove) succeeded; pass the results on.
  std::vector<result<void>> note_created(std::span<const id_t> ids, std::vector<result<void>>&& rs);
  std::vector<result<void>> note_removed(std::span<const id_t> ids, std::vector<result<void>>&& rs);
  // The rank's items now, in ascending id order.
  std::vector<id_t> local_ids();

 private:
  // Appends to `list` the ids whose create or remove succeeded; passes the results on.
  std::vector<result<void>> note(std::vector<id_t>& list, std::span<const id_t> ids, std::vector<result<void>>&& rs);

  std::mutex m_;
  std::vector<id_t> created_;  // under m_; see local_ids()
  std::vector<id_t> removed_;
  bool sorted_ = true;  // created_ is sorted and removed_ empty
};

}  // namespace mtp::mpi::impl
