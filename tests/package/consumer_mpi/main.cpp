// SPDX-License-Identifier: MIT
// A tiny consumer of the installed MPI adapter, built with find_package (COMPONENTS mpi; see
// CMakeLists.txt here) and with pkg-config alone, and run under mpirun: one sharded pool, an
// item on each rank, a request that travels as bytes and one that goes through cereal.
#include <mtp/mpi/sharded_pool.hpp>

#include <cstdio>
#include <string>
#include <vector>

struct add {  // trivially copyable: crosses ranks as its bytes
  mtp::id_t id;
  long amount;
  using response_type = long;
};
struct note {  // a string: crosses ranks through cereal
  mtp::id_t id;
  std::string text;
  using response_type = std::string;
  template <class A>
  void serialize(A& a) { a(id, text); }
};
struct where {
  mtp::id_t id;
  using response_type = int;
};

class account {
 public:
  account(mtp::id_t, long start) : total_(start) {}
  long handle(const add& a) { return total_ += a.amount; }
  std::string handle(const note& n) { return n.text + " seen"; }
  int handle(const where&) const { return mtp::mpi::this_pool<account>().rank(); }

 private:
  long total_;
};

int main(int argc, char** argv) {
  mtp::mpi::environment env(argc, argv);
  bool ok = true;
  {
    mtp::mpi::sharded_pool<account> pool({.local = {.workers = 1}});
    const int ranks = pool.ranks();
    if (pool.rank() == 0) {
      std::vector<mtp::id_t> ids;
      for (int r = 0; r < ranks; ++r) ids.push_back(static_cast<mtp::id_t>(r));  // one per rank
      for (auto& created : pool.create_batch(ids, 100L)) created.value();
    }
    pool.barrier();
    // Every rank sends to the item of the next rank (itself with one rank).
    const auto target = static_cast<mtp::id_t>((pool.rank() + 1) % ranks);
    ok = pool.send(where{target}) == pool.rank_of(target) &&
         pool.send(note{target, "hello"}) == "hello seen";
    pool.barrier();
    if (pool.rank() == 0) ok = ok && pool.send(add{target, 1}) == 101;
    pool.barrier();
  }  // collective shutdown
  std::printf("rank %d of %d: %s\n", env.rank(), env.size(), ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
