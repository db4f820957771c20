// SPDX-License-Identifier: MIT
// Benchmarks of mtp::mpi::sharded_pool beside plain MPI doing the same bytes, in the same run.
//
//   mpirun -np 2 mpi_bench     round trip (ranks 0 and 1) and the batch
//   mpirun -np 4 mpi_bench     the batch over 4 ranks (the round trip still uses ranks 0, 1)
//
// Then, with at least 2 ranks, comparisons taken as the median of repetitions, the two sides
// interleaved in each repetition (the spread is the lowest and highest repetition):
//   - a 16 MiB trivially copyable request (rank 0 -> item on rank 1, send_batch) beside an
//     MPI_Send + MPI_Recv round trip of the same bytes, and the same 16 MiB through cereal;
//   - one batch of 100,000 small requests over every rank, and the same requests split over
//     the ranks sent at once, beside a plain mtp::thread_pool running the same requests, with
//     the page faults of the one batch and of the plain pool's (every rank's together);
//   - thread hand-offs and context switches (getrusage) per round trip beside those of the
//     MPI ping-pong.
// Then, on a second pool of 10,000 items spread over the ranks (created once):
//   - pool.reduce over every item from rank 0, beside a send_batch of the same 10,000
//     per-item requests (ids 0..N-1) built and folded by the caller;
//   - pool.quiesce() on an idle pool beside pool.barrier(), and a chain of 1,000 hops from
//     item to item (id + 1) % N, each posted by the item's handler through this_pool, from
//     its start to quiesce()'s return beside the time the chain took (its last hop's time).
// Options: --iters N (round trips, 5000), --batch N and --items N (the batch per rank, 10000
// over 1000 items), --big-batch N (100000), --reps N (repetitions of the comparisons, 15),
// --large-iters N (16 MiB round trips per repetition, 4), --coll-items N (10000), --hops N
// (1000). --count FORM (none, reduce, batch, quiesce, barrier, chain) runs only FORM,
// --count-reps times (10), on the second pool: with MTP_MPI_STATS=1, the messages each rank
// sent, printed at exit, less those of --count none, are FORM's. --lifecycle N runs only remote
// creation and removal: rank 0 creates N items that live on the other ranks (one
// create_batch), removes them (one remove_batch), then creates 1,000 of them one create at a
// time (and removes them), --reps times; the medians. --big-batch-only runs only the batch of
// --big-batch requests beside the plain pool (say, under a profiler); --round-trip-only only
// the round trip.
//
// Baselines call MPI on MPI_COMM_WORLD from the main thread while the communication thread
// serves the pool on its own communicators, so the environment asks for MPI_THREAD_MULTIPLE.
#include <mpi.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <mtp/core/thread_pool.hpp>
#include <mtp/mpi/sharded_pool.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

struct add {
  mtp::id_t id;
  std::int64_t amount;
  using response_type = std::int64_t;
};
struct echo {
  mtp::id_t id;
  std::uint64_t payload[6];
  using response_type = std::uint64_t;
};
constexpr std::size_t k_large = std::size_t{16} << 20;
// 16 MiB, trivially copyable: crosses ranks as its bytes. Never on a stack: built in a vector.
struct large {
  mtp::id_t id;
  std::array<std::uint8_t, k_large> bytes;
  using response_type = std::uint64_t;
};
// The same 16 MiB through cereal.
struct large_cereal {
  mtp::id_t id;
  std::vector<std::uint8_t> bytes;
  using response_type = std::uint64_t;
  template <class A>
  void serialize(A& a) { a(id, bytes); }
};

// A small checksum that reads one byte of every page and the last: the item's answer to a
// large request, computed by the MPI baseline's receiver too.
std::uint64_t checksum(const std::uint8_t* p, std::size_t n) {
  std::uint64_t s = n;
  for (std::size_t i = 0; i < n; i += 4096) s = s * 31 + p[i];
  return s * 31 + p[n - 1];
}
void fill_pattern(std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(i * 131 + (i >> 12));
}

struct counter {
  counter(mtp::id_t, std::int64_t start) : total(start) {}
  std::int64_t handle(const add& a) { return total += a.amount; }
  std::uint64_t handle(const echo& e) { return e.payload[0] + static_cast<std::uint64_t>(total); }
  std::uint64_t handle(const large& l) { return checksum(l.bytes.data(), l.bytes.size()); }
  std::uint64_t handle(const large_cereal& l) { return checksum(l.bytes.data(), l.bytes.size()); }
  std::int64_t total;
};

double seconds_since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

// The largest of every rank's value (the slowest rank sets the time).
double max_all(double v) {
  double out = 0;
  MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

constexpr std::size_t k_header = sizeof(mtp::mpi::impl::header);
volatile std::uint64_t g_sink = 0;  // keeps measured copies from being optimised away

// The median of repetitions, with the lowest and highest.
struct spread {
  double median, lo, hi;
};
spread summarise(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  if (n == 0) return {0, 0, 0};
  return {n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v.front(), v.back()};
}

// Context switches of the whole process so far (every thread: caller, communication thread,
// workers): voluntary (the thread blocked) and involuntary (preempted; a sched_yield that gave
// the CPU away counts here too).
struct switches {
  double voluntary, involuntary;
};
switches context_switches() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return {static_cast<double>(u.ru_nvcsw), static_cast<double>(u.ru_nivcsw)};
}

// Page faults of the whole process so far that needed no I/O: first touches of memory the
// allocator has just taken from the system (or given back and taken again).
double minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_minflt);
}

// The sum of every rank's value.
double sum_all(double v) {
  double out = 0;
  MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return out;
}

// Ranks other than 0 wait here, without taking a CPU, while rank 0 measures on its own;
// rank 0 lets them go with release_others. On MPI_COMM_WORLD, from the main thread.
constexpr int k_release_tag = 99;
void wait_for_rank0() {
  char token = 0;
  MPI_Request rq = MPI_REQUEST_NULL;
  MPI_Irecv(&token, 1, MPI_BYTE, 0, k_release_tag, MPI_COMM_WORLD, &rq);
  for (int done = 0;;) {
    MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
    if (done) return;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}
void release_others(int ranks) {
  char token = 1;
  for (int r = 1; r < ranks; ++r) MPI_Send(&token, 1, MPI_BYTE, r, k_release_tag, MPI_COMM_WORLD);
}

// Thread hand-offs in one remote round trip, counted by the engine (impl::progress_counts):
// a message sent by a thread other than the one that queued it (the communication thread, for
// a caller or worker that found the progress lock taken) is one; a message delivered by the
// communication thread is one (a request to its worker, a reply to its caller); a request
// delivered by a caller driving progress is one too (it goes to a worker), while a reply it
// takes itself is not. At best 1: rank 1's communication thread hands the request to the
// item's worker; the caller sends its request and takes its reply, the worker sends its reply.
// Up to 4 (as before callers and workers made progress themselves): caller -> rank 0's
// communication thread -> (MPI) -> rank 1's -> worker -> rank 1's -> (MPI) -> rank 0's ->
// caller. The ping-pong has none: each rank's main thread sends and receives itself.
double handoffs_since(const mtp::mpi::impl::progress_counts& a, int rank) {
  const mtp::mpi::impl::progress_counts b = mtp::mpi::impl::progress_counts_now();
  const double handed_sends = static_cast<double>(b.handed_over - a.handed_over);
  const double by_caller = static_cast<double>(b.delivered_by_caller - a.delivered_by_caller);
  const double by_comm = static_cast<double>(b.delivered - a.delivered) - by_caller;
  // Rank 0 receives only replies (taken by the caller itself, or handed to it); rank 1 only
  // requests, each handed to a worker whoever delivers it.
  return handed_sends + by_comm + (rank == 0 ? 0.0 : by_caller);
}

void round_trip(mtp::mpi::sharded_pool<counter>& pool, int rank, int iters) {
  // Bytes on the wire for one request and its reply.
  const int req_bytes = static_cast<int>(k_header + sizeof(echo));
  const int rep_bytes = static_cast<int>(k_header + 1 + sizeof(std::uint64_t));
  double pool_ns = 0, mpi_ns = 0;
  // Per round trip of this rank's process, 5 per repetition: the pool's context switches
  // voluntary and involuntary, the ping-pong's voluntary and involuntary, the pool's thread
  // hand-offs.
  constexpr std::size_t k_figures = 5;
  std::vector<double> csw;
  for (int rep = 0; rep < 3; ++rep) {
    double c[k_figures] = {0, 0, 0, 0, 0};
    // The pool's own barrier: a rank waiting inside an MPI call would compete with the
    // communication thread for MPI's progress lock (MPI_THREAD_MULTIPLE).
    pool.barrier();
    echo e{1, {1, 2, 3, 4, 5, 6}};
    if (rank == 0) {
      for (int i = 0; i < 200; ++i) (void)pool.send(e);  // warm up
    }
    pool.barrier();  // rank 1 counts its context switches over the timed loop only
    const switches s0 = context_switches();
    const mtp::mpi::impl::progress_counts h0 = mtp::mpi::impl::progress_counts_now();
    if (rank == 0) {
      const auto t0 = clock_type::now();
      for (int i = 0; i < iters; ++i) (void)pool.send(e);
      const double ns = seconds_since(t0) * 1e9 / iters;
      pool_ns = rep == 0 ? ns : std::min(pool_ns, ns);
    }
    if (rank != 0) pool.barrier();
    const switches s1 = context_switches();
    c[4] = handoffs_since(h0, rank) / iters;
    if (rank == 0) pool.barrier();
    c[0] = (s1.voluntary - s0.voluntary) / iters;
    c[1] = (s1.involuntary - s0.involuntary) / iters;
    std::vector<char> a(static_cast<std::size_t>(req_bytes)), b(static_cast<std::size_t>(rep_bytes));
    if (rank <= 1) {
      auto t0 = clock_type::now();
      switches m0{};
      for (int i = 0; i < iters + 200; ++i) {
        if (i == 200) {
          m0 = context_switches();
          t0 = clock_type::now();
        }
        if (rank == 0) {
          MPI_Send(a.data(), req_bytes, MPI_BYTE, 1, 7, MPI_COMM_WORLD);
          MPI_Recv(b.data(), rep_bytes, MPI_BYTE, 1, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
          MPI_Recv(a.data(), req_bytes, MPI_BYTE, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          MPI_Send(b.data(), rep_bytes, MPI_BYTE, 0, 8, MPI_COMM_WORLD);
        }
      }
      const double ns = seconds_since(t0) * 1e9 / iters;
      const switches m1 = context_switches();
      mpi_ns = rep == 0 ? ns : std::min(mpi_ns, ns);
      c[2] = (m1.voluntary - m0.voluntary) / iters;
      c[3] = (m1.involuntary - m0.involuntary) / iters;
    }
    csw.insert(csw.end(), c, c + k_figures);
  }
  // Rank 1's figures to rank 0.
  std::vector<double> far(csw.size(), 0.0);
  if (rank == 1) {
    MPI_Send(csw.data(), static_cast<int>(csw.size()), MPI_DOUBLE, 0, 9, MPI_COMM_WORLD);
  } else if (rank == 0) {
    MPI_Recv(far.data(), static_cast<int>(far.size()), MPI_DOUBLE, 1, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  }
  if (rank == 0) {
    std::printf("round trip (rank 0 -> item on rank 1, %d + %d bytes): sharded_pool %.0f ns, MPI ping-pong %.0f ns, "
                "ratio %.2fx\n",
                req_bytes, rep_bytes, pool_ns, mpi_ns, pool_ns / mpi_ns);
    auto med = [](const std::vector<double>& v, std::size_t k) {  // the k-th figure of every repetition
      std::vector<double> x;
      for (std::size_t i = k; i < v.size(); i += k_figures) x.push_back(v[i]);
      return summarise(x);
    };
    std::vector<double> both;  // hand-offs per round trip on both ranks, each repetition
    for (std::size_t i = 4; i < csw.size(); i += k_figures) both.push_back(csw[i] + far[i]);
    const spread h = summarise(both), h0 = med(csw, 4), h1 = med(far, 4);
    std::printf("  thread hand-offs per round trip (median of %zu [lowest - highest]): %.2f [%.2f - %.2f] "
                "(rank 0 %.2f, rank 1 %.2f); MPI ping-pong 0\n",
                both.size(), h.median, h.lo, h.hi, h0.median, h1.median);
    std::printf("  context switches per round trip (getrusage, whole process, median of %zu [lowest - highest]):\n",
                csw.size() / k_figures);
    const char* names[2] = {"rank 0 (caller)", "rank 1 (item)  "};
    for (int w = 0; w < 2; ++w) {
      const std::vector<double>& v = w == 0 ? csw : far;
      const spread pv = med(v, 0), pi = med(v, 1), mv = med(v, 2), mi = med(v, 3);
      std::printf("    %s sharded_pool %.2f voluntary [%.2f - %.2f] + %.2f involuntary [%.2f - %.2f]; "
                  "MPI ping-pong %.2f [%.2f - %.2f] + %.2f [%.2f - %.2f]\n",
                  names[w], pv.median, pv.lo, pv.hi, pi.median, pi.lo, pi.hi, mv.median, mv.lo, mv.hi, mi.median, mi.lo,
                  mi.hi);
    }
  }
}

// A 16 MiB request from rank 0 to an item on rank 1 and its checksum back, beside MPI_Send of
// the same 16 MiB and MPI_Recv of a reply of the pool's size; then the same through cereal.
// Each repetition runs `iters` round trips of each, in turn (the first of the three turns).
void large_round_trip(mtp::mpi::sharded_pool<counter>& pool, int rank, int reps, int iters) {
  const int rep_bytes = static_cast<int>(k_header + 1 + sizeof(std::uint64_t));
  std::vector<large> req(1);  // on the heap: `std::vector<large>{...}` would build it on the stack first
  std::vector<large_cereal> creq(1);
  std::vector<std::uint8_t> raw(k_large), copy(k_large);
  std::vector<char> reply(static_cast<std::size_t>(rep_bytes));
  std::uint64_t expect = 0;
  if (rank == 0) {
    req[0].id = 1;
    fill_pattern(req[0].bytes.data(), k_large);
    creq[0].id = 1;
    creq[0].bytes.assign(req[0].bytes.begin(), req[0].bytes.end());
    std::copy(req[0].bytes.begin(), req[0].bytes.end(), raw.begin());
    expect = checksum(raw.data(), k_large);
  }
  bool wrong = false;
  auto pool_trips = [&](auto& requests, int n) {
    pool.barrier();
    const auto t0 = clock_type::now();
    if (rank == 0) {
      for (int i = 0; i < n; ++i) {
        auto rs = pool.send_batch(requests);
        if (!rs[0].has_value() || rs[0].value() != expect) wrong = true;
      }
    }
    const double s = seconds_since(t0);
    pool.barrier();
    return s;
  };
  auto mpi_trips = [&](int n) {
    pool.barrier();
    const auto t0 = clock_type::now();
    for (int i = 0; i < n; ++i) {
      if (rank == 0) {
        MPI_Send(raw.data(), static_cast<int>(k_large), MPI_BYTE, 1, 10, MPI_COMM_WORLD);
        MPI_Recv(reply.data(), rep_bytes, MPI_BYTE, 1, 11, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        std::uint64_t sum = 0;
        std::memcpy(&sum, reply.data() + k_header + 1, sizeof sum);
        if (sum != expect) wrong = true;
      } else if (rank == 1) {
        MPI_Recv(raw.data(), static_cast<int>(k_large), MPI_BYTE, 0, 10, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        const std::uint64_t sum = checksum(raw.data(), k_large);
        std::memcpy(reply.data() + k_header + 1, &sum, sizeof sum);
        MPI_Send(reply.data(), rep_bytes, MPI_BYTE, 0, 11, MPI_COMM_WORLD);
      }
    }
    return seconds_since(t0);
  };
  // Warm up: buffers, page faults, the operations' first use.
  (void)pool_trips(req, 1);
  (void)mpi_trips(1);
  (void)pool_trips(creq, 1);
  std::vector<double> pool_ms, mpi_ms, cereal_ms, ratio, cereal_ratio, memcpy_ms;
  for (int rep = 0; rep < reps; ++rep) {
    double p = 0, m = 0, c = 0;
    for (int k = 0; k < 3; ++k) {  // the order turns each repetition
      switch ((k + rep) % 3) {
        case 0: p = pool_trips(req, iters) * 1e3 / iters; break;
        case 1: m = mpi_trips(iters) * 1e3 / iters; break;
        default: c = pool_trips(creq, iters) * 1e3 / iters; break;
      }
    }
    pool_ms.push_back(p);
    mpi_ms.push_back(m);
    cereal_ms.push_back(c);
    ratio.push_back(p / m);
    cereal_ratio.push_back(c / m);
    if (rank == 0) {  // one copy of the 16 MiB on this rank, for scale
      const auto t0 = clock_type::now();
      std::memcpy(copy.data(), raw.data(), k_large);
      memcpy_ms.push_back(seconds_since(t0) * 1e3);
      g_sink = g_sink + copy[k_large / 2];
    }
  }
  if (rank == 0) {
    const spread p = summarise(pool_ms), m = summarise(mpi_ms), c = summarise(cereal_ms), r = summarise(ratio),
                 cr = summarise(cereal_ratio), mc = summarise(memcpy_ms);
    std::printf("large request (rank 0 -> item on rank 1, 16 MiB + %zu bytes there, %d bytes back), median of %d x %d "
                "round trips [lowest - highest]:\n",
                k_header + sizeof(mtp::id_t), rep_bytes, reps, iters);
    std::printf("  sharded_pool, trivially copyable  %8.2f ms  [%.2f - %.2f]\n", p.median, p.lo, p.hi);
    std::printf("  MPI_Send + MPI_Recv               %8.2f ms  [%.2f - %.2f]\n", m.median, m.lo, m.hi);
    std::printf("  sharded_pool, through cereal      %8.2f ms  [%.2f - %.2f]\n", c.median, c.lo, c.hi);
    std::printf("  one memcpy of 16 MiB on rank 0    %8.2f ms  [%.2f - %.2f]\n", mc.median, mc.lo, mc.hi);
    std::printf("  ratio to MPI: trivially copyable %.2fx [%.2f - %.2f], cereal %.2fx [%.2f - %.2f]%s\n", r.median,
                r.lo, r.hi, cr.median, cr.lo, cr.hi, wrong ? "  (A CHECKSUM WAS WRONG)" : "");
  }
}

void run_batch(mtp::mpi::sharded_pool<counter>& pool, int rank, int ranks, std::size_t n, std::size_t items) {
  std::vector<add> reqs(n);
  for (std::size_t i = 0; i < n; ++i) reqs[i] = {static_cast<mtp::id_t>((i * 7 + static_cast<std::size_t>(rank)) % items), 1};
  // How many requests this rank sends to each rank: the bytes of the same exchange in MPI.
  std::vector<int> scount(static_cast<std::size_t>(ranks), 0), rcount(scount), sdisp(scount), rdisp(scount);
  std::vector<std::size_t> per(static_cast<std::size_t>(ranks), 0);
  for (const add& r : reqs) ++per[r.id % static_cast<std::size_t>(ranks)];
  const std::size_t rep_entry = 1 + sizeof(std::int64_t);
  auto exchange = [&](std::size_t entry) {
    std::size_t total = 0;
    for (int r = 0; r < ranks; ++r) {
      scount[r] = r == rank ? 0 : static_cast<int>(per[static_cast<std::size_t>(r)] * entry + k_header);
      sdisp[r] = static_cast<int>(total);
      total += static_cast<std::size_t>(scount[r]);
    }
    MPI_Alltoall(scount.data(), 1, MPI_INT, rcount.data(), 1, MPI_INT, MPI_COMM_WORLD);
    std::size_t rtotal = 0;
    for (int r = 0; r < ranks; ++r) {
      rdisp[r] = static_cast<int>(rtotal);
      rtotal += static_cast<std::size_t>(rcount[r]);
    }
    std::vector<char> s(total), d(rtotal);
    return std::make_pair(std::move(s), std::move(d));
  };
  auto [sreq, rreq] = exchange(sizeof(add));
  auto sc_req = scount, rc_req = rcount, sd_req = sdisp, rd_req = rdisp;
  auto [srep, rrep] = exchange(rep_entry);
  auto sc_rep = scount, rc_rep = rcount, sd_rep = sdisp, rd_rep = rdisp;

  double pool_s = 1e9, mpi_s = 1e9, plain_s = 1e9;
  for (int rep = 0; rep < 10; ++rep) {  // the best of 10: the machine is shared and noisy
    pool.barrier();
    auto t0 = clock_type::now();
    auto rs = pool.send_batch(reqs);
    const double mine = seconds_since(t0);
    pool.barrier();  // every rank's batch is answered before any rank enters MPI itself
    pool_s = std::min(pool_s, max_all(mine));
    if (!rs.back().has_value()) std::printf("batch failed\n");
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = clock_type::now();
    MPI_Alltoallv(sreq.data(), sc_req.data(), sd_req.data(), MPI_BYTE, rreq.data(), rc_req.data(), rd_req.data(),
                  MPI_BYTE, MPI_COMM_WORLD);
    MPI_Alltoallv(srep.data(), sc_rep.data(), sd_rep.data(), MPI_BYTE, rrep.data(), rc_rep.data(), rd_rep.data(),
                  MPI_BYTE, MPI_COMM_WORLD);
    mpi_s = std::min(mpi_s, max_all(seconds_since(t0)));
  }
  // The single-process pool: the same total work (every rank's batch) on rank 0 alone.
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    mtp::pool_options o;
    o.workers = 2;
    mtp::thread_pool<counter> plain(o);
    std::vector<mtp::id_t> ids(items);
    for (std::size_t i = 0; i < items; ++i) ids[i] = i;
    (void)plain.create_batch(ids, std::int64_t{0});
    std::vector<add> all;
    for (int r = 0; r < ranks; ++r) {
      for (std::size_t i = 0; i < n; ++i) all.push_back({static_cast<mtp::id_t>((i * 7 + static_cast<std::size_t>(r)) % items), 1});
    }
    for (int rep = 0; rep < 10; ++rep) {
      const auto t0 = clock_type::now();
      auto rs = plain.send_batch(all);
      plain_s = std::min(plain_s, seconds_since(t0));
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    const double msgs = static_cast<double>(n) * ranks;
    std::printf("batch of %zu per rank over %zu items on %d ranks (every rank at once, %.0f requests):\n", n, items, ranks,
                msgs);
    std::printf("  sharded_pool      %8.1f ns/request  (%.2f ms)\n", pool_s * 1e9 / msgs, pool_s * 1e3);
    std::printf("  MPI_Alltoallv x2  %8.1f ns/request  (%.2f ms; the same bytes, no work)\n", mpi_s * 1e9 / msgs,
                mpi_s * 1e3);
    std::printf("  plain pool        %8.1f ns/request  (%.2f ms; one process, 2 workers, all %.0f requests)\n",
                plain_s * 1e9 / msgs, plain_s * 1e3, msgs);
    std::printf("  sharded_pool throughput = %.0f%% of MPI_Alltoallv's\n", 100.0 * mpi_s / pool_s);
  }
}

// One process's plain pool, its workers placed on every CPU of the machine (the main thread
// may run on all of them while the pool starts, then gets its own CPUs back) or on rank 0's own
// CPUs. `where` says where its workers run.
std::unique_ptr<mtp::thread_pool<counter>> plain_pool(std::size_t items, bool every_cpu, std::string& where) {
  cpu_set_t mine;
  CPU_ZERO(&mine);
  (void)sched_getaffinity(0, sizeof mine, &mine);
  if (every_cpu) {
    cpu_set_t all;
    CPU_ZERO(&all);
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (long c = 0; c < n && c < CPU_SETSIZE; ++c) CPU_SET(static_cast<int>(c), &all);
    (void)sched_setaffinity(0, sizeof all, &all);
    mtp::refresh_topology();
  }
  mtp::pool_options o;
  o.workers = 2;
  auto pool = std::make_unique<mtp::thread_pool<counter>>(o);
  if (every_cpu) {
    (void)sched_setaffinity(0, sizeof mine, &mine);
    mtp::refresh_topology();
  }
  where.clear();
  for (const auto& w : pool->placement().workers) {  // "0,1": worker 0 on CPU 0, worker 1 on CPU 1
    if (!where.empty()) where += ',';
    if (w.cpus.empty()) where += '*';  // not pinned
    for (std::size_t k = 0; k < w.cpus.size(); ++k) {
      if (k != 0) where += '+';
      where += std::to_string(w.cpus[k]);
    }
  }
  std::vector<mtp::id_t> ids(items);
  for (std::size_t i = 0; i < items; ++i) ids[i] = i;
  (void)pool->create_batch(ids, std::int64_t{0});
  return pool;
}

// `total` small requests (the ids of run_batch, over `items` items on every rank), sent
//   (a) by rank 0 alone as one send_batch (its own share runs on its local pool),
//   (b) split over the ranks, each rank sending its part as one send_batch at once,
// beside a plain pool in one process running the same `total` requests as one send_batch,
// with its workers on every CPU of the machine and on rank 0's own CPUs (the other ranks
// sleep meanwhile).
void batch_vs_plain(mtp::mpi::sharded_pool<counter>& pool, int rank, int ranks, std::size_t total, std::size_t items,
                    int reps) {
  std::vector<add> all(total);
  for (std::size_t i = 0; i < total; ++i) all[i] = {static_cast<mtp::id_t>((i * 7) % items), 1};
  const std::size_t from = total * static_cast<std::size_t>(rank) / static_cast<std::size_t>(ranks);
  const std::size_t to = total * static_cast<std::size_t>(rank + 1) / static_cast<std::size_t>(ranks);
  const std::vector<add> part(all.begin() + static_cast<long>(from), all.begin() + static_cast<long>(to));
  std::unique_ptr<mtp::thread_pool<counter>> plain_all, plain_own;
  std::string where_all, where_own;
  if (rank == 0) {
    plain_own = plain_pool(items, false, where_own);  // first: a later plan may count the CPUs of
    plain_all = plain_pool(items, true, where_all);   // every thread of the process as allowed
    if (where_own == where_all) plain_own.reset();    // ranks not bound to CPUs: the same pool
  }
  int two_plain = plain_own ? 1 : 0;
  MPI_Bcast(&two_plain, 1, MPI_INT, 0, MPI_COMM_WORLD);
  bool failed = false;
  double faults = 0;  // page faults of the last one_caller or plain, every rank's together
  auto one_caller = [&] {
    pool.barrier();
    const double f0 = minor_faults();
    double s = 0;
    if (rank == 0) {
      const auto t0 = clock_type::now();
      auto rs = pool.send_batch(all);
      s = seconds_since(t0);
      failed = failed || rs.size() != total || !rs.front().has_value() || !rs.back().has_value();
    }
    pool.barrier();
    faults = sum_all(minor_faults() - f0);
    return s;
  };
  auto every_rank = [&] {
    pool.barrier();
    const auto t0 = clock_type::now();
    auto rs = pool.send_batch(part);
    const double mine = seconds_since(t0);
    pool.barrier();  // every rank's batch is answered before any rank enters MPI itself
    failed = failed || !rs.back().has_value();
    return max_all(mine);
  };
  auto plain = [&](mtp::thread_pool<counter>* p) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double f0 = minor_faults();
    double s = 0;
    if (rank == 0) {
      const auto t0 = clock_type::now();
      auto rs = p->send_batch(all);
      s = seconds_since(t0);
      failed = failed || !rs.back().has_value();
      release_others(ranks);
    } else {
      wait_for_rank0();
    }
    faults = sum_all(minor_faults() - f0);
    return s;
  };
  (void)one_caller();  // warm up
  (void)every_rank();
  (void)plain(plain_all.get());
  if (two_plain != 0) (void)plain(plain_own.get());
  std::vector<double> one, every, p_all, p_own, r_one, r_every, r_one_own, r_every_own, f_one, f_all;
  for (int rep = 0; rep < reps; ++rep) {
    // The order turns each repetition, so that no side always follows the same one.
    double t[4] = {0, 0, 0, 0};
    for (int k = 0; k < 4; ++k) {
      switch ((k + rep) % 4) {
        case 0: t[0] = one_caller(); f_one.push_back(faults); break;
        case 1: t[1] = every_rank(); break;
        case 2: t[2] = plain(plain_all.get()); f_all.push_back(faults); break;
        default: t[3] = two_plain != 0 ? plain(plain_own.get()) : 0; break;
      }
    }
    if (two_plain == 0) t[3] = t[2];
    const double n = static_cast<double>(total);
    one.push_back(t[0] * 1e9 / n);
    every.push_back(t[1] * 1e9 / n);
    p_all.push_back(t[2] * 1e9 / n);
    p_own.push_back(t[3] * 1e9 / n);
    r_one.push_back(t[0] / t[2]);
    r_every.push_back(t[1] / t[2]);
    r_one_own.push_back(t[0] / t[3]);
    r_every_own.push_back(t[1] / t[3]);
  }
  if (rank == 0) {
    const spread a = summarise(one), b = summarise(every), pa = summarise(p_all), po = summarise(p_own);
    const spread ra = summarise(r_one), rb = summarise(r_every), rao = summarise(r_one_own),
                 rbo = summarise(r_every_own);
    std::printf("batch of %zu requests over %zu items on %d ranks, median of %d [lowest - highest]:\n", total, items,
                ranks, reps);
    std::printf("  sharded_pool, one send_batch from rank 0      %6.1f ns/request  [%.1f - %.1f]\n", a.median, a.lo,
                a.hi);
    std::printf("  sharded_pool, each rank its part at once      %6.1f ns/request  [%.1f - %.1f]\n", b.median, b.lo,
                b.hi);
    std::printf("  plain pool, one process, worker CPUs %-9s %6.1f ns/request  [%.1f - %.1f]\n", where_all.c_str(),
                pa.median, pa.lo, pa.hi);
    if (two_plain != 0) {
      std::printf("  plain pool, one process, worker CPUs %-9s %6.1f ns/request  [%.1f - %.1f]\n", where_own.c_str(),
                  po.median, po.lo, po.hi);
    }
    std::printf("  ratio to the plain pool on worker CPUs %s: one caller %.2fx [%.2f - %.2f], every rank %.2fx "
                "[%.2f - %.2f]\n",
                where_all.c_str(), ra.median, ra.lo, ra.hi, rb.median, rb.lo, rb.hi);
    if (two_plain != 0) {
      std::printf("  ratio to the plain pool on worker CPUs %s: one caller %.2fx [%.2f - %.2f], every rank %.2fx "
                  "[%.2f - %.2f]\n",
                  where_own.c_str(), rao.median, rao.lo, rao.hi, rbo.median, rbo.lo, rbo.hi);
    }
    const spread fa = summarise(f_one), fp = summarise(f_all);
    std::printf("  page faults per batch (getrusage ru_minflt, every rank): one caller %.0f [%.0f - %.0f], plain pool on "
                "worker CPUs %s %.0f [%.0f - %.0f]\n",
                fa.median, fa.lo, fa.hi, where_all.c_str(), fp.median, fp.lo, fp.hi);
    if (failed) std::printf("  A BATCH FAILED\n");
  }
}

// ---- Collectives: broadcast / reduce, quiesce ----------------------------------------------

struct value {
  mtp::id_t id;
  using response_type = double;
};
struct hop {
  mtp::id_t id;
  std::int32_t left;
  using response_type = void;
};
std::size_t g_nodes = 10000;  // the items of the second pool, the same on every rank
// When the last hop of a chain ran (steady_clock, ns since its epoch), on the rank of its
// item; 0 elsewhere. Ranks on one machine share steady_clock (CLOCK_MONOTONIC).
std::atomic<std::int64_t> g_chain_end{0};

struct node {
  explicit node(mtp::id_t id) : mass(1.0 + static_cast<double>(id % 7) * 0.125), speed(0.5 + static_cast<double>(id % 13)) {}
  double handle(const value&) const { return 0.5 * mass * speed * speed; }
  void handle(const hop& h) {
    if (h.left > 0) {
      (void)mtp::mpi::this_pool<node>().post(hop{(h.id + 1) % g_nodes, h.left - 1});
    } else {
      g_chain_end.store(clock_type::now().time_since_epoch().count(), std::memory_order_release);
    }
  }
  double mass, speed;
};

// Element-wise max over ranks of each rank's per-repetition figures, to rank 0.
std::vector<double> max_to_rank0(const std::vector<double>& v) {
  std::vector<double> out(v.size(), 0.0);
  MPI_Reduce(v.data(), out.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  return out;
}

void create_nodes(mtp::mpi::sharded_pool<node>& pool, int rank) {
  if (rank == 0) {
    std::vector<mtp::id_t> ids(g_nodes);
    for (std::size_t i = 0; i < g_nodes; ++i) ids[i] = i;
    for (const auto& r : pool.create_batch(ids)) r.value();
  }
  pool.barrier();
}

double add_up(double acc, double e) { return acc + e; }

// Rank 0: pool.reduce over every item, beside send_batch of the same N requests (ids 0..N-1),
// folded by the caller in id order. The other ranks serve meanwhile (inside barrier()).
void reduce_vs_batch(mtp::mpi::sharded_pool<node>& pool, int rank, int ranks, int reps) {
  const std::size_t n = g_nodes;
  std::vector<value> reqs(n);
  for (std::size_t i = 0; i < n; ++i) reqs[i].id = i;
  double by_reduce = 0, by_batch = 0;
  bool failed = false;
  auto reduce_side = [&] {
    pool.barrier();
    double s = 0;
    if (rank == 0) {
      const auto t0 = clock_type::now();
      by_reduce = pool.reduce(value{}, 0.0, add_up);
      s = seconds_since(t0);
    }
    pool.barrier();
    return s;
  };
  auto batch_side = [&] {
    pool.barrier();
    double s = 0;
    if (rank == 0) {
      const auto t0 = clock_type::now();
      auto rs = pool.send_batch(reqs);
      double acc = 0.0;
      for (auto& r : rs) {
        if (!r.has_value()) {
          failed = true;
          continue;
        }
        acc = add_up(acc, r.value());
      }
      by_batch = acc;
      s = seconds_since(t0);
    }
    pool.barrier();
    return s;
  };
  (void)reduce_side();  // warm up
  (void)batch_side();
  std::vector<double> red, bat, ratio;
  bool same = true;
  for (int rep = 0; rep < reps; ++rep) {
    double r = 0, b = 0;
    if (rep % 2 == 0) {
      r = reduce_side();
      b = batch_side();
    } else {
      b = batch_side();
      r = reduce_side();
    }
    same = same && std::memcmp(&by_reduce, &by_batch, sizeof by_reduce) == 0;
    red.push_back(r * 1e9 / static_cast<double>(n));
    bat.push_back(b * 1e9 / static_cast<double>(n));
    ratio.push_back(r / b);
  }
  if (rank == 0) {
    const spread a = summarise(red), b = summarise(bat), q = summarise(ratio);
    std::printf("reduce over %zu items on %d ranks from rank 0, median of %d [lowest - highest]:\n", n, ranks, reps);
    std::printf("  pool.reduce                          %6.1f ns/item  [%.1f - %.1f]  (%.3f ms)\n", a.median, a.lo,
                a.hi, a.median * static_cast<double>(n) * 1e-6);
    std::printf("  send_batch of %zu, folded by caller  %6.1f ns/item  [%.1f - %.1f]  (%.3f ms)\n", n, b.median, b.lo,
                b.hi, b.median * static_cast<double>(n) * 1e-6);
    std::printf("  ratio reduce / batch %.2fx [%.2f - %.2f]; sums %s (%.17g)%s\n", q.median, q.lo, q.hi,
                same ? "bit-identical" : "DIFFER", by_reduce, failed ? "  (A BATCH FAILED)" : "");
    std::printf("  MPI messages, from the code: reduce %d out + %d replies; send_batch %d out + %d replies "
                "(one per remote rank each way)\n",
                ranks - 1, ranks - 1, ranks - 1, ranks - 1);
  }
}

// quiesce() on an idle pool beside barrier(), every rank; then a chain of `hops` hops from
// item 0 (each hop posted by the previous item's handler to item (id + 1) % N: with the default
// router every hop changes rank), from rank 0's post to quiesce()'s return on rank 0, beside
// the time from the post to the last hop's handler.
void quiesce_cost(mtp::mpi::sharded_pool<node>& pool, int rank, int ranks, int reps, int hops) {
  auto timed = [&](bool q) {
    pool.barrier();
    const auto t0 = clock_type::now();
    if (q) {
      pool.quiesce();
    } else {
      pool.barrier();
    }
    return seconds_since(t0) * 1e6;
  };
  (void)timed(true);  // warm up
  (void)timed(false);
  const int idle_reps = 2 * reps;
  std::vector<double> qs, bs;
  for (int rep = 0; rep < idle_reps; ++rep) {
    if (rep % 2 == 0) {
      qs.push_back(timed(true));
      bs.push_back(timed(false));
    } else {
      bs.push_back(timed(false));
      qs.push_back(timed(true));
    }
  }
  // The chain.
  std::vector<double> to_quiet, chain, after, starts;
  auto one_chain = [&] {
    g_chain_end.store(0, std::memory_order_relaxed);
    pool.barrier();
    const auto t0 = clock_type::now();
    if (rank == 0) (void)pool.post(hop{0, hops - 1});  // hops messages: left = hops - 1 .. 0
    pool.quiesce();
    const auto t1 = clock_type::now();
    const double end_mine = static_cast<double>(g_chain_end.load(std::memory_order_acquire));
    double end = 0;
    MPI_Allreduce(&end_mine, &end, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);  // the owner's, the others 0
    const double start = static_cast<double>(t0.time_since_epoch().count());
    return std::array<double, 3>{std::chrono::duration<double, std::micro>(t1 - t0).count(), (end - start) * 1e-3,
                                 end == 0 ? -1.0 : static_cast<double>(t1.time_since_epoch().count()) * 1e-3 - end * 1e-3};
  };
  (void)one_chain();  // warm up
  bool lost = false;
  for (int rep = 0; rep < reps; ++rep) {
    const auto c = one_chain();
    if (c[2] < 0) lost = true;
    to_quiet.push_back(c[0]);
    chain.push_back(c[1]);
    after.push_back(c[2]);
  }
  const std::vector<double> qmax = max_to_rank0(qs), bmax = max_to_rank0(bs);
  if (rank == 0) {
    const spread q = summarise(qs), b = summarise(bs), qm = summarise(qmax), bm = summarise(bmax);
    std::printf("quiesce on %d ranks, idle pool of %zu items, median of %d [lowest - highest], rank 0; slowest rank:\n",
                ranks, g_nodes, idle_reps);
    std::printf("  pool.quiesce()  %8.1f us  [%.1f - %.1f];  %8.1f us  [%.1f - %.1f]\n", q.median, q.lo, q.hi, qm.median,
                qm.lo, qm.hi);
    std::printf("  pool.barrier()  %8.1f us  [%.1f - %.1f];  %8.1f us  [%.1f - %.1f]\n", b.median, b.lo, b.hi, bm.median,
                bm.lo, bm.hi);
    const spread t = summarise(to_quiet), c = summarise(chain), a = summarise(after);
    std::printf("chain of %d hops item to item (every hop to another rank), median of %d [lowest - highest]:\n", hops,
                reps);
    std::printf("  post to the last hop          %8.1f us  [%.1f - %.1f]  (%.2f us/hop)\n", c.median, c.lo, c.hi,
                c.median / hops);
    std::printf("  post to quiesce() returning   %8.1f us  [%.1f - %.1f]  (rank 0)\n", t.median, t.lo, t.hi);
    std::printf("  last hop to quiesce() return  %8.1f us  [%.1f - %.1f]%s\n", a.median, a.lo, a.hi,
                lost ? "  (A CHAIN DID NOT END)" : "");
  }
}

// --count FORM: only FORM, `reps` times, for MTP_MPI_STATS=1's counts at exit.
void count_only(mtp::mpi::sharded_pool<node>& pool, int rank, const std::string& form, int reps, int hops) {
  std::vector<value> reqs(g_nodes);
  for (std::size_t i = 0; i < g_nodes; ++i) reqs[i].id = i;
  for (int rep = 0; rep < reps; ++rep) {
    pool.barrier();
    if (form == "reduce" && rank == 0) (void)pool.reduce(value{}, 0.0, add_up);
    if (form == "batch" && rank == 0) (void)pool.send_batch(reqs);
    if (form == "quiesce") pool.quiesce();
    if (form == "barrier") pool.barrier();
    if (form == "chain") {
      if (rank == 0) (void)pool.post(hop{0, hops - 1});
      pool.quiesce();
    }
  }
  pool.barrier();
  if (rank == 0) std::printf("mpi_bench --count %s: %d times; MTP_MPI_STATS=1 prints each rank's messages at exit\n",
                             form.c_str(), reps);
}

// --lifecycle N: remote create_batch and remove_batch of N items, and single remote creates,
// from rank 0 to items on the other ranks.
void lifecycle_only(mtp::mpi::sharded_pool<counter>& pool, int rank, int ranks, std::size_t n, int reps) {
  if (rank == 0) {
    std::vector<mtp::id_t> ids;
    ids.reserve(n);
    for (mtp::id_t id = 0; ids.size() < n; ++id) {
      if (pool.rank_of(id) != 0) ids.push_back(id);
    }
    const std::size_t singles = std::min<std::size_t>(1000, n);
    std::vector<double> created, removed, single;
    for (int rep = 0; rep < reps; ++rep) {
      const auto t0 = clock_type::now();
      for (const auto& r : pool.create_batch(ids, std::int64_t{0})) r.value();
      const double c = seconds_since(t0);
      const auto t1 = clock_type::now();
      for (const auto& r : pool.remove_batch(ids)) r.value();
      const double d = seconds_since(t1);
      const auto t2 = clock_type::now();
      for (std::size_t i = 0; i < singles; ++i) pool.create(ids[i], std::int64_t{0});
      const double s = seconds_since(t2);
      for (const auto& r : pool.remove_batch(std::span<const mtp::id_t>(ids.data(), singles))) r.value();
      created.push_back(c * 1e9 / static_cast<double>(n));
      removed.push_back(d * 1e9 / static_cast<double>(n));
      single.push_back(s * 1e6 / static_cast<double>(singles));
    }
    const spread c = summarise(created), d = summarise(removed), s = summarise(single);
    std::printf("remote lifecycle, %zu items on ranks 1..%d from rank 0, median of %d [lowest - highest]:\n", n,
                ranks - 1, reps);
    std::printf("  create_batch         %8.1f ns/item  [%.1f - %.1f]\n", c.median, c.lo, c.hi);
    std::printf("  remove_batch         %8.1f ns/item  [%.1f - %.1f]\n", d.median, d.lo, d.hi);
    std::printf("  create, one by one   %8.1f us/item  [%.1f - %.1f]  (%zu items)\n", s.median, s.lo, s.hi, singles);
  }
  pool.barrier();
}

}  // namespace

int main(int argc, char** argv) {
  mtp::mpi::environment env(argc, argv, mtp::mpi::thread_level::multiple);
  if (env.provided() != mtp::mpi::thread_level::multiple) {
    if (env.rank() == 0) std::printf("the baselines need MPI_THREAD_MULTIPLE; MPI provides %s\n", to_string(env.provided()));
    return 0;
  }
  int iters = 5000, reps = 15, large_iters = 4, hops = 1000, count_reps = 10;
  std::size_t n = 10000, items = 1000, big_batch = 100000;
  std::string count;
  std::size_t lifecycle = 0;
  bool big_batch_only = false;
  bool round_trip_only = false;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--batch") == 0) n = std::strtoull(argv[++i], nullptr, 10);
    else if (std::strcmp(argv[i], "--items") == 0) items = std::strtoull(argv[++i], nullptr, 10);
    else if (std::strcmp(argv[i], "--big-batch") == 0) big_batch = std::strtoull(argv[++i], nullptr, 10);
    else if (std::strcmp(argv[i], "--reps") == 0) reps = std::max(1, std::atoi(argv[++i]));
    else if (std::strcmp(argv[i], "--large-iters") == 0) large_iters = std::max(1, std::atoi(argv[++i]));
    else if (std::strcmp(argv[i], "--coll-items") == 0) g_nodes = std::max<std::size_t>(1, std::strtoull(argv[++i], nullptr, 10));
    else if (std::strcmp(argv[i], "--hops") == 0) hops = std::max(1, std::atoi(argv[++i]));
    else if (std::strcmp(argv[i], "--count") == 0) count = argv[++i];
    else if (std::strcmp(argv[i], "--count-reps") == 0) count_reps = std::max(0, std::atoi(argv[++i]));
    else if (std::strcmp(argv[i], "--lifecycle") == 0) lifecycle = std::strtoull(argv[++i], nullptr, 10);
  }
  for (int i = 1; i < argc; ++i) {
    big_batch_only = big_batch_only || std::strcmp(argv[i], "--big-batch-only") == 0;
    round_trip_only = round_trip_only || std::strcmp(argv[i], "--round-trip-only") == 0;
  }
  if (lifecycle > 0) {
    if (env.size() < 2) return 0;
    mtp::mpi::sharded_options o;
    o.local.workers = 2;
    mtp::mpi::sharded_pool<counter> pool(o);
    lifecycle_only(pool, env.rank(), env.size(), lifecycle, reps);
    return 0;
  }
  mtp::mpi::sharded_options o2;
  o2.local.workers = 2;
  if (!count.empty()) {
    mtp::mpi::sharded_pool<node> pool(o2);
    create_nodes(pool, env.rank());
    count_only(pool, env.rank(), count, count_reps, hops);
    return 0;
  }
  {
    mtp::mpi::sharded_options o;
    o.local.workers = 2;
    if (const char* v = std::getenv("MTP_BENCH_CALLER_SPIN_US")) o.local.caller_spin = std::chrono::microseconds(std::atol(v));
    if (const char* v = std::getenv("MTP_BENCH_WORKER_SPIN_US")) o.local.worker_spin = std::chrono::microseconds(std::atol(v));
    if (const char* v = std::getenv("MTP_BENCH_WORKERS")) o.local.workers = std::strtoull(v, nullptr, 10);
    mtp::mpi::sharded_pool<counter> pool(o);
    if (env.rank() == 0) {
      std::vector<mtp::id_t> ids(items);
      for (std::size_t i = 0; i < items; ++i) ids[i] = i;
      for (const auto& r : pool.create_batch(ids, std::int64_t{0})) r.value();
      std::printf("mpi_bench: %d ranks, 2 workers per rank, processor %s\n", env.size(), env.processor_name().c_str());
    }
    pool.barrier();
    if (env.size() >= 2 && !big_batch_only) round_trip(pool, env.rank(), iters);
    if (round_trip_only) {
      MPI_Barrier(MPI_COMM_WORLD);
      return 0;
    }
    if (!big_batch_only) run_batch(pool, env.rank(), env.size(), n, items);
    if (env.size() >= 2) {
      if (!big_batch_only) large_round_trip(pool, env.rank(), reps, large_iters);
      batch_vs_plain(pool, env.rank(), env.size(), big_batch, items, reps);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  if (env.size() >= 2 && !big_batch_only) {  // the collectives, on a pool of their own
    mtp::mpi::sharded_pool<node> pool(o2);
    create_nodes(pool, env.rank());
    reduce_vs_batch(pool, env.rank(), env.size(), reps);
    quiesce_cost(pool, env.rank(), env.size(), reps, hops);
    MPI_Barrier(MPI_COMM_WORLD);
  }
  return 0;
}
