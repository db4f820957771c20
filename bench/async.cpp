// SPDX-License-Identifier: MIT
// Async callers (built when standalone Asio is found):
//   async/awaitable/in_flight:N   one I/O thread (an io_context) keeps N coroutines busy, each
//                                 co_awaiting mtp::asio::async_send(..., asio::use_awaitable)
//                                 back to back: messages/s, and p50/p99 from co_await to resumption.
//   async/core_awaitable/in_flight:N
//                                 the same with the core's awaitable, co_await mtp::async(pool,
//                                 r, resume_on) from a minimal coroutine type, resumed through
//                                 asio::post to the I/O thread (no Asio adapter involved).
//   async/callback/in_flight:N    the same as awaitable/, with completion handlers instead of
//                                 coroutines: N chains, each handler (bound to the io_context)
//                                 starting its chain's next mtp::asio::async_send.
//   async/asio_self/in_flight:N   no pool: N coroutines on the I/O thread each co_await
//                                 asio::post(io, use_awaitable) back to back, the cost of one
//                                 use_awaitable suspension and resumption through the
//                                 io_context's queue, which every awaitable/ request also pays.
//   async/asio_hop/in_flight:1    the cheapest plain-Asio hop to another thread and back: a
//                                 coroutine on the I/O thread co_awaits asio::post(executor of
//                                 a second io_context run by another thread, use_awaitable),
//                                 which resumes it on its own executor.
//   async/completions/<channel>/producers:P
//                                 the channel that carries completions back to an I/O thread,
//                                 alone: P threads (standing for workers) each complete N
//                                 operations as fast as they can; one thread runs the
//                                 io_context, where each completion runs (a counter). Channels:
//                                 post: one asio::post per completion (the adapter before);
//                                 ready_list: the adapter's intrusive lock-free list, one
//                                 posted drain per empty-to-non-empty transition;
//                                 moodycamel: ConcurrentQueue, a ProducerToken per producer
//                                 (one SPSC block ring each), a flag for the posted drain, and
//                                 try_dequeue_bulk. Completions/s and executor posts per
//                                 completion.
//   async/send/callers:T          the blocking round trip (pool.send) from T threads.
//   async/send_batch/batch:100    one thread, blocking send_batch of 100 requests back to back.
//   async/session_server/<design>/io_threads:T/connections:C
//                                 the example session server (examples/session_server.hpp) on
//                                 127.0.0.1 with T I/O threads and C client connections, each
//                                 sending "add 1" and waiting for the reply: requests/s and
//                                 p50/p99 per request (after one untimed request that opens the
//                                 session). design pool: sessions are pool items (on
//                                 bench_workers() workers); mutex: the conventional design,
//                                 sessions in a map behind a mutex run on the I/O threads.
// Items: 1,000 echo items on bench_workers() workers (2 by default), ids round-robin.
#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include <mtp/asio.hpp>

#include <concurrentqueue/concurrentqueue.h>

#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/read_until.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "common.hpp"
#include "items.hpp"
#include "session_server.hpp"

namespace bench {
namespace {

constexpr std::size_t k_items = 1000;

void record(benchmark::State& state, std::vector<double>& ns, double seconds, std::size_t messages) {
  const percentiles p = summarise(ns);
  state.SetIterationTime(seconds);
  state.SetItemsProcessed(static_cast<std::int64_t>(messages));
  state.counters["msgs_per_s"] = static_cast<double>(messages) / seconds;
  state.counters["p50_us"] = p.p50 / 1000.0;
  state.counters["p99_us"] = p.p99 / 1000.0;
}

// The k_items echo items every row sends to, ids 0 .. k_items - 1.
void create_items(mtp::thread_pool<echo_item>& pool) {
  std::vector<mtp::id_t> ids(k_items);
  for (std::size_t i = 0; i < k_items; ++i) ids[i] = i;
  for (auto& r : pool.create_batch(ids)) r.value();
}

std::size_t total_messages(std::size_t in_flight) {
  const std::size_t base = config().quick ? 20000 : 200000;
  return in_flight == 1 ? base / 4 : base;
}

// What the in_flight rows share: `in_flight` clients on one I/O thread (a fresh io_context
// each iteration), `per` requests each. start(io, per, ns, wrong) starts them and returns what
// must live while the context runs; messages/s, and the latency of every request in `ns`.
template <class Start>
void in_flight_row(benchmark::State& state, std::size_t in_flight, Start start) {
  const std::size_t per = total_messages(in_flight) / in_flight;
  std::vector<double> ns;
  std::uint64_t wrong = 0;
  for (auto _ : state) {
    ns.clear();
    ns.reserve(per * in_flight);
    asio::io_context io(1);
    [[maybe_unused]] const auto keep = start(io, per, ns, wrong);
    const auto t0 = clock_type::now();
    io.run();
    record(state, ns, elapsed_ns(t0, clock_type::now()) / 1e9, per * in_flight);
  }
  if (wrong != 0) return fail(state, std::to_string(wrong) + " wrong replies");
  state.counters["in_flight"] = static_cast<double>(in_flight);
}

void awaitable_in_flight(benchmark::State& state, std::size_t in_flight) {
  mtp::thread_pool<echo_item> pool(pool_options_for(bench_workers(), where::fallback));
  create_items(pool);
  in_flight_row(state, in_flight, [&](asio::io_context& io, std::size_t per, std::vector<double>& ns, std::uint64_t& wrong) {
    for (std::size_t c = 0; c < in_flight; ++c) {
      asio::co_spawn(
          io,
          [&, c, per]() -> asio::awaitable<void> {
            for (std::size_t i = 0; i < per; ++i) {
              const mtp::id_t id = (c + i * in_flight) % k_items;
              const auto t0 = clock_type::now();
              const std::uint64_t r = co_await mtp::asio::async_send(pool, ping{id, i}, asio::use_awaitable);
              ns.push_back(elapsed_ns(t0, clock_type::now()));
              if (r != i + id) ++wrong;
            }
          },
          asio::detached);
    }
    return 0;
  });
}

// A coroutine that starts at once and frees itself at the end (the core's awaitables need no
// framework).
struct detached_task {
  struct promise_type {
    detached_task get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

void core_awaitable_in_flight(benchmark::State& state, std::size_t in_flight) {
  mtp::thread_pool<echo_item> pool(pool_options_for(bench_workers(), where::fallback));
  create_items(pool);
  const std::size_t total = total_messages(in_flight);
  const std::size_t per = total / in_flight;
  std::vector<double> ns;
  std::uint64_t wrong = 0;
  for (auto _ : state) {
    ns.clear();
    ns.reserve(per * in_flight);
    asio::io_context io(1);
    // The coroutines wait on the pool, not on the io_context: keep run() going until the last
    // one has finished.
    auto busy = asio::make_work_guard(io);
    std::size_t finished = 0;
    auto resume_on = [&io](std::coroutine_handle<> h) { asio::post(io, [h] { h.resume(); }); };
    auto client = [&](std::size_t c) -> detached_task {
      for (std::size_t i = 0; i < per; ++i) {
        const mtp::id_t id = (c + i * in_flight) % k_items;
        const ping request{id, i};
        const auto t0 = clock_type::now();
        const std::uint64_t r = co_await mtp::async(pool, request, resume_on);
        ns.push_back(elapsed_ns(t0, clock_type::now()));
        if (r != i + id) ++wrong;
      }
      if (++finished == in_flight) busy.reset();  // on the I/O thread: no lock
    };
    // Started from the I/O thread, as the adapter's coroutines are.
    asio::post(io, [&] {
      for (std::size_t c = 0; c < in_flight; ++c) client(c);
    });
    const auto t0 = clock_type::now();
    io.run();
    record(state, ns, elapsed_ns(t0, clock_type::now()) / 1e9, per * in_flight);
  }
  if (wrong != 0) return fail(state, std::to_string(wrong) + " wrong replies");
  state.counters["in_flight"] = static_cast<double>(in_flight);
}

// One chain of callback_in_flight: sends request i to its item, and from the handler the next.
struct callback_chain {
  mtp::thread_pool<echo_item>* pool;
  asio::io_context* io;
  std::vector<double>* ns;
  std::uint64_t* wrong;
  std::size_t c, in_flight, per, i = 0;
  clock_type::time_point t0{};

  void next() {
    if (i == per) return;
    const mtp::id_t id = (c + i * in_flight) % k_items;
    t0 = clock_type::now();
    mtp::asio::async_send(*pool, ping{id, i}, asio::bind_executor(*io, [this, id](std::error_code ec, std::uint64_t r) {
                            ns->push_back(elapsed_ns(t0, clock_type::now()));
                            if (ec || r != i + id) ++*wrong;
                            ++i;
                            next();
                          }));
  }
};

void callback_in_flight(benchmark::State& state, std::size_t in_flight) {
  mtp::thread_pool<echo_item> pool(pool_options_for(bench_workers(), where::fallback));
  create_items(pool);
  in_flight_row(state, in_flight, [&](asio::io_context& io, std::size_t per, std::vector<double>& ns, std::uint64_t& wrong) {
    std::vector<callback_chain> chains;  // returned: it lives while the context runs
    chains.reserve(in_flight);
    for (std::size_t c = 0; c < in_flight; ++c) chains.push_back({&pool, &io, &ns, &wrong, c, in_flight, per});
    asio::post(io, [first = chains.data(), n = chains.size()] {  // from the I/O thread, as the coroutines start
      for (std::size_t c = 0; c < n; ++c) first[c].next();
    });
    return chains;
  });
}

void asio_self(benchmark::State& state, std::size_t in_flight) {
  in_flight_row(state, in_flight, [&](asio::io_context& io, std::size_t per, std::vector<double>& ns, std::uint64_t&) {
    for (std::size_t c = 0; c < in_flight; ++c) {
      asio::co_spawn(
          io,
          [&io, &ns, per]() -> asio::awaitable<void> {
            for (std::size_t i = 0; i < per; ++i) {
              const auto t0 = clock_type::now();
              co_await asio::post(io, asio::use_awaitable);
              ns.push_back(elapsed_ns(t0, clock_type::now()));
            }
          },
          asio::detached);
    }
    return 0;
  });
}

void asio_hop(benchmark::State& state) {
  asio::io_context other(1);
  auto guard = asio::make_work_guard(other);
  std::thread other_thread([&other] { other.run(); });
  const std::size_t per = total_messages(1);
  std::vector<double> ns;
  for (auto _ : state) {
    ns.clear();
    ns.reserve(per);
    asio::io_context io(1);
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          for (std::size_t i = 0; i < per; ++i) {
            const auto t0 = clock_type::now();
            co_await asio::post(other.get_executor(), asio::use_awaitable);
            ns.push_back(elapsed_ns(t0, clock_type::now()));
          }
        },
        asio::detached);
    const auto t0 = clock_type::now();
    io.run();
    record(state, ns, elapsed_ns(t0, clock_type::now()) / 1e9, per);
  }
  guard.reset();
  other_thread.join();
}

enum class channel { post, ready_list, moodycamel };

struct completion_node {
  completion_node* ready_next = nullptr;  // mtp::asio::impl::ready_list's link
  std::uint64_t value = 0;
};

// P producers complete `per` operations each; the io_context's thread runs them.
void completions(benchmark::State& state, channel kind, std::size_t producers) {
  const std::size_t per = config().quick ? 200000 : 1000000;
  const std::size_t total = per * producers;
  std::vector<completion_node> nodes(total);
  for (auto _ : state) {
    asio::io_context io(1);
    auto busy = asio::make_work_guard(io);
    std::uint64_t ran = 0, sum = 0, posts = 0;  // on the io_context's thread only
    auto run_one = [&](completion_node* n) {
      sum += n->value;
      if (++ran == total) busy.reset();
    };
    mtp::asio::impl::ready_list<completion_node> list;
    moodycamel::ConcurrentQueue<completion_node*> queue;
    std::atomic<bool> scheduled{false};
    auto drain_list = [&] {
      ++posts;
      for (completion_node* n = list.take(); n != nullptr;) {
        completion_node* const next = n->ready_next;
        run_one(n);
        n = next;
      }
    };
    auto drain_queue = [&] {
      ++posts;
      // seq_cst: a producer that enqueued after this store sees it clear and posts again; one
      // that saw it set had enqueued before the dequeues below.
      scheduled.store(false, std::memory_order_seq_cst);
      completion_node* got[256];
      std::size_t n = 0;
      while ((n = queue.try_dequeue_bulk(got, 256)) != 0) {
        for (std::size_t i = 0; i < n; ++i) run_one(got[i]);
      }
    };
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (std::size_t p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        moodycamel::ProducerToken token(queue);
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        for (std::size_t i = 0; i < per; ++i) {
          completion_node* n = &nodes[p * per + i];
          n->value = i;
          switch (kind) {
            case channel::post:
              asio::post(io, [&, n] {
                ++posts;
                run_one(n);
              });
              break;
            case channel::ready_list:
              if (list.push(n)) asio::post(io, drain_list);
              break;
            case channel::moodycamel:
              queue.enqueue(token, n);
              std::atomic_thread_fence(std::memory_order_seq_cst);  // the enqueue before the flag's read
              if (!scheduled.load(std::memory_order_seq_cst) && !scheduled.exchange(true, std::memory_order_seq_cst)) {
                asio::post(io, drain_queue);
              }
              break;
          }
        }
      });
    }
    const auto t0 = clock_type::now();
    go.store(true, std::memory_order_release);
    io.run();
    const double seconds = elapsed_ns(t0, clock_type::now()) / 1e9;
    for (auto& t : threads) t.join();
    state.SetIterationTime(seconds);
    state.SetItemsProcessed(static_cast<std::int64_t>(total));
    state.counters["msgs_per_s"] = static_cast<double>(total) / seconds;
    state.counters["posts_per_completion"] = static_cast<double>(posts) / static_cast<double>(total);
    if (sum != producers * (per * (per - 1) / 2)) return fail(state, "lost completions");
  }
  state.counters["producers"] = static_cast<double>(producers);
}

void blocking_send(benchmark::State& state, std::size_t callers) {
  mtp::thread_pool<echo_item> pool(pool_options_for(bench_workers(), where::fallback));
  create_items(pool);
  const std::size_t per = total_messages(1) / callers;
  std::vector<std::vector<double>> per_thread(callers);
  std::atomic<std::uint64_t> wrong{0};
  for (auto _ : state) {
    std::vector<std::thread> threads;
    const auto t0 = clock_type::now();
    for (std::size_t t = 0; t < callers; ++t) {
      threads.emplace_back([&, t] {
        auto& mine = per_thread[t];
        mine.clear();
        mine.reserve(per);
        for (std::size_t i = 0; i < per; ++i) {
          const mtp::id_t id = (t + i * callers) % k_items;
          const auto a = clock_type::now();
          if (pool.send(ping{id, i}) != i + id) wrong.fetch_add(1);
          mine.push_back(elapsed_ns(a, clock_type::now()));
        }
      });
    }
    for (auto& th : threads) th.join();
    const double seconds = elapsed_ns(t0, clock_type::now()) / 1e9;
    std::vector<double> all;
    for (auto& v : per_thread) all.insert(all.end(), v.begin(), v.end());
    record(state, all, seconds, per * callers);
  }
  if (wrong.load() != 0) return fail(state, "wrong replies");
  state.counters["callers"] = static_cast<double>(callers);
}

void batch_path(benchmark::State& state, std::size_t batch) {
  mtp::thread_pool<echo_item> pool(pool_options_for(bench_workers(), where::fallback));
  create_items(pool);
  const std::size_t rounds = total_messages(100) / batch;
  std::vector<ping> requests(batch);
  std::vector<mtp::result<std::uint64_t>> out(batch);
  std::vector<double> ns;
  std::uint64_t wrong = 0;
  for (auto _ : state) {
    ns.clear();
    const auto t0 = clock_type::now();
    for (std::size_t r = 0; r < rounds; ++r) {
      for (std::size_t i = 0; i < batch; ++i) requests[i] = ping{(r * batch + i) % k_items, i};
      const auto a = clock_type::now();
      pool.send_batch(std::span<const ping>(requests), std::span<mtp::result<std::uint64_t>>(out));
      ns.push_back(elapsed_ns(a, clock_type::now()));
      for (std::size_t i = 0; i < batch; ++i) wrong += out[i].value() != i + requests[i].id ? 1 : 0;
    }
    record(state, ns, elapsed_ns(t0, clock_type::now()) / 1e9, rounds * batch);
  }
  if (wrong != 0) return fail(state, std::to_string(wrong) + " wrong replies");
  state.counters["batch"] = static_cast<double>(batch);
}

void session_server_bench(benchmark::State& state, session_server::design mode, std::size_t io_threads,
                          std::size_t connections) {
  session_server::server srv({.port = 0, .io_threads = io_threads, .workers = bench_workers(), .mode = mode});
  srv.start();
  const std::size_t total = config().quick ? 10000 : 60000;
  const std::size_t per = std::max<std::size_t>(total / connections, 20);
  std::vector<double> ns;
  std::uint64_t wrong = 0, failed = 0;
  for (auto _ : state) {
    ns.clear();
    ns.reserve(per * connections);
    asio::io_context io(1);
    const auto t0 = clock_type::now();
    for (std::size_t c = 0; c < connections; ++c) {
      asio::co_spawn(
          io,
          [&]() -> asio::awaitable<void> {
            asio::ip::tcp::socket s(io);
            co_await s.async_connect({asio::ip::make_address("127.0.0.1"), srv.port()}, asio::use_awaitable);
            s.set_option(asio::ip::tcp::no_delay(true));
            std::string buffer;
            // One untimed "get" first: the session is open before the timed requests (in the
            // pool design its creation is a round trip to a worker, awaited by the session).
            static const std::string warm_up = "get\n";
            co_await asio::async_write(s, asio::buffer(warm_up), asio::use_awaitable);
            buffer.erase(0, co_await asio::async_read_until(s, asio::dynamic_buffer(buffer), '\n', asio::use_awaitable));
            static const std::string request = "add 1\n";
            for (std::size_t i = 1; i <= per; ++i) {
              const auto a = clock_type::now();
              co_await asio::async_write(s, asio::buffer(request), asio::use_awaitable);
              const std::size_t n =
                  co_await asio::async_read_until(s, asio::dynamic_buffer(buffer), '\n', asio::use_awaitable);
              ns.push_back(elapsed_ns(a, clock_type::now()));
              if (buffer.compare(0, n - 1, "ok " + std::to_string(i)) != 0) ++wrong;
              buffer.erase(0, n);
            }
          },
          [&](std::exception_ptr e) { failed += e ? 1 : 0; });
    }
    io.run();
    record(state, ns, elapsed_ns(t0, clock_type::now()) / 1e9, ns.size());
  }
  if (wrong != 0 || failed != 0) {
    return fail(state, std::to_string(wrong) + " wrong replies, " + std::to_string(failed) + " failed clients");
  }
  state.counters["connections"] = static_cast<double>(connections);
}

void add(const std::string& name, auto fn) {
  repeat(benchmark::RegisterBenchmark(name.c_str(), fn)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond),
         3, 1);
}

}  // namespace

void register_async() {
  for (std::size_t n : {1, 100, 10000}) {
    add("async/awaitable/in_flight:" + std::to_string(n), [n](benchmark::State& s) { awaitable_in_flight(s, n); });
  }
  for (std::size_t n : {1, 10000}) {
    add("async/core_awaitable/in_flight:" + std::to_string(n), [n](benchmark::State& s) { core_awaitable_in_flight(s, n); });
  }
  add("async/callback/in_flight:10000", [](benchmark::State& s) { callback_in_flight(s, 10000); });
  add("async/asio_self/in_flight:10000", [](benchmark::State& s) { asio_self(s, 10000); });
  add("async/asio_hop/in_flight:1", [](benchmark::State& s) { asio_hop(s); });
  for (std::size_t p : {1, 2}) {
    const std::string tail = "/producers:" + std::to_string(p);
    add("async/completions/post" + tail, [p](benchmark::State& s) { completions(s, channel::post, p); });
    add("async/completions/ready_list" + tail, [p](benchmark::State& s) { completions(s, channel::ready_list, p); });
    add("async/completions/moodycamel" + tail, [p](benchmark::State& s) { completions(s, channel::moodycamel, p); });
  }
  for (std::size_t t : {1, 8}) {
    add("async/send/callers:" + std::to_string(t), [t](benchmark::State& s) { blocking_send(s, t); });
  }
  add("async/send_batch/batch:100", [](benchmark::State& s) { batch_path(s, 100); });
  for (std::size_t t : {1, 2}) {
    for (std::size_t c : {1, 64, 1000}) {
      const std::string tail = "/io_threads:" + std::to_string(t) + "/connections:" + std::to_string(c);
      add("async/session_server/pool" + tail,
          [t, c](benchmark::State& s) { session_server_bench(s, session_server::design::pool, t, c); });
      add("async/session_server/mutex" + tail,
          [t, c](benchmark::State& s) { session_server_bench(s, session_server::design::mutex_in_io_threads, t, c); });
    }
  }
}

}  // namespace bench
