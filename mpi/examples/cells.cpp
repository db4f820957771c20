// SPDX-License-Identifier: MIT
// Items that talk to each other across ranks: heat diffusion on a ring of cells. Each cell is a
// pool item, spread over the ranks by id (cell i and its neighbours i-1 and i+1 live on
// different ranks whenever there are several). Nobody drives the rounds: in round r every
// cell posts its temperature to both neighbours through mtp::mpi::this_pool<cell>(), and a
// cell that has both neighbours' values for its round computes its next temperature and posts
// again, until the last round. Rank 0 creates the cells and starts round 0 with one batch;
// then every rank calls quiesce(), which returns once no post between cells is in flight or
// queued anywhere: every cell has finished. Rank 0 then folds the cells' final states with
// one reduce() (a broadcast to every cell, one message per rank).
//
// The arithmetic is in integers: the heat flowing over an edge is (hot - cold) / 4, computed
// identically by the two cells of the edge, so the total heat is conserved exactly and the
// final temperatures are bit-identical with any number of ranks, and equal to a plain loop
// without any pool (--serial).
//
//   mpirun -np 4 mpi_cells [--cells N] [--rounds N] [--seed N]
//   mpi_cells --serial [--cells N] [--rounds N] [--seed N]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <mtp/mpi/sharded_pool.hpp>

namespace {

// ---- The physics, shared by the cells and by the serial loop ------------------------------

std::int64_t initial_temperature(std::uint64_t id, std::uint64_t seed) {
  std::uint64_t z = seed + (id + 1) * 0x9E3779B97F4A7C15ull;  // splitmix64
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<std::int64_t>((z ^ (z >> 31)) % 1'000'000);  // in millikelvin, say
}

// One explicit step: what flows in from the left minus what flows out to the right. The flux
// over an edge is computed by both of its cells from the same two values, so it cancels exactly.
std::int64_t next_temperature(std::int64_t left, std::int64_t self, std::int64_t right) {
  return self + (left - self) / 4 - (self - right) / 4;
}

// ---- Messages: trivially copyable, so they cross ranks as their bytes ----------------------

struct heat {  // a neighbour's temperature at the start of a round
  mtp::id_t id;    // the cell it goes to
  mtp::id_t from;  // the neighbour that sent it
  std::uint32_t round;
  std::int64_t temperature;
  using response_type = void;
};
struct start {  // begin round 0
  mtp::id_t id;
  using response_type = void;
};
struct cell_state {
  std::uint32_t round;  // rounds done
  std::int64_t temperature;
};
struct status {
  mtp::id_t id;
  using response_type = cell_state;
};

// ---- The item -------------------------------------------------------------------------------

class cell {
 public:
  // Constructor arguments cross ranks too: plain values, never pointers.
  cell(mtp::id_t id, std::uint64_t cells, std::uint32_t rounds, std::uint64_t seed)
      : id_(id), left_((id + cells - 1) % cells), right_((id + 1) % cells), rounds_(rounds),
        temperature_(initial_temperature(id, seed)) {}

  void handle(const start&) {
    started_ = true;
    share();
    advance();  // the neighbours' values for round 0 may be here already
  }

  void handle(const heat& h) {
    // Values may arrive for the next round before this one is complete (a neighbour that got
    // everything it needed is one round ahead): keep them by round. Left and right have their
    // own slots, so the result does not depend on the order of arrival.
    neighbours& in = inbox_[h.round];
    if (h.from == left_) in.left = h.temperature;
    else if (h.from == right_) in.right = h.temperature;
    else throw std::logic_error("heat from a cell that is not a neighbour");
    if (started_) advance();
  }

  cell_state handle(const status&) const { return {round_, temperature_}; }

 private:
  struct neighbours {
    std::optional<std::int64_t> left, right;
  };

  // Posts this round's temperature to both neighbours, wherever they live. this_pool() is the
  // sharded pool running this handler; post never blocks (a blocking send to a neighbour on
  // the same worker would wait for itself).
  void share() {
    if (round_ == rounds_) return;
    auto& pool = mtp::mpi::this_pool<cell>();
    pool.post(heat{left_, id_, round_, temperature_}).value();
    pool.post(heat{right_, id_, round_, temperature_}).value();
  }

  // Steps as long as both neighbours' values for the current round are here.
  void advance() {
    while (round_ < rounds_) {
      const auto it = inbox_.find(round_);
      if (it == inbox_.end() || !it->second.left || !it->second.right) return;
      temperature_ = next_temperature(*it->second.left, temperature_, *it->second.right);
      inbox_.erase(it);
      ++round_;
      share();
    }
  }

  mtp::id_t id_, left_, right_;
  std::uint32_t rounds_;
  std::int64_t temperature_;
  std::uint32_t round_ = 0;
  bool started_ = false;
  std::map<std::uint32_t, neighbours> inbox_;  // by round: at most this one and the next
};

// ---- Driving it -----------------------------------------------------------------------------

struct config {
  std::uint64_t cells = 64;
  std::uint32_t rounds = 100;
  std::uint64_t seed = 42;
  bool serial = false;
};

struct outcome {
  std::uint64_t hash = 1469598103934665603ull;  // FNV-1a over every final temperature, in id order
  std::int64_t total = 0;

  void add(std::int64_t t) {
    for (int k = 0; k < 8; ++k) hash = (hash ^ ((static_cast<std::uint64_t>(t) >> (8 * k)) & 0xFF)) * 1099511628211ull;
    total += t;
  }
};

// The same simulation in a plain loop, without a pool: the reference for the pool's result.
outcome serial(const config& c) {
  std::vector<std::int64_t> t(c.cells), next(c.cells);
  for (std::uint64_t i = 0; i < c.cells; ++i) t[i] = initial_temperature(i, c.seed);
  for (std::uint32_t r = 0; r < c.rounds; ++r) {
    for (std::uint64_t i = 0; i < c.cells; ++i) {
      next[i] = next_temperature(t[(i + c.cells - 1) % c.cells], t[i], t[(i + 1) % c.cells]);
    }
    t.swap(next);
  }
  outcome o;
  for (std::int64_t x : t) o.add(x);
  return o;
}

// Rank 0's part: create the cells (spread over the ranks) and start them.
void start_cells(mtp::mpi::sharded_pool<cell>& pool, const config& c) {
  std::vector<mtp::id_t> ids(c.cells);
  for (std::uint64_t i = 0; i < c.cells; ++i) ids[i] = i;
  for (const auto& r : pool.create_batch(ids, c.cells, c.rounds, c.seed)) r.value();

  std::vector<start> starts(c.cells);
  for (std::uint64_t i = 0; i < c.cells; ++i) starts[i] = {i};
  for (const auto& r : pool.send_batch(starts)) r.value();  // from here the cells drive themselves
}

// Rank 0's part, after quiesce(): every cell's final state, folded in id order by one
// broadcast (one message per rank, whatever the number of cells); each must have done every
// round.
std::optional<outcome> collect(mtp::mpi::sharded_pool<cell>& pool, const config& c) {
  struct tally {
    outcome o;
    std::uint64_t unfinished = 0;
  };
  const tally t = pool.reduce(status{0}, tally{}, [&](tally acc, cell_state s) {
    if (s.round != c.rounds) ++acc.unfinished;
    acc.o.add(s.temperature);
    return acc;
  });
  if (t.unfinished != 0) {
    std::fprintf(stderr, "cells: %llu cells had not done every round after quiesce()\n",
                 static_cast<unsigned long long>(t.unfinished));
    return std::nullopt;
  }
  return t.o;
}

config parse(int argc, char** argv) {
  config c;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::strtoull(argv[++i], nullptr, 10) : 0ull; };
    if (a == "--serial") c.serial = true;
    else if (a == "--cells") c.cells = next();
    else if (a == "--rounds") c.rounds = static_cast<std::uint32_t>(next());
    else if (a == "--seed") c.seed = next();
  }
  return c;
}

int report(const char* mode, int ranks, const config& c, const outcome& o, double seconds) {
  std::int64_t initial = 0;
  for (std::uint64_t i = 0; i < c.cells; ++i) initial += initial_temperature(i, c.seed);
  std::printf("mode %s ranks %d cells %llu rounds %u\n", mode, ranks, static_cast<unsigned long long>(c.cells), c.rounds);
  std::printf("time %.3f s", seconds);
  const unsigned long long posts = 2ull * c.cells * c.rounds;
  if (!c.serial) std::printf(", %llu posts between cells", posts);
  std::printf("\n");
  std::printf("checksum %016llx heat %lld\n", static_cast<unsigned long long>(o.hash), static_cast<long long>(o.total));
  if (o.total != initial) {
    std::fprintf(stderr, "cells: heat not conserved: %lld, was %lld\n", static_cast<long long>(o.total),
                 static_cast<long long>(initial));
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const config c = parse(argc, argv);
  if (c.cells < 3) {  // with fewer, a cell's left and right neighbours are the same cell
    std::fprintf(stderr, "cells: --cells must be at least 3\n");
    return 2;
  }
  if (c.serial) {
    const auto t0 = std::chrono::steady_clock::now();
    const outcome o = serial(c);
    return report("serial", 1, c, o, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  mtp::mpi::environment env(argc, argv);
  mtp::mpi::sharded_options o;
  o.local.workers = 2;
  mtp::mpi::sharded_pool<cell> pool(o);  // collective
  int rc = 0;
  const auto t0 = std::chrono::steady_clock::now();
  if (env.rank() == 0) start_cells(pool, c);
  pool.quiesce();  // collective: every post between cells has landed, on every rank
  if (env.rank() == 0) {
    const std::optional<outcome> out = collect(pool, c);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rc = out ? report("mpi", env.size(), c, *out, seconds) : 1;
  }
  // The other ranks keep serving until rank 0 has read the cells.
  pool.barrier();
  return rc;
}
