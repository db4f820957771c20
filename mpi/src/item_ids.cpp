// SPDX-License-Identifier: MIT
// The ids of a rank's items, for broadcasts (impl/item_ids.hpp).
#include <mtp/mpi/impl/item_ids.hpp>

#include <algorithm>
#include <iterator>
#include <utility>

namespace mtp::mpi::impl {

void item_ids::note_created(id_t id) {
  std::lock_guard lock(m_);
  created_.push_back(id);
  sorted_ = false;
}

std::vector<result<void>> item_ids::note_created(std::span<const id_t> ids, std::vector<result<void>>&& rs) {
  return note(created_, ids, std::move(rs));
}

std::vector<result<void>> item_ids::note_removed(std::span<const id_t> ids, std::vector<result<void>>&& rs) {
  return note(removed_, ids, std::move(rs));
}

std::vector<result<void>> item_ids::note(std::vector<id_t>& list, std::span<const id_t> ids,
                                         std::vector<result<void>>&& rs) {
  std::lock_guard lock(m_);
  for (std::size_t i = 0; i < rs.size(); ++i) {
    if (rs[i].has_value()) list.push_back(ids[i]);
  }
  sorted_ = false;
  return std::move(rs);
}

std::vector<id_t> item_ids::local_ids() {
  std::lock_guard lock(m_);
  if (sorted_) return created_;  // unchanged since the last broadcast
  sorted_ = true;
  std::sort(created_.begin(), created_.end());
  std::sort(removed_.begin(), removed_.end());
  std::vector<id_t> alive;
  alive.reserve(created_.size() - std::min(created_.size(), removed_.size()));
  std::set_difference(created_.begin(), created_.end(), removed_.begin(), removed_.end(), std::back_inserter(alive));
  created_ = alive;
  removed_.clear();
  return alive;
}

}  // namespace mtp::mpi::impl
