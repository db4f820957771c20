// SPDX-License-Identifier: MIT
// Timers that belong to items (post_after, post_at, post_every, mtp::timeout), each measured
// beside what it is compared with, in the same iterations:
//   timers/rearm/batch:10000/items:1000
//        the 10k-over-1k batch workload (batches of 10,000 trivial requests over 1,000 items,
//        send_batch into a reused span) in three forms, in blocks taking turns inside every
//        iteration: `base`, items without timers (echo_item, as in batch/); `armed`, items
//        that each hold an armed mtp::timeout (made in the constructor) that this request does
//        not touch; `rearm`, the same items re-arming it to 30 s on every message. Counters: ns
//        per message of each form and rearm_over_base (target: at most 1.2).
//   timers/schedule_cancel/calls:1000
//        per call on the caller, blocks of 1,000 calls to 1,000 items: `post` of a request,
//        `post_after(1h)` of the same request (the handles kept), then `cancel()` of those
//        handles; each block timed alone (the handles are dropped, and the workers caught up
//        with a round trip, outside the timing); post and schedule take turns going first.
//        Counters: ns per call and schedule_over_post, cancel_over_post (targets: at most 2).
//   timers/memory/timers:1000000
//        the heap (mallinfo2: uordblks + hblkhd, every arena) before and after scheduling
//        1,000,000 post_after(1h) timers over 1,000 items and waiting until every worker armed
//        them (a round trip to an item of each worker); the handles' vector is reserved before
//        the first reading. Counters: bytes per timer, the request's size, and the bytes per
//        timer beyond the request (target: at most 64).
//   timers/lateness/after:1ms
//        an otherwise idle pool: a timer post_after(1 ms) at a time, its handler reading
//        steady_clock; beside std::this_thread::sleep_until on a plain thread and (with Asio)
//        an asio::steady_timer on an io_context running on its own thread, for deadlines made
//        the same way, taking turns, one timer in flight at a time while the caller sleeps.
//        Counters: p50 and p99 of (firing time - deadline) in microseconds for each, and the
//        timer slack the threads inherit.
// The pools have MTP_BENCH_WORKERS workers (default 2).
#include <malloc.h>
#include <sys/prctl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <thread>
#include <vector>

#ifdef MTP_BENCH_HAVE_ASIO
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#endif

#include "common.hpp"
#include "items.hpp"

namespace bench {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t k_items = 1000;

// ---- Items -------------------------------------------------------------------------------------

/// ping, but the item re-arms its timeout first.
struct ping_rearm {
  mtp::id_t id;
  std::uint64_t x;
  using response_type = std::uint64_t;
};
/// What the item's timeout sends when it expires.
struct expired {
  mtp::id_t id;
  using response_type = void;
};
struct expired_query {
  mtp::id_t id;
  using response_type = std::uint64_t;
};

/// echo_item with a session timeout: made in the constructor, re-armed by ping_rearm.
class session_item {
 public:
  explicit session_item(mtp::id_t id)
      : id_(id), timeout_(mtp::this_pool<session_item>().make_timeout(expired{id})) {}
  std::uint64_t handle(const ping_rearm& p) {
    timeout_.rearm(30s);
    ++calls_;
    return p.x + id_;
  }
  std::uint64_t handle(const ping& p) noexcept {
    ++calls_;
    return p.x + id_;
  }
  std::uint64_t handle(const calls_query&) const noexcept { return calls_; }
  void handle(const expired&) noexcept { ++expired_; }
  std::uint64_t handle(const expired_query&) const noexcept { return expired_; }

 private:
  std::uint64_t id_;
  mtp::timeout timeout_;
  std::uint64_t calls_ = 0;
  std::uint64_t expired_ = 0;
};

template <class Pool>
bool create_items(benchmark::State& state, Pool& pool, std::size_t items) {
  std::vector<mtp::id_t> ids(items);
  for (std::size_t i = 0; i < items; ++i) ids[i] = i;
  for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(ids))) {
    if (!r) {
      fail(state, "create failed");
      return false;
    }
  }
  return true;
}

/// One round trip to an item of every worker: each worker has run everything sent before.
template <class Pool>
void catch_up(Pool& pool, std::size_t items) {
  std::vector<bool> seen(pool.worker_count(), false);
  for (mtp::id_t id = 0; id < items; ++id) {
    const std::size_t k = pool.worker_of(id);
    if (seen[k]) continue;
    seen[k] = true;
    (void)pool.send(calls_query{id});
  }
}

template <class Pool>
std::uint64_t total_calls(Pool& pool, std::size_t items) {
  std::vector<calls_query> q(items);
  for (std::size_t i = 0; i < items; ++i) q[i] = calls_query{i};
  std::uint64_t total = 0;
  for (const auto& r : pool.send_batch(q)) total += r.value();
  return total;
}

// ---- 1. Re-arming a timeout on every message of the batch workload ----------------------------

/// What one steady_clock::now() costs on this thread (a re-arm reads the clock once).
double clock_read_ns() {
  constexpr int k_reads = 100000;
  std::int64_t sink = 0;
  const auto t0 = clock_type::now();
  for (int i = 0; i < k_reads; ++i) sink += clock_type::now().time_since_epoch().count();
  const double ns = elapsed_ns(t0, clock_type::now()) / k_reads;
  benchmark::DoNotOptimize(sink);
  return ns;
}

void rearm_batch(benchmark::State& state, std::size_t batch, std::size_t items) {
  mtp::thread_pool<echo_item> plain(pool_options_for(bench_workers(), where::fallback));
  mtp::thread_pool<session_item> sessions(pool_options_for(bench_workers(), where::fallback));
  if (!create_items(state, plain, items) || !create_items(state, sessions, items)) return;
  std::vector<ping> reqs(batch);
  std::vector<ping_rearm> rearm_reqs(batch);
  for (std::size_t i = 0; i < batch; ++i) {
    reqs[i] = ping{i % items, i};
    rearm_reqs[i] = ping_rearm{i % items, i};
  }
  std::vector<mtp::result<std::uint64_t>> out(batch);
  const auto into = std::span<mtp::result<std::uint64_t>>(out);
  // Arms every item's timeout before timing (the first re-arm inserts it into its worker's
  // heap; later ones move only its wanted deadline).
  sessions.send_batch(std::span<const ping_rearm>(rearm_reqs), into);

  enum form { base, armed, rearm, forms };
  constexpr int k_blocks = 8;  // timed batches per form and iteration, after one untimed
  double ns[forms] = {};
  std::size_t wrong = 0;
  std::uint64_t plain_batches = 0, session_batches = 1;
  const auto run = [&](int f) {
    switch (f) {
      case base:
        plain.send_batch(std::span<const ping>(reqs), into);
        ++plain_batches;
        break;
      case armed:
        sessions.send_batch(std::span<const ping>(reqs), into);
        ++session_batches;
        break;
      default:
        sessions.send_batch(std::span<const ping_rearm>(rearm_reqs), into);
        ++session_batches;
        break;
    }
  };
  int first = 0;
  for (auto _ : state) {
    for (int step = 0; step < forms; ++step) {
      const int f = (first + step) % forms;
      // One untimed batch first: the other pool's workers stop spinning and this pool's
      // workers wake up outside the timing.
      run(f);
      const auto t0 = clock_type::now();
      for (int b = 0; b < k_blocks; ++b) run(f);
      ns[f] += elapsed_ns(t0, clock_type::now());
      for (std::size_t i = 0; i < batch; i += 97) {
        wrong += (!out[i] || out[i].value() != reqs[i].x + reqs[i].id) ? 1 : 0;
      }
    }
    first = (first + 1) % forms;
  }
  if (wrong != 0) return fail(state, std::to_string(wrong) + " wrong replies");
  if (total_calls(plain, items) != plain_batches * batch || total_calls(sessions, items) != session_batches * batch) {
    return fail(state, "items missed requests");
  }
  std::vector<expired_query> q(items);
  for (std::size_t i = 0; i < items; ++i) q[i] = expired_query{i};
  for (const auto& r : sessions.send_batch(q)) {
    if (r.value() != 0) return fail(state, "a 30 s timeout fired during the run");
  }
  const double msgs = static_cast<double>(batch) * k_blocks * static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(3 * msgs));
  state.counters["base_ns_per_msg"] = ns[base] / msgs;
  state.counters["armed_ns_per_msg"] = ns[armed] / msgs;
  state.counters["rearm_ns_per_msg"] = ns[rearm] / msgs;
  state.counters["rearm_over_base"] = ns[rearm] / ns[base];
  state.counters["clock_read_ns"] = clock_read_ns();
  state.counters["armed_over_base"] = ns[armed] / ns[base];
  state.counters["batch"] = static_cast<double>(batch);
  state.counters["items"] = static_cast<double>(items);
  state.counters["workers"] = static_cast<double>(plain.worker_count());
}

// ---- 2. Scheduling and cancelling against a post ----------------------------------------------

void schedule_cancel(benchmark::State& state, std::size_t calls) {
  mtp::thread_pool<echo_item> pool(pool_options_for(bench_workers(), where::fallback));
  if (!create_items(state, pool, k_items)) return;
  std::vector<mtp::timer> handles(calls);
  double post_ns = 0, schedule_ns = 0, cancel_ns = 0;
  std::size_t refused = 0, not_cancelled = 0;
  std::uint64_t posted = 0;
  bool post_first = true;
  for (auto _ : state) {
    for (int pass = 0; pass < 2; ++pass) {
      if ((pass == 0) == post_first) {
        const auto t0 = clock_type::now();
        for (std::size_t i = 0; i < calls; ++i) {
          refused += pool.post(ping{i % k_items, i}) ? 0 : 1;
        }
        post_ns += elapsed_ns(t0, clock_type::now());
        posted += calls;
      } else {
        const auto t0 = clock_type::now();
        for (std::size_t i = 0; i < calls; ++i) handles[i] = pool.post_after(1h, ping{i % k_items, i});
        schedule_ns += elapsed_ns(t0, clock_type::now());
      }
      catch_up(pool, k_items);  // the posts ran and the timers are armed, untimed
    }
    post_first = !post_first;
    const auto t0 = clock_type::now();
    for (std::size_t i = 0; i < calls; ++i) not_cancelled += handles[i].cancel() ? 0 : 1;
    cancel_ns += elapsed_ns(t0, clock_type::now());
    for (auto& h : handles) h = mtp::timer();  // dropping the handles: untimed
  }
  if (refused != 0) return fail(state, std::to_string(refused) + " posts refused");
  if (not_cancelled != 0) return fail(state, std::to_string(not_cancelled) + " timers not cancelled");
  if (total_calls(pool, k_items) != posted) return fail(state, "items missed posts (or a cancelled timer fired)");
  const double n = static_cast<double>(calls) * static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(3 * n));
  state.counters["post_ns"] = post_ns / n;
  state.counters["schedule_ns"] = schedule_ns / n;
  state.counters["cancel_ns"] = cancel_ns / n;
  state.counters["schedule_over_post"] = schedule_ns / post_ns;
  state.counters["cancel_over_post"] = cancel_ns / post_ns;
  state.counters["calls"] = static_cast<double>(calls);
  state.counters["workers"] = static_cast<double>(pool.worker_count());
}

// ---- 3. Memory of pending timers --------------------------------------------------------------

double heap_bytes() {
  const struct mallinfo2 mi = mallinfo2();
  return static_cast<double>(mi.uordblks + mi.hblkhd);
}

void pending_memory(benchmark::State& state, std::size_t timers) {
  if (config().quick) timers /= 10;
  for (auto _ : state) {
    double per_timer = 0, schedule_ns = 0, cancel_ns = 0;
    {
      mtp::thread_pool<echo_item> pool(pool_options_for(bench_workers(), where::fallback));
      if (!create_items(state, pool, k_items)) return;
      std::vector<mtp::timer> handles;
      handles.reserve(timers);  // before the first reading: not counted
      catch_up(pool, k_items);
      const double before = heap_bytes();
      const auto t0 = clock_type::now();
      for (std::size_t i = 0; i < timers; ++i) handles.push_back(pool.post_after(1h, ping{i % k_items, i}));
      catch_up(pool, k_items);  // every worker armed its timers
      schedule_ns = elapsed_ns(t0, clock_type::now()) / static_cast<double>(timers);
      const double after = heap_bytes();
      per_timer = (after - before) / static_cast<double>(timers);
      std::size_t pending = 0;
      for (const auto& w : pool.stats().workers) pending += w.timers_pending;
      if (pending != timers) return fail(state, "pending timers: " + std::to_string(pending));
      const auto t1 = clock_type::now();
      std::size_t cancelled = 0;
      for (auto& h : handles) cancelled += h.cancel() ? 1 : 0;
      cancel_ns = elapsed_ns(t1, clock_type::now()) / static_cast<double>(timers);
      if (cancelled != timers) return fail(state, "cancelled: " + std::to_string(cancelled));
    }  // the pool's shutdown frees the cancelled timers
    malloc_trim(0);  // hand the freed memory back: later benchmarks read the RSS
    state.counters["bytes_per_timer"] = per_timer;
    state.counters["request_bytes"] = static_cast<double>(sizeof(ping));
    state.counters["bytes_beyond_request"] = per_timer - static_cast<double>(sizeof(ping));
    state.counters["schedule_ns_at_1M"] = schedule_ns;
    state.counters["cancel_ns_at_1M"] = cancel_ns;
  }
  state.counters["timers"] = static_cast<double>(timers);
}

// ---- 4. Lateness on an idle pool ----------------------------------------------------------------

/// One sample: when it was due (steady_clock ns) and where its lateness goes.
struct stamp {
  mtp::id_t id;
  std::int64_t deadline_ns;
  std::uint32_t slot;
  using response_type = void;
};

std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count(); }

/// Preallocated lateness arrays, one per form, and how many samples each has recorded.
struct lateness_log {
  std::vector<double> ns;
  std::atomic<std::uint32_t> recorded{0};
  void record(std::uint32_t slot, std::int64_t late) {
    ns[slot] = static_cast<double>(late);
    recorded.store(slot + 1, std::memory_order_release);  // release: the caller reads ns[slot]
  }
  bool wait_for(std::uint32_t slot) const {
    const auto give_up = clock_type::now() + 1s;
    while (recorded.load(std::memory_order_acquire) <= slot) {
      if (clock_type::now() > give_up) return false;
      std::this_thread::sleep_for(50us);
    }
    return true;
  }
};
lateness_log* g_pool_log = nullptr;

class stamp_item {
 public:
  explicit stamp_item(mtp::id_t) {}
  void handle(const stamp& s) noexcept { g_pool_log->record(s.slot, now_ns() - s.deadline_ns); }
  std::uint64_t handle(const calls_query&) const noexcept { return 0; }
};

void lateness(benchmark::State& state) {
  const std::uint32_t samples = config().quick ? 50 : 250;
  constexpr auto k_after = 1ms;
  enum form { pool_timer, sleep_until, asio_timer, forms };
  lateness_log logs[forms];
  for (auto& l : logs) l.ns.assign(samples, 0.0);
  g_pool_log = &logs[pool_timer];

  mtp::thread_pool<stamp_item> pool(pool_options_for(bench_workers(), where::fallback));
  if (!create_items(state, pool, k_items)) return;

  // A plain thread: sleep_until each deadline it is handed (0: stop).
  std::atomic<std::int64_t> sleeper_deadline{-1};
  std::thread sleeper([&] {
    std::int64_t seen = -1;
    for (std::uint32_t slot = 0;; ++slot) {
      sleeper_deadline.wait(seen, std::memory_order_acquire);
      seen = sleeper_deadline.load(std::memory_order_acquire);
      if (seen == 0) return;
      std::this_thread::sleep_until(clock_type::time_point(std::chrono::nanoseconds(seen)));
      logs[sleep_until].record(slot, now_ns() - seen);
    }
  });

#ifdef MTP_BENCH_HAVE_ASIO
  asio::io_context io(1);
  auto guard = asio::make_work_guard(io);
  asio::steady_timer timer(io);
  std::thread io_thread([&] { io.run(); });
  constexpr int used_forms = forms;
#else
  constexpr int used_forms = forms - 1;
#endif

  std::vector<mtp::timer> handles(samples);
  bool lost = false;
  for (auto _ : state) {
    for (auto& l : logs) l.recorded.store(0);
    for (std::uint32_t i = 0; i < samples && !lost; ++i) {
      for (int step = 0; step < used_forms && !lost; ++step) {
        const int f = static_cast<int>((i + static_cast<std::uint32_t>(step)) % used_forms);
        const std::int64_t t0 = now_ns();
        const std::int64_t deadline = t0 + std::chrono::duration_cast<std::chrono::nanoseconds>(k_after).count();
        switch (f) {
          case pool_timer:
            handles[i] = pool.post_after(k_after, stamp{i % k_items, deadline, i});
            break;
          case sleep_until:
            sleeper_deadline.store(deadline, std::memory_order_release);
            sleeper_deadline.notify_one();
            break;
#ifdef MTP_BENCH_HAVE_ASIO
          default:
            asio::post(io, [&, deadline, i] {
              timer.expires_at(clock_type::time_point(std::chrono::nanoseconds(deadline)));
              timer.async_wait([&, deadline, i](const std::error_code&) {
                logs[asio_timer].record(i, now_ns() - deadline);
              });
            });
            break;
#endif
        }
        // The caller sleeps through the deadline: only the measured timer is running.
        std::this_thread::sleep_until(clock_type::time_point(std::chrono::nanoseconds(deadline)) + 1ms);
        lost = !logs[f].wait_for(i);
      }
    }
  }
  sleeper_deadline.store(0, std::memory_order_release);
  sleeper_deadline.notify_one();
  sleeper.join();
#ifdef MTP_BENCH_HAVE_ASIO
  guard.reset();
  io_thread.join();
#endif
  g_pool_log = nullptr;
  if (lost) return fail(state, "a timer did not fire within 1 s of its deadline");

  const auto report = [&](int f, const std::string& name) {
    std::vector<double> v = logs[f].ns;
    const percentiles p = summarise(v);
    state.counters[name + "_p50_us"] = p.p50 / 1000.0;
    state.counters[name + "_p99_us"] = p.p99 / 1000.0;
    return p;
  };
  const percentiles pool_p = report(pool_timer, "pool");
  const percentiles sleep_p = report(sleep_until, "sleep_until");
  state.counters["pool_p50_over_sleep_until"] = pool_p.p50 / sleep_p.p50;
#ifdef MTP_BENCH_HAVE_ASIO
  const percentiles asio_p = report(asio_timer, "asio");
  state.counters["pool_p50_over_asio"] = pool_p.p50 / asio_p.p50;
#endif
  state.counters["samples"] = static_cast<double>(samples);
  // The kernel's timer slack of this thread, which the pool's workers and the plain thread
  // inherit: how late the kernel may end a timed sleep to batch wake-ups (futex, nanosleep).
  state.counters["timer_slack_us"] = static_cast<double>(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)) / 1000.0;
  state.counters["after_us"] = static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(k_after).count());
}

// ---- Registration -----------------------------------------------------------------------------

}  // namespace

// Sizes that depend on --quick are read when each one runs.
void register_timers() {
  benchmark::RegisterBenchmark("timers/rearm/batch:10000/items:1000",
                               [](benchmark::State& s) { rearm_batch(s, 10000, k_items); })
      ->UseRealTime()
      ->MinTime(0.3)
      ->Unit(benchmark::kMicrosecond)
      ->Repetitions(5)
      ->ReportAggregatesOnly(true);
  benchmark::RegisterBenchmark("timers/schedule_cancel/calls:1000", [](benchmark::State& s) { schedule_cancel(s, 1000); })
      ->UseRealTime()
      ->MinTime(0.2)
      ->Unit(benchmark::kMicrosecond)
      ->Repetitions(5)
      ->ReportAggregatesOnly(true);
  benchmark::RegisterBenchmark("timers/memory/timers:1000000", [](benchmark::State& s) { pending_memory(s, 1000000); })
      ->UseRealTime()
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond)
      ->Repetitions(3)
      ->ReportAggregatesOnly(true);
  benchmark::RegisterBenchmark("timers/lateness/after:1ms", [](benchmark::State& s) { lateness(s); })
      ->UseRealTime()
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond)
      ->Repetitions(5)
      ->ReportAggregatesOnly(true);
}

}  // namespace bench
