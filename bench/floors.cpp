// SPDX-License-Identifier: MIT
// Floors: what the hardware and the kernel allow, measured in the same binary so the pool's
// figures can be read as ratios.
//   floor/ping_pong       a round trip through one cache line between two spinning threads
//                         pinned to different CPUs.
//   floor/futex/...       a round trip where both sides sleep on a futex and wake each other.
//   floor/futex_wake/...  the responder sleeps on a futex, the caller spins for the reply.
//   floor/same_cpu/yield  two threads pinned to ONE CPU hand a value back and forth through one
//                         cache line; whoever waits calls sched_yield, so every handoff is a
//                         same-CPU context switch (the floor for a caller on its worker's CPU).
//   floor/same_cpu/futex  the same two threads, each sleeping on a futex until woken.
//   floor/bulk_queue/...  10,000 messages over 1,000 objects through one moodycamel
//                         ConcurrentQueue per worker: bulk enqueue with a producer token, bulk
//                         dequeue of up to 256, replies written into a caller-owned array, one
//                         atomic add per dequeued chunk. No routing table, no error handling.
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>

#include "common.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

// GCC 12 reports a false -Wstringop-overflow inside ConcurrentQueue's inlined enqueue_bulk
// (an atomic load it cannot prove in bounds); the header itself is not ours to change.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif

namespace bench {
namespace {

inline void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

void futex_wait(std::atomic<std::uint32_t>& w, std::uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
void futex_wake(std::atomic<std::uint32_t>& w) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

/// Where the two threads of a floor run.
enum class pair_at {
  cross,  // pinned to two different CPUs
  same,   // both pinned to one CPU
  kernel  // unpinned: the kernel places them
};

/// Pins the caller to the first allowed CPU and returns the CPU for the other thread (another
/// one, or the same with pair_at::same), or -1 when they run unpinned (also when `cross` is
/// asked for and only one CPU is allowed).
int pin_pair(affinity_guard&, pair_at at = pair_at::cross) {
  const std::vector<unsigned> cpus = allowed_cpus();
  if (at == pair_at::kernel || cpus.empty()) return -1;
  if (at == pair_at::cross && cpus.size() < 2) return -1;
  if (!pin_current_thread(cpus[0])) return -1;
  return static_cast<int>(at == pair_at::same ? cpus[0] : cpus[1]);
}

std::int64_t calls_for(double pause_us) {
  if (pause_us > 0) return config().quick ? 300 : 2000;
  return config().quick ? 5000 : 50000;
}

void record(benchmark::State& state, std::vector<double>& ns, double pause_us, int other_cpu) {
  const percentiles p = summarise(ns);
  state.counters["p50_us"] = p.p50 / 1000.0;
  state.counters["p99_us"] = p.p99 / 1000.0;
  state.counters["mean_us"] = p.mean / 1000.0;
  state.counters["pause_us"] = pause_us;
  state.counters["pinned"] = other_cpu >= 0 ? 1 : 0;
}

void ping_pong(benchmark::State& state) {
  affinity_guard guard;
  const int other = pin_pair(guard);
  alignas(64) std::atomic<std::uint64_t> line{0};
  std::atomic<bool> stop{false};
  std::thread responder([&] {
    if (other >= 0) (void)pin_current_thread(static_cast<unsigned>(other));
    std::uint64_t seen = 0;
    for (;;) {
      const std::uint64_t v = line.load(std::memory_order_acquire);
      if (v != seen && (v & 1u) == 1u) {
        seen = v + 1;
        line.store(seen, std::memory_order_release);
      } else if (stop.load(std::memory_order_relaxed)) {
        return;
      } else {
        relax();
      }
    }
  });
  std::vector<double> ns;
  ns.reserve(static_cast<std::size_t>(state.max_iterations));
  std::uint64_t v = 0;
  for (auto _ : state) {
    const auto t0 = clock_type::now();
    line.store(v + 1, std::memory_order_release);
    while (line.load(std::memory_order_acquire) != v + 2) relax();
    const auto t1 = clock_type::now();
    v += 2;
    state.SetIterationTime(elapsed_ns(t0, t1) * 1e-9);
    ns.push_back(elapsed_ns(t0, t1));
  }
  stop.store(true);
  responder.join();
  if (v != 2 * static_cast<std::uint64_t>(state.iterations())) return fail(state, "lost a round trip");
  record(state, ns, 0, other);
}

// Two threads pinned to one CPU bounce one cache line; the waiting side yields the CPU at
// every poll, so each handoff is a switch to the other thread.
void same_cpu_yield(benchmark::State& state) {
  affinity_guard guard;
  const int other = pin_pair(guard, pair_at::same);
  if (other < 0) return fail(state, "could not pin");
  alignas(64) std::atomic<std::uint64_t> line{0};
  std::atomic<bool> stop{false};
  std::thread responder([&] {
    (void)pin_current_thread(static_cast<unsigned>(other));
    std::uint64_t seen = 0;
    for (;;) {
      const std::uint64_t v = line.load(std::memory_order_acquire);
      if (v != seen && (v & 1u) == 1u) {
        seen = v + 1;
        line.store(seen, std::memory_order_release);
      } else if (stop.load(std::memory_order_relaxed)) {
        return;
      } else {
        sched_yield();
      }
    }
  });
  std::vector<double> ns;
  ns.reserve(static_cast<std::size_t>(state.max_iterations));
  std::uint64_t v = 0;
  for (auto _ : state) {
    const auto t0 = clock_type::now();
    line.store(v + 1, std::memory_order_release);
    while (line.load(std::memory_order_acquire) != v + 2) sched_yield();
    const auto t1 = clock_type::now();
    v += 2;
    state.SetIterationTime(elapsed_ns(t0, t1) * 1e-9);
    ns.push_back(elapsed_ns(t0, t1));
  }
  stop.store(true);
  responder.join();
  if (v != 2 * static_cast<std::uint64_t>(state.iterations())) return fail(state, "lost a round trip");
  record(state, ns, 0, other);
  state.counters["same_cpu"] = 1;
}

// caller_spins: the caller polls for the reply instead of sleeping, so only the responder's
// wake-up is on the path (the shape of a pool whose worker sleeps and whose caller spins).
// at: the two threads on different CPUs, on one CPU, or placed by the kernel (which tends to
// put a woken thread on its waker's CPU).
void futex_round_trip(benchmark::State& state, double pause_us, bool caller_spins, pair_at at) {
  affinity_guard guard;
  const int other = pin_pair(guard, at);
  if (at == pair_at::same && other < 0) return fail(state, "could not pin");
  alignas(64) std::atomic<std::uint32_t> to_responder{0};
  alignas(64) std::atomic<std::uint32_t> to_caller{0};
  std::atomic<std::uint64_t> answered{0};
  std::thread responder([&] {
    if (other >= 0) (void)pin_current_thread(static_cast<unsigned>(other));
    for (;;) {
      std::uint32_t v;
      while ((v = to_responder.exchange(0, std::memory_order_acquire)) == 0) futex_wait(to_responder, 0);
      if (v == 2) return;
      answered.fetch_add(1, std::memory_order_relaxed);
      to_caller.store(1, std::memory_order_release);
      if (!caller_spins) futex_wake(to_caller);
    }
  });
  std::vector<double> ns;
  ns.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    if (pause_us > 0) sleep_us(pause_us);
    const auto t0 = clock_type::now();
    to_responder.store(1, std::memory_order_release);
    futex_wake(to_responder);
    if (caller_spins) {
      for (unsigned polls = 1; to_caller.exchange(0, std::memory_order_acquire) == 0; ++polls) {
        relax();
        if (polls % 64 == 0) std::this_thread::yield();
      }
    } else {
      while (to_caller.exchange(0, std::memory_order_acquire) == 0) futex_wait(to_caller, 0);
    }
    const auto t1 = clock_type::now();
    state.SetIterationTime(elapsed_ns(t0, t1) * 1e-9);
    ns.push_back(elapsed_ns(t0, t1));
  }
  to_responder.store(2, std::memory_order_release);
  futex_wake(to_responder);
  responder.join();
  if (answered.load() != static_cast<std::uint64_t>(state.iterations())) return fail(state, "lost a round trip");
  record(state, ns, pause_us, other);
}

// ---- The bulk-queue floor ----------------------------------------------------------------------

struct message {
  std::uint32_t index;  // where the reply goes
  std::uint32_t object;  // the object's slot on its worker
  std::uint64_t x;
};

class bulk_floor {
 public:
  bulk_floor(std::size_t workers, std::size_t objects) : lanes_(workers) {
    for (std::size_t k = 0; k < workers; ++k) lanes_[k].objects.assign(objects / workers + 1, 0);
    for (std::size_t k = 0; k < workers; ++k) threads_.emplace_back([this, k] { run(lanes_[k]); });
  }
  ~bulk_floor() {
    stop_.store(true);
    for (auto& t : threads_) t.join();
  }
  bulk_floor(const bulk_floor&) = delete;
  bulk_floor& operator=(const bulk_floor&) = delete;

  /// Sends ids[i] with x = i; waits; replies land in out[i] = x + id.
  void send(const std::vector<std::uint64_t>& ids, std::vector<std::uint64_t>& out) {
    const std::size_t w = lanes_.size();
    if (staging_.size() != w) staging_.resize(w);
    for (auto& s : staging_) s.clear();
    for (std::size_t i = 0; i < ids.size(); ++i) {
      staging_[ids[i] % w].push_back({static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(ids[i] / w), ids[i]});
    }
    out_ = out.data();
    ids_ = ids.data();
    done_.store(0, std::memory_order_relaxed);
    for (std::size_t k = 0; k < w; ++k) {
      if (!staging_[k].empty()) lanes_[k].queue.enqueue_bulk(lanes_[k].token, staging_[k].begin(), staging_[k].size());
    }
    for (unsigned polls = 1; done_.load(std::memory_order_acquire) != ids.size(); ++polls) {
      relax();
      if (polls % 64 == 0) std::this_thread::yield();
    }
  }
  [[nodiscard]] std::uint64_t handled() const {
    std::uint64_t n = 0;
    for (const auto& l : lanes_) n += l.handled.load();
    return n;
  }

 private:
  struct lane {
    lane() : token(queue) {}
    moodycamel::ConcurrentQueue<message> queue;
    moodycamel::ProducerToken token;
    std::vector<std::uint64_t> objects;  // per-object state: replies answered
    std::atomic<std::uint64_t> handled{0};
  };

  void run(lane& l) {
    message buf[256];
    for (unsigned polls = 1; !stop_.load(std::memory_order_relaxed); ++polls) {
      const std::size_t n = l.queue.try_dequeue_bulk(buf, 256);
      if (n == 0) {
        relax();
        if (polls % 64 == 0) std::this_thread::yield();
        continue;
      }
      for (std::size_t i = 0; i < n; ++i) {
        ++l.objects[buf[i].object];
        out_[buf[i].index] = buf[i].x + ids_[buf[i].index];
      }
      l.handled.store(l.handled.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
      done_.fetch_add(n, std::memory_order_release);
    }
  }

  std::vector<lane> lanes_;
  std::vector<std::vector<message>> staging_;
  std::uint64_t* out_ = nullptr;
  const std::uint64_t* ids_ = nullptr;
  alignas(64) std::atomic<std::size_t> done_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

void bulk_queue(benchmark::State& state, std::size_t workers, std::size_t batch, std::size_t objects) {
  bulk_floor floor(workers, objects);
  std::vector<std::uint64_t> ids(batch), out(batch);
  for (std::size_t i = 0; i < batch; ++i) ids[i] = i % objects;
  const auto t0 = clock_type::now();
  for (auto _ : state) floor.send(ids, out);
  const double ns = elapsed_ns(t0, clock_type::now());
  for (std::size_t i = 0; i < batch; ++i) {
    if (out[i] != 2 * ids[i]) return fail(state, "wrong reply");
  }
  if (floor.handled() != batch * static_cast<std::uint64_t>(state.iterations())) return fail(state, "lost messages");
  const double msgs = static_cast<double>(batch) * static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(msgs));
  state.counters["ns_per_msg"] = ns / msgs;
  state.counters["batch"] = static_cast<double>(batch);
  state.counters["items"] = static_cast<double>(objects);
  state.counters["workers"] = static_cast<double>(workers);
}

}  // namespace

void register_floors() {
  const auto rt = [](const char* name, double pause, auto fn) {
    repeat(benchmark::RegisterBenchmark(name, fn)
               ->UseManualTime()
               ->Iterations(calls_for(pause))
               ->Unit(benchmark::kMicrosecond));
  };
  rt("floor/ping_pong", 0, [](benchmark::State& s) { ping_pong(s); });
  rt("floor/futex/hot", 0, [](benchmark::State& s) { futex_round_trip(s, 0, false, pair_at::cross); });
  rt("floor/futex/asleep", 200, [](benchmark::State& s) { futex_round_trip(s, 200, false, pair_at::cross); });
  rt("floor/futex_wake/asleep", 200, [](benchmark::State& s) { futex_round_trip(s, 200, true, pair_at::cross); });
  rt("floor/futex_unpinned/hot", 0, [](benchmark::State& s) { futex_round_trip(s, 0, false, pair_at::kernel); });
  rt("floor/futex_unpinned/asleep", 200,
     [](benchmark::State& s) { futex_round_trip(s, 200, false, pair_at::kernel); });
  rt("floor/futex_wake_unpinned/asleep", 200,
     [](benchmark::State& s) { futex_round_trip(s, 200, true, pair_at::kernel); });
  rt("floor/same_cpu/yield", 0, [](benchmark::State& s) { same_cpu_yield(s); });
  rt("floor/same_cpu/futex", 0, [](benchmark::State& s) { futex_round_trip(s, 0, false, pair_at::same); });
  for (std::size_t w : {std::size_t{1}, std::size_t{2}}) {
    const std::string name = "floor/bulk_queue/workers:" + std::to_string(w) + "/batch:10000/items:1000";
    repeat(benchmark::RegisterBenchmark(name.c_str(), [w](benchmark::State& s) { bulk_queue(s, w, 10000, 1000); })
               ->UseRealTime()
               ->MinTime(config().quick ? 0.02 : 0.2)
               ->Unit(benchmark::kMicrosecond));
  }
}

}  // namespace bench
