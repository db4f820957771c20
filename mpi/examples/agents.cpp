// SPDX-License-Identifier: MIT
// An agent-based simulation over MPI ranks: agents are pool items spread over the ranks by id;
// each step is one batch (every agent moves), then one batch of meetings (agents that share a
// grid cell meet, each told the other's energy), all from rank 0. The result is a checksum of
// every agent's state, bit-identical with 1, 2 or 4 ranks and with a plain single-process pool
// (--plain): the order of the messages each agent receives is fixed by the batches, whatever
// rank the agent lives on.
//
//   mpirun -np 4 mpi_agents [--agents N] [--steps N] [--grid N]
//   mpi_agents --plain [--agents N] [--steps N] [--grid N]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <mtp/core/thread_pool.hpp>
#include <mtp/mpi/sharded_pool.hpp>

namespace {

std::uint64_t splitmix(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct where_now {  // an agent's place and energy after a step
  std::int32_t x, y;
  std::int64_t energy;
};
struct step {
  mtp::id_t id;
  std::uint32_t t;
  using response_type = where_now;
};
struct meet {
  mtp::id_t id;
  mtp::id_t other;
  std::int64_t other_energy;
  std::uint32_t t;
  using response_type = void;
};
struct look {
  mtp::id_t id;
  using response_type = where_now;
};

class agent {
 public:
  agent(mtp::id_t id, std::int32_t grid, std::uint64_t seed) : rng_(seed ^ (id * 0xD1B54A32D192ED03ull)), grid_(grid) {
    x_ = static_cast<std::int32_t>(splitmix(rng_) % static_cast<std::uint64_t>(grid));
    y_ = static_cast<std::int32_t>(splitmix(rng_) % static_cast<std::uint64_t>(grid));
  }
  where_now handle(const step& s) {
    const std::uint64_t r = splitmix(rng_);
    x_ = (x_ + static_cast<std::int32_t>(r % 3) - 1 + grid_) % grid_;
    y_ = (y_ + static_cast<std::int32_t>((r >> 8) % 3) - 1 + grid_) % grid_;
    energy_ += static_cast<std::int64_t>((r >> 16) % 5) - 2 + static_cast<std::int64_t>(s.t % 2);
    return {x_, y_, energy_};
  }
  void handle(const meet& m) {
    // The richer gives a tenth of the difference; a little noise from both ids and the step.
    const std::int64_t diff = m.other_energy - energy_;
    energy_ += diff / 10 + static_cast<std::int64_t>((m.other * 31 + m.t) % 3) - 1;
    rng_ ^= static_cast<std::uint64_t>(m.other_energy) * 0x9E3779B97F4A7C15ull;
  }
  where_now handle(const look&) const { return {x_, y_, energy_}; }

 private:
  std::uint64_t rng_;
  std::int32_t grid_;
  std::int32_t x_ = 0, y_ = 0;
  std::int64_t energy_ = 100;
};

struct config {
  std::uint64_t agents = 2000;
  std::uint32_t steps = 50;
  std::int32_t grid = 64;
  std::uint64_t seed = 42;
  bool plain = false;
};

// The driver, the same for both pools: create, then per step a move batch and a meeting batch.
template <class Pool>
std::uint64_t simulate(Pool& pool, const config& c) {
  std::vector<mtp::id_t> ids(c.agents);
  for (std::uint64_t i = 0; i < c.agents; ++i) ids[i] = i;
  for (const auto& r : pool.create_batch(ids, c.grid, c.seed)) r.value();
  std::vector<step> moves(c.agents);
  std::vector<std::pair<std::int64_t, mtp::id_t>> cells(c.agents);  // (cell, id)
  std::vector<meet> meetings;
  for (std::uint32_t t = 0; t < c.steps; ++t) {
    for (std::uint64_t i = 0; i < c.agents; ++i) moves[i] = {i, t};
    const auto moved = pool.send_batch(moves);
    std::vector<std::int64_t> energy(c.agents);
    for (std::uint64_t i = 0; i < c.agents; ++i) {
      const where_now& w = moved[i].value();
      cells[i] = {static_cast<std::int64_t>(w.y) * c.grid + w.x, i};
      energy[i] = w.energy;
    }
    std::sort(cells.begin(), cells.end());
    meetings.clear();
    for (std::size_t a = 0; a < cells.size();) {
      std::size_t b = a;
      while (b < cells.size() && cells[b].first == cells[a].first) ++b;
      for (std::size_t i = a; i < b; ++i) {  // everyone in the cell meets everyone else there
        for (std::size_t j = a; j < b; ++j) {
          if (i != j) meetings.push_back({cells[i].second, cells[j].second, energy[cells[j].second], t});
        }
      }
      a = b;
    }
    for (const auto& r : pool.send_batch(meetings)) r.value();
  }
  std::vector<look> looks(c.agents);
  for (std::uint64_t i = 0; i < c.agents; ++i) looks[i] = {i};
  std::uint64_t h = 1469598103934665603ull;
  const auto mix = [&](std::uint64_t v) {
    for (int k = 0; k < 8; ++k) h = (h ^ ((v >> (8 * k)) & 0xFF)) * 1099511628211ull;
  };
  for (const auto& r : pool.send_batch(looks)) {
    const where_now& w = r.value();
    mix(static_cast<std::uint64_t>(w.x));
    mix(static_cast<std::uint64_t>(w.y));
    mix(static_cast<std::uint64_t>(w.energy));
  }
  return h;
}

config parse(int argc, char** argv) {
  config c;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::strtoull(argv[++i], nullptr, 10) : 0ull; };
    if (a == "--plain") c.plain = true;
    else if (a == "--agents") c.agents = next();
    else if (a == "--steps") c.steps = static_cast<std::uint32_t>(next());
    else if (a == "--grid") c.grid = static_cast<std::int32_t>(next());
    else if (a == "--seed") c.seed = next();
  }
  return c;
}

void report(const char* mode, int ranks, const config& c, std::uint64_t sum, double seconds) {
  std::printf("mode %s ranks %d agents %llu steps %u grid %d\n", mode, ranks, static_cast<unsigned long long>(c.agents),
              c.steps, c.grid);
  std::printf("time %.3f s, %.1f steps/s\n", seconds, c.steps / seconds);
  std::printf("checksum %016llx\n", static_cast<unsigned long long>(sum));
}

}  // namespace

int main(int argc, char** argv) {
  const config c = parse(argc, argv);
  mtp::pool_options local;
  local.workers = 2;
  if (c.plain) {
    mtp::thread_pool<agent> pool(local);
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t sum = simulate(pool, c);
    report("plain", 1, c, sum, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return 0;
  }
  mtp::mpi::environment env(argc, argv);
  mtp::mpi::sharded_options o;
  o.local = local;
  mtp::mpi::sharded_pool<agent> pool(o);
  pool.barrier();
  if (env.rank() == 0) {  // rank 0 drives; the others serve their agents
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t sum = simulate(pool, c);
    report("mpi", env.size(), c, sum, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  pool.barrier();
  return 0;
}
