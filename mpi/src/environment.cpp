// SPDX-License-Identifier: MIT
// The environment and the communication thread: the only code that calls MPI.
#include <mtp/mpi/environment.hpp>

#include <mpi.h>

#include <cxxabi.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

namespace mtp::mpi {

const char* to_string(thread_level level) noexcept {
  switch (level) {
    case thread_level::single: return "MPI_THREAD_SINGLE";
    case thread_level::funneled: return "MPI_THREAD_FUNNELED";
    case thread_level::serialized: return "MPI_THREAD_SERIALIZED";
    case thread_level::multiple: return "MPI_THREAD_MULTIPLE";
  }
  return "?";
}

remote_error::remote_error(int rank, std::string type, std::string what)
    : std::runtime_error(type + ": " + what), rank_(rank), type_(std::move(type)), what_(std::move(what)) {}

namespace impl {

namespace {
constexpr int k_tag = 1;
constexpr int k_bundle_tag = 2;  // several messages in one: [u32 count] then [u32 size, bytes] each
// A message larger than the piece size (MPI counts are int: 2 GiB at most) travels as its size
// (k_large_tag: a u64) and then its pieces (k_piece_tag); a source's messages arrive in order,
// and nothing else from that source comes between them (they are sent together). A message
// with borrowed parts travels the same way, each piece one part or one stretch of its own
// bytes, so that the parts go from where they lie.
constexpr int k_large_tag = 3;
constexpr int k_piece_tag = 4;
constexpr std::size_t k_max_piece = std::size_t{1} << 30;
// Buffers larger than this are given back rather than kept for the next message.
constexpr std::size_t k_keep_max = std::size_t{64} << 20;
// The thread runs under the communication thread's rules: the communication thread itself,
// or a thread making a round of progress (engine::drive), while it delivers messages.
thread_local bool t_comm_thread = false;
thread_local bool t_engine_thread = false;  // the communication thread itself
thread_local const char t_me = 0;           // its address names the thread that queued a message

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status), std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(name);
}
}  // namespace

bool on_communication_thread() noexcept { return t_comm_thread; }

int describe(const std::exception_ptr& e, int here, std::string& type, std::string& what) {
  try {
    std::rethrow_exception(e);
  } catch (const remote_error& r) {  // passed on from a further rank: keep its parts
    type = r.type_name();
    what = r.remote_what();
    return r.rank();
  } catch (const std::exception& x) {
    type = demangle(typeid(x).name());
    what = x.what();
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    type = t != nullptr ? demangle(t->name()) : std::string("unknown exception");
    what.clear();
  }
  return here;
}

// A round of sums over every rank of (messages sent, messages received) on one communicator
// (MPI_Iallreduce), which this rank joins when its client says so: shutdown's termination and
// quiesce() both count this way. Under the progress lock (engine::progress_m_).
struct count_round {
  bool running = false;
  MPI_Request req = MPI_REQUEST_NULL;
  long long in[2] = {0, 0};
  long long out[2] = {0, 0};  // the sums, once a round has completed

  void join(long long sent, long long received, MPI_Comm comm) {
    in[0] = sent;
    in[1] = received;
    MPI_Iallreduce(in, out, 2, MPI_LONG_LONG, MPI_SUM, comm, &req);
    running = true;
  }
  // Whether the round running has just completed (its sums are in `out`).
  bool completed() {
    if (!running) return false;
    int done = 0;
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    running = done == 0;
    return done != 0;
  }
};

class channel {
 public:
  explicit channel(channel_client& c) : client(&c) {}
  channel_client* client;
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Request dup = MPI_REQUEST_NULL;
  std::atomic<long long> sent{0};  // counted when queued, so a queued message is "in flight"
  long long received = 0;           // under the progress lock
  struct assembly {
    std::unique_ptr<char[]> bytes;  // the whole message (left uninitialised: the pieces fill it)
    std::size_t size = 0;
    std::size_t capacity = 0;  // of bytes (a reused buffer may be larger than size)
    std::size_t filled = 0;    // by the pieces so far
  };
  std::map<int, assembly> assembling;  // by source: a large message arriving in pieces
  // Termination (under the progress lock, except the flags read under the engine mutex).
  bool ready = false;
  bool close_requested = false;
  bool closed = false;
  count_round ending_round;
  // Barriers asked by users: 0 none, 1 asked, 2 running, 3 passed.
  int barrier_state = 0;
  MPI_Request barrier = MPI_REQUEST_NULL;
  // Quiescence asked by users: 0 none, 1 asked, 2 running, 3 reached (under the engine mutex).
  // Rounds of sums of (sent, received), each joined once this rank is idle, until two rounds
  // in a row agree and sent == received: counts only grow, so equal sums mean no rank sent or
  // received anything between its two joins, and nothing is in flight.
  int quiesce_state = 0;
  count_round quiesce_round;  // under the progress lock, from here on
  long long quiesce_last[2] = {-1, -1};

  void join(count_round& r) { r.join(sent.load(std::memory_order_relaxed), received, comm); }
};

namespace {

struct outgoing {
  channel* c;
  int dest;
  std::vector<char> bytes;
  std::vector<borrowed> parts{};   // sent from where they lie (send_borrowing)
  std::function<void()> sent{};  // runs once MPI no longer reads the parts
  const char* from = nullptr;    // the queuing thread (&t_me)
};
struct group {  // outgoing messages of one pass for one channel and destination
  channel* c;
  int dest;
  std::vector<std::size_t> members;
  std::size_t bytes;  // as a bundle
  bool alone;         // a message with borrowed parts: no other joins its group
};
struct in_transit {
  MPI_Request req;
  std::vector<char> bytes;
  std::vector<MPI_Request> pieces;       // a large message: the requests of its size and pieces
  std::unique_ptr<std::uint64_t> size;  // a large message: its size, being sent
  std::function<void()> sent{};         // a message with borrowed parts: runs once it is sent
};

class engine {
 public:
  engine() : spin_(spin_from_env()), piece_(piece_from_env()), thread_([this] { run(); }) {
    CPU_ZERO(&initial_);
    (void)pthread_getaffinity_np(thread_.native_handle(), sizeof initial_, &initial_);
  }
  ~engine() {
    {
      std::lock_guard lock(m_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  // Pins the communication thread to `cpus`; returns a token for unpin(), or 0 with `why`.
  std::uint64_t pin(const std::vector<unsigned>& cpus, std::string& why) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (const unsigned cpu : cpus) {
      if (cpu >= CPU_SETSIZE) {
        why = "CPU " + std::to_string(cpu) + " is beyond the " + std::to_string(CPU_SETSIZE) + " CPUs a cpu_set_t holds";
        return 0;
      }
      CPU_SET(cpu, &set);
    }
    std::lock_guard lock(pin_m_);
    if (const int rc = pthread_setaffinity_np(thread_.native_handle(), sizeof set, &set); rc != 0) {
      why = std::string("pthread_setaffinity_np: ") + std::strerror(rc);
      return 0;
    }
    return pinned_by_ = ++pins_;
  }
  // Lets the thread run where it could at start again, unless a later pin() replaced `token`'s.
  void unpin(std::uint64_t token) {
    std::lock_guard lock(pin_m_);
    if (token == 0 || token != pinned_by_) return;
    (void)pthread_setaffinity_np(thread_.native_handle(), sizeof initial_, &initial_);
    pinned_by_ = 0;
  }
  std::vector<unsigned> cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<unsigned> out;
    if (pthread_getaffinity_np(thread_.native_handle(), sizeof set, &set) != 0) return out;
    for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) out.push_back(cpu);
    }
    return out;
  }

  void open(channel_client& client, channel*& slot) {
    auto c = std::make_unique<channel>(client);
    slot = c.get();  // before the communication thread can deliver anything to the client
    std::unique_lock lock(m_);
    opening_.push_back(c.get());
    wake_.notify_one();
    users_.wait(lock, [&] { return c->ready; });
    (void)c.release();  // freed by close
  }

  // `parts`, if any, are sent from where they lie; `sent` runs once MPI no longer reads them.
  void send(channel* c, int dest, std::vector<char>&& bytes, std::vector<borrowed>&& parts = {},
            std::function<void()> sent = {}) {
    c->sent.fetch_add(1, std::memory_order_relaxed);
    bool sleeping = false;
    {
      std::lock_guard lock(m_);
      outbox_.push_back({c, dest, std::move(bytes), std::move(parts), std::move(sent), &t_me});
      sleeping = sleeping_;
    }
    // The queuing thread sends it itself when no other thread is making progress: no hand-off
    // to the communication thread. It still wakes that thread if it sleeps, for what comes
    // back (an asynchronous caller does not wait for its reply).
    // (Waiting a few microseconds for the lock, a round's length, measured slower at 2 ranks
    // on 2 vCPUs: 10.2-12.0 against 10.0-10.5 us per round trip.)
    if (!t_comm_thread) {
      std::unique_lock progress(progress_m_, std::try_to_lock);
      if (progress.owns_lock()) {
        flush();
        progress.unlock();
        // The communication thread may have found the queue empty (this thread had taken the
        // message) and be about to sleep, with the reply on its way: tell it there was traffic
        // (it then polls again instead of sleeping), or wake it if it already sleeps.
        const std::lock_guard lock(m_);
        flushed_ = true;
        sleeping = sleeping_;
      }
    }
    if (sleeping) wake_.notify_one();
  }

  void quiesce(channel* c) {
    std::unique_lock lock(m_);
    c->quiesce_state = 1;
    quiescing_.push_back(c);
    wake_.notify_one();
    users_.wait(lock, [&] { return c->quiesce_state == 3; });
    c->quiesce_state = 0;
  }

  void barrier(channel* c) {
    std::unique_lock lock(m_);
    c->barrier_state = 1;
    barriers_.push_back(c);
    wake_.notify_one();
    users_.wait(lock, [&] { return c->barrier_state == 3; });
    c->barrier_state = 0;
  }

  // Buffers of sent messages, kept for the next ones: at most k_spare, the largest first.
  std::vector<char> take() {
    std::lock_guard lock(spare_m_);
    if (spare_.empty()) return {};
    std::vector<char> b = std::move(spare_.back());
    spare_.pop_back();
    return b;
  }
  void recycle(std::vector<char>&& b) {
    if (b.capacity() < 4096 || b.capacity() > k_keep_max) return;  // small ones cost nothing to allocate
    std::lock_guard lock(spare_m_);
    if (spare_.size() >= k_spare) {
      auto smallest = std::min_element(spare_.begin(), spare_.end(),
                                       [](const auto& x, const auto& y) { return x.capacity() < y.capacity(); });
      if (smallest->capacity() >= b.capacity()) return;
      *smallest = std::move(b);
    } else {
      spare_.push_back(std::move(b));
    }
    std::sort(spare_.begin(), spare_.end(), [](const auto& x, const auto& y) { return x.capacity() < y.capacity(); });
  }

  void close(channel* c) {
    std::unique_lock lock(m_);
    c->close_requested = true;
    closing_.push_back(c);
    wake_.notify_one();
    users_.wait(lock, [&] { return c->closed; });
    lock.unlock();
    delete c;
  }

 private:
  // The communication thread: rounds of progress (pass) while there is traffic; idle, it
  // polls yielding, then sleeps in short steps. A thread waiting for a reply, or sending, may
  // make the progress itself meanwhile (drive, flush): the thread here then finds the progress
  // lock taken and lets it be.
  void run() {
    t_comm_thread = true;
    t_engine_thread = true;
    unsigned long long seen_drives = 0;  // drive_rounds_ at the last look
    for (;;) {
      bool busy = false;
      bool stop = false;
      bool pending = false;  // work that needs polling: sends in transit, collectives running
      clock::time_point last_busy;
      {
        // A caller waiting for its reply makes progress itself: leave it alone while it does
        // (its rounds go on between two looks here), and take over when it stops, or stalls
        // (say, preempted), for as long as one yield.
        const unsigned long long drives = drive_rounds_.load(std::memory_order_relaxed);
        const bool driven = drivers_.load(std::memory_order_relaxed) > 0 && drives != seen_drives;
        seen_drives = drives;
        std::unique_lock progress(progress_m_, std::defer_lock);
        if (driven || !progress.try_lock()) {  // another thread is making progress
          std::this_thread::yield();
          continue;
        }
        busy = pass(stop);
        if (stop) break;
        pending = !ps_.transit.empty() || !ps_.ending.empty() || !ps_.starting.empty() || !ps_.waiting.empty() ||
                  !ps_.settling.empty();
        last_busy = ps_.last_busy;
      }
      if (busy) continue;
      const auto idle = clock::now() - last_busy;
      if (idle < spin_) continue;  // poll without a system call: a reply is usually close behind
      // Sends still in transit need progress (large messages go in pieces).
      if (idle < std::chrono::microseconds(200) || pending) {
        std::this_thread::yield();
        continue;
      }
      std::unique_lock lock(m_);
      if (std::exchange(flushed_, false)) continue;  // a sender made progress meanwhile
      if (!outbox_.empty() || !opening_.empty() || !closing_.empty() || !barriers_.empty() || !quiescing_.empty() ||
          stop_)
        continue;
      sleeping_ = true;
      wake_.wait_for(lock, idle < std::chrono::milliseconds(20) ? std::chrono::microseconds(50)
                                                                 : std::chrono::microseconds(1000));
      sleeping_ = false;
    }
    const std::lock_guard progress(progress_m_);
    if (const char* v = std::getenv("MTP_MPI_STATS"); v != nullptr && *v == '1') {
      std::fprintf(stderr, "mtp::mpi: %llu messages sent in %llu MPI messages\n",
                   static_cast<unsigned long long>(messages_), static_cast<unsigned long long>(mpi_messages_));
    }
    if (!ps_.live.empty()) {
      std::fprintf(stderr, "mtp::mpi: the environment ends while %zu sharded pool(s) are still open\n",
                   ps_.live.size());
    }
  }

 public:
  // One round of progress on a thread that waits for a reply, when no other thread is making
  // progress: its own message goes out and its reply comes in without a thread hand-off.
  bool drive() noexcept {
    if (t_comm_thread) return false;  // inside a delivery, or the communication thread itself
    const std::unique_lock progress(progress_m_, std::try_to_lock);
    if (!progress.owns_lock()) return false;
    // relaxed: a hint to the communication thread (see run), ordered by nothing.
    drive_rounds_.fetch_add(1, std::memory_order_relaxed);
    // What the pass delivers (async callbacks among it) runs under the communication thread's
    // rules: a blocking call from there fails with would_deadlock instead of waiting for itself.
    t_comm_thread = true;
    struct restore {
      ~restore() { t_comm_thread = false; }
    } const guard;
    bool stop = false;
    return pass(stop);
  }
  // A thread starts waiting for a reply, and will drive progress.
  void start_driving() {
    // relaxed: a hint to the communication thread (see run).
    drivers_.fetch_add(1, std::memory_order_relaxed);
  }
  // A thread that drove progress is about to sleep, or has its reply: the communication
  // thread takes over.
  void stop_driving() {
    drivers_.fetch_sub(1, std::memory_order_relaxed);  // relaxed: as in start_driving
    bool sleeping = false;
    {
      const std::lock_guard lock(m_);
      sleeping = sleeping_;
    }
    if (sleeping) wake_.notify_one();
  }
  // No lock: a callback delivered under the progress lock may ask too.
  progress_counts counts() const noexcept {
    // relaxed: statistics, each a counter of its own.
    return {sent_by_queuer_.load(std::memory_order_relaxed), handed_over_.load(std::memory_order_relaxed),
            delivered_.load(std::memory_order_relaxed), delivered_by_caller_.load(std::memory_order_relaxed)};
  }

 private:
  // Sends what is queued and tests the sends in transit, delivering nothing: for a thread that
  // has just queued a message and holds the progress lock. noexcept, as pass().
  void flush() noexcept {
    {
      const std::lock_guard lock(m_);
      ps_.out.swap(outbox_);
    }
    if (send_queued()) ps_.last_busy = clock::now();
    test_transit();
  }

  // One round of progress (the progress lock held): what users asked for, the channels being
  // created, the outgoing messages, the sends in transit, the incoming messages, barriers,
  // quiescence and termination. Whether anything happened; `stop` when the engine ends and
  // nothing is left to send. noexcept: a failure part way (out of memory, a client that
  // throws) would leave messages half sent or counted but not delivered, so the channel's
  // sums would never agree and every caller would wait for ever; it ends the process
  // (std::terminate) on whichever thread makes the round, as it did when only the
  // communication thread made them.
  bool pass(bool& stop) noexcept {
    bool busy = false;
    {
      const std::lock_guard lock(m_);
      if (stop_ && outbox_.empty() && ps_.transit.empty()) {
        stop = true;
        return false;
      }
      ps_.out.swap(outbox_);
      for (channel* c : opening_) {
        MPI_Comm_idup(MPI_COMM_WORLD, &c->comm, &c->dup);
        ps_.starting.push_back(c);
      }
      opening_.clear();
      for (channel* c : closing_) ps_.ending.push_back(c);
      closing_.clear();
      for (channel* c : quiescing_) {
        c->quiesce_state = 2;
        c->quiesce_last[0] = c->quiesce_last[1] = -1;
        ps_.settling.push_back(c);
      }
      quiescing_.clear();
      for (channel* c : barriers_) {
        MPI_Ibarrier(c->comm, &c->barrier);
        c->barrier_state = 2;
        ps_.waiting.push_back(c);
      }
      barriers_.clear();
    }
    // Channels being created.
    busy |= retire(
        ps_.starting,
        [&](channel* c) {
          int done = 0;
          MPI_Test(&c->dup, &done, MPI_STATUS_IGNORE);
          if (done) ps_.live.push_back(c);
          return done != 0;
        },
        [](channel* c) { c->ready = true; });
    busy |= send_queued();
    test_transit();
    busy |= receive();
    busy |= retire(
        ps_.waiting,
        [](channel* c) {
          int done = 0;
          MPI_Test(&c->barrier, &done, MPI_STATUS_IGNORE);
          return done != 0;
        },
        [](channel* c) { c->barrier_state = 3; });
    // Quiescence (see channel): rounds of sums joined while this rank is idle.
    retire(
        ps_.settling,
        [&](channel* c) {
          bool reached = false;
          if (c->quiesce_round.completed()) {
            busy = true;
            const long long* sums = c->quiesce_round.out;
            reached = sums[0] == sums[1] && sums[0] == c->quiesce_last[0] && sums[1] == c->quiesce_last[1];
            c->quiesce_last[0] = sums[0];
            c->quiesce_last[1] = sums[1];
          }
          if (!reached && !c->quiesce_round.running && c->client->idle()) c->join(c->quiesce_round);
          return reached;
        },
        [](channel* c) { c->quiesce_state = 3; });
    // Termination: a round of sums (messages sent, received) once this rank is quiescent;
    // when every rank has joined a round and the sums agree, nothing is in flight anywhere.
    retire(
        ps_.ending,
        [&](channel* c) {
          bool finished = false;
          if (c->ending_round.completed()) {
            finished = c->ending_round.out[0] == c->ending_round.out[1];
            busy = true;
          }
          if (!finished && !c->ending_round.running && c->client->quiescent()) c->join(c->ending_round);
          if (finished) {
            MPI_Comm_free(&c->comm);
            ps_.live.erase(std::find(ps_.live.begin(), ps_.live.end(), c));
          }
          return finished;
        },
        [](channel* c) { c->closed = true; });
    if (busy) ps_.last_busy = clock::now();
    return busy;
  }

  // Drops from `list` each channel for which step(c) is true, and for each sets what its users
  // wait for (mark(c), under the engine mutex) and wakes them. Whether any was dropped.
  template <class Step, class Mark>
  bool retire(std::vector<channel*>& list, Step step, Mark mark) {
    bool any = false;
    for (auto it = list.begin(); it != list.end();) {
      if (!step(*it)) {
        ++it;
        continue;
      }
      {
        const std::lock_guard lock(m_);
        mark(*it);
      }
      users_.notify_all();
      it = list.erase(it);
      any = true;
    }
    return any;
  }

  // The outgoing messages taken from the queue, in queue order (so in each sender's order).
  // Messages queued for one destination since the last pass travel as one MPI message (a
  // bundle). Whether there were any.
  bool send_queued() {
    std::vector<outgoing>& out = ps_.out;
    if (out.empty()) return false;
    std::vector<group>& groups = ps_.groups;
    groups.clear();
    for (std::size_t i = 0; i < out.size(); ++i) {
      bump(out[i].from == &t_me ? sent_by_queuer_ : handed_over_);
      // The last group for this destination, if the message fits in it (a bundle stays
      // within one piece; groups for one destination are sent in order).
      // A message with borrowed parts goes alone, and no later message joins its group.
      const std::size_t size = out[i].bytes.size();
      const bool alone = !out[i].parts.empty();
      auto g = std::find_if(groups.rbegin(), groups.rend(),
                            [&](const group& x) { return x.c == out[i].c && x.dest == out[i].dest; });
      if (!alone && g != groups.rend() && !g->alone && g->bytes + size + 2 * sizeof(std::uint32_t) <= piece_) {
        g->members.push_back(i);
        g->bytes += size + sizeof(std::uint32_t);
      } else {
        groups.push_back({out[i].c, out[i].dest, {i}, sizeof(std::uint32_t) + size, alone});
      }
    }
    for (const group& g : groups) {
      in_transit t{MPI_REQUEST_NULL, {}, {}, {}, {}};
      int tag = k_tag;
      if (g.alone) {
        send_borrowed(t, g, out[g.members[0]]);
      } else if (g.members.size() == 1) {
        t.bytes = std::move(out[g.members[0]].bytes);
      } else {
        t.bytes = take();
        tag = k_bundle_tag;
        std::size_t total = sizeof(std::uint32_t);
        for (std::size_t i : g.members) total += sizeof(std::uint32_t) + out[i].bytes.size();
        t.bytes.resize(total);
        char* p = t.bytes.data();
        const auto count = static_cast<std::uint32_t>(g.members.size());
        std::memcpy(p, &count, sizeof count);
        p += sizeof count;
        for (std::size_t i : g.members) {
          const auto n = static_cast<std::uint32_t>(out[i].bytes.size());
          std::memcpy(p, &n, sizeof n);
          p += sizeof n;
          std::memcpy(p, out[i].bytes.data(), n);
          p += n;
          recycle(std::move(out[i].bytes));
        }
      }
      if (g.alone) {
        // sent above
      } else if (t.bytes.size() <= piece_) {
        MPI_Isend(t.bytes.data(), static_cast<int>(t.bytes.size()), MPI_BYTE, g.dest, tag, g.c->comm, &t.req);
      } else {
        send_pieces(t, g);
      }
      ++mpi_messages_;
      messages_ += g.members.size();
      ps_.transit.push_back(std::move(t));
    }
    out.clear();
    return true;
  }

  // Releases what the completed sends held.
  void test_transit() {
    std::vector<in_transit>& transit = ps_.transit;
    for (std::size_t i = 0; i < transit.size();) {
      int done = 0;
      MPI_Test(&transit[i].req, &done, MPI_STATUS_IGNORE);
      if (done && !transit[i].pieces.empty()) {
        MPI_Testall(static_cast<int>(transit[i].pieces.size()), transit[i].pieces.data(), &done, MPI_STATUSES_IGNORE);
      }
      if (done) {
        if (transit[i].sent) transit[i].sent();  // the borrowed parts are free again
        recycle(std::move(transit[i].bytes));
        transit[i] = std::move(transit.back());
        transit.pop_back();
      } else {
        ++i;
      }
    }
  }

  // Receives what has arrived on every live channel (at most 64 MPI messages each) and hands
  // each message to its channel's client. Whether anything arrived.
  bool receive() {
    bool busy = false;
    std::vector<char>& bytes = ps_.bytes;
    for (channel* c : ps_.live) {
      for (int k = 0; k < 64; ++k) {
        int flag = 0;
        MPI_Message msg;
        MPI_Status st;
        // Any tag: a plain message and a bundle from one source keep their order.
        MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, c->comm, &flag, &msg, &st);
        if (!flag) break;
        int n = 0;
        MPI_Get_count(&st, MPI_BYTE, &n);
        busy = true;
        if (st.MPI_TAG == k_large_tag || st.MPI_TAG == k_piece_tag) {
          receive_piece(c, msg, st, n);
          continue;
        }
        if (bytes.capacity() > k_keep_max) std::vector<char>().swap(bytes);
        bytes.resize(static_cast<std::size_t>(n));  // one buffer, reused for every message
        MPI_Mrecv(bytes.data(), n, MPI_BYTE, &msg, &st);
        if (st.MPI_TAG != k_bundle_tag) {
          deliver(c, st.MPI_SOURCE, bytes.data(), bytes.size());
          continue;
        }
        const char* p = bytes.data();
        std::uint32_t count = 0;
        std::memcpy(&count, p, sizeof count);
        p += sizeof count;
        for (std::uint32_t m = 0; m < count; ++m) {
          std::uint32_t len = 0;
          std::memcpy(&len, p, sizeof len);
          p += sizeof len;
          deliver(c, st.MPI_SOURCE, p, len);
          p += len;
        }
      }
    }
    return busy;
  }

  void deliver(channel* c, int source, const char* data, std::size_t size) {
    ++c->received;
    bump(delivered_);
    if (!t_engine_thread) bump(delivered_by_caller_);
    c->client->on_message(source, data, size);
  }

  // MTP_MPI_SPIN_US: how long the idle communication thread polls before it starts yielding.
  static std::chrono::microseconds spin_from_env() {
    const char* v = std::getenv("MTP_MPI_SPIN_US");
    return std::chrono::microseconds(v != nullptr ? std::atol(v) : 0);
  }
  // MTP_MPI_PIECE_BYTES: the largest MPI message, from 4 KiB to 1 GiB (default 1 GiB); larger
  // messages go in pieces. Ranks need not agree on it: a receiver takes pieces of any size.
  static std::size_t piece_from_env() {
    const char* v = std::getenv("MTP_MPI_PIECE_BYTES");
    const long long n = v != nullptr ? std::atoll(v) : 0;
    if (n <= 0) return k_max_piece;
    return std::clamp(static_cast<std::size_t>(n), std::size_t{4096}, k_max_piece);
  }

  // Sends t.bytes (larger than a piece) to g.dest: its size, then its pieces.
  void send_pieces(in_transit& t, const group& g) const {
    const std::size_t total = t.bytes.size();
    const std::size_t count = (total + piece_ - 1) / piece_;
    t.size = std::make_unique<std::uint64_t>(total);  // stays put while the vector of transits moves
    t.pieces.resize(count);
    MPI_Isend(t.size.get(), sizeof(std::uint64_t), MPI_BYTE, g.dest, k_large_tag, g.c->comm, &t.req);
    for (std::size_t k = 0; k < count; ++k) {
      const std::size_t at = k * piece_;
      const int n = static_cast<int>(std::min(piece_, total - at));
      MPI_Isend(t.bytes.data() + at, n, MPI_BYTE, g.dest, k_piece_tag, g.c->comm, &t.pieces[k]);
    }
  }
  // Sends o (with borrowed parts) to g.dest as a large message: its size, then a piece for
  // each stretch of its own bytes and each part (split at the piece size), in message order.
  void send_borrowed(in_transit& t, const group& g, outgoing& o) const {
    t.bytes = std::move(o.bytes);
    t.sent = std::move(o.sent);
    std::size_t total = t.bytes.size();
    for (const borrowed& b : o.parts) total += b.size;
    t.size = std::make_unique<std::uint64_t>(total);  // stays put while the vector of transits moves
    MPI_Isend(t.size.get(), sizeof(std::uint64_t), MPI_BYTE, g.dest, k_large_tag, g.c->comm, &t.req);
    const auto send = [&](const char* p, std::size_t n) {
      for (std::size_t at = 0; at < n; at += piece_) {
        const int len = static_cast<int>(std::min(piece_, n - at));
        t.pieces.push_back(MPI_REQUEST_NULL);
        MPI_Isend(p + at, len, MPI_BYTE, g.dest, k_piece_tag, g.c->comm, &t.pieces.back());
      }
    };
    std::size_t from = 0;  // of the message's own bytes, sent so far
    for (const borrowed& b : o.parts) {
      send(t.bytes.data() + from, b.at - from);
      send(b.data, b.size);
      from = b.at;
    }
    send(t.bytes.data() + from, t.bytes.size() - from);
  }
  // Receives a large message's size or one of its pieces from st.MPI_SOURCE; the last piece
  // completes the message, which then goes to the channel's client.
  void receive_piece(channel* c, MPI_Message& msg, MPI_Status& st, int n) {
    const int source = st.MPI_SOURCE;
    channel::assembly& a = c->assembling[source];
    if (st.MPI_TAG == k_large_tag) {
      std::uint64_t size = 0;
      MPI_Mrecv(&size, static_cast<int>(sizeof size), MPI_BYTE, &msg, &st);
      a.size = static_cast<std::size_t>(size);
      if (spare_large_ != nullptr && spare_large_size_ >= a.size) {  // already faulted in
        a.bytes = std::move(spare_large_);
        a.capacity = spare_large_size_;
      } else {
        a.bytes.reset(new char[a.size]);  // NOLINT: every piece lands in place, nothing to zero first
        a.capacity = a.size;
      }
      a.filled = 0;
      return;
    }
    if (n < 0 || a.filled + static_cast<std::size_t>(n) > a.size) {  // not sent by this library: dropped
      std::vector<char> dropped(static_cast<std::size_t>(std::max(n, 0)));
      MPI_Mrecv(dropped.data(), n, MPI_BYTE, &msg, &st);
      c->assembling.erase(source);
      std::fprintf(stderr, "mtp::mpi: rank %d sent a piece beyond its message; ignored\n", source);
      return;
    }
    MPI_Mrecv(a.bytes.get() + a.filled, n, MPI_BYTE, &msg, &st);
    a.filled += static_cast<std::size_t>(n);
    if (a.filled < a.size) return;
    std::unique_ptr<char[]> message = std::move(a.bytes);
    const std::size_t size = a.size;
    const std::size_t capacity = a.capacity;
    c->assembling.erase(source);
    deliver(c, source, message.get(), size);
    if (capacity <= k_keep_max && (spare_large_ == nullptr || capacity > spare_large_size_)) {
      spare_large_ = std::move(message);  // kept for the next large message, as the receive buffer is
      spare_large_size_ = capacity;
    }
  }

  using clock = std::chrono::steady_clock;
  // What rounds of progress work on, owned by whoever holds progress_m_ (the communication
  // thread, or a thread in drive or flush), which alone calls MPI.
  struct progress_state {
    std::vector<outgoing> out;
    std::vector<channel*> starting, live, ending, waiting, settling;
    std::vector<in_transit> transit;
    std::vector<group> groups;
    std::vector<char> bytes;  // the receive buffer
    clock::time_point last_busy = clock::now();  // the last round that did something
  };

  std::chrono::microseconds spin_;
  std::size_t piece_;
  std::mutex progress_m_;  // taken before m_, never the other way
  progress_state ps_;
  std::atomic<int> drivers_{0};                     // threads between start_ and stop_driving
  std::atomic<unsigned long long> drive_rounds_{0};  // rounds of progress made in drive()
  // Written under progress_m_ only, read by counts() without it.
  std::atomic<unsigned long long> sent_by_queuer_{0};
  std::atomic<unsigned long long> handed_over_{0};  // sent by a thread other than the queuing one
  std::atomic<unsigned long long> delivered_{0};
  std::atomic<unsigned long long> delivered_by_caller_{0};
  // relaxed, and no read-modify-write: one writer at a time (the progress lock), a statistic.
  static void bump(std::atomic<unsigned long long>& n) noexcept {
    n.store(n.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  std::unique_ptr<char[]> spare_large_;  // under progress_m_: an assembly buffer to reuse
  std::size_t spare_large_size_ = 0;
  unsigned long long messages_ = 0;      // under progress_m_
  unsigned long long mpi_messages_ = 0;  // under progress_m_
  std::mutex m_;
  std::condition_variable wake_;   // the communication thread sleeps on it
  std::condition_variable users_;  // open and close wait on it
  bool stop_ = false;
  bool sleeping_ = false;
  bool flushed_ = false;  // a sender sent messages itself since the communication thread last looked
  std::vector<outgoing> outbox_;
  std::vector<channel*> opening_;
  std::vector<channel*> closing_;
  std::vector<channel*> barriers_;
  std::vector<channel*> quiescing_;
  static constexpr std::size_t k_spare = 8;
  std::mutex spare_m_;
  std::vector<std::vector<char>> spare_;
  std::mutex pin_m_;
  cpu_set_t initial_;            // the thread's CPUs at start; written before any pin()
  std::uint64_t pins_ = 0;       // under pin_m_
  std::uint64_t pinned_by_ = 0;  // the pin() in force; 0: none. Under pin_m_
  std::thread thread_;  // last: starts once the rest is built
};

environment* g_env = nullptr;
std::unique_ptr<engine> g_engine;

engine& the_engine() {
  if (!g_engine) throw std::logic_error("mtp::mpi: no mtp::mpi::environment exists (create one in main first)");
  return *g_engine;
}

}  // namespace

void open_channel(channel_client& client, channel*& slot) { the_engine().open(client, slot); }
void send_bytes(channel* c, int dest, std::vector<char>&& bytes) { the_engine().send(c, dest, std::move(bytes)); }
void send_borrowing(channel* c, int dest, std::vector<char>&& bytes, std::vector<borrowed>&& parts,
                    std::function<void()> sent) {
  the_engine().send(c, dest, std::move(bytes), std::move(parts), std::move(sent));
}
void close_channel(channel* c) { the_engine().close(c); }
void barrier(channel* c) { the_engine().barrier(c); }
void quiesce(channel* c) { the_engine().quiesce(c); }
bool drive_progress() noexcept { return g_engine && g_engine->drive(); }
void start_driving() {
  if (g_engine) g_engine->start_driving();
}
void stop_driving() {
  if (g_engine) g_engine->stop_driving();
}
progress_counts progress_counts_now() { return the_engine().counts(); }
std::vector<char> take_buffer() { return g_engine ? g_engine->take() : std::vector<char>{}; }
std::uint64_t pin_communication_thread(const std::vector<unsigned>& cpus, std::string& why) {
  return the_engine().pin(cpus, why);
}
void unpin_communication_thread(std::uint64_t token) {
  if (g_engine) g_engine->unpin(token);
}

}  // namespace impl

environment::environment(int& argc, char**& argv, thread_level required) {
  if (impl::g_env != nullptr) throw std::runtime_error("mtp::mpi::environment: one exists already");
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (initialised) throw std::runtime_error("mtp::mpi::environment: MPI is already initialised");
  const thread_level need = std::max(required, thread_level::serialized);
  int provided = 0;
  MPI_Init_thread(&argc, &argv, static_cast<int>(need), &provided);
  provided_ = static_cast<thread_level>(provided);
  if (provided < static_cast<int>(thread_level::serialized)) {
    MPI_Finalize();
    throw std::runtime_error(std::string("mtp::mpi::environment: MPI provides ") + to_string(provided_) +
                             " but the communication thread needs " + to_string(need));
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0;
  MPI_Get_processor_name(name, &len);
  processor_.assign(name, static_cast<std::size_t>(len));
  impl::g_engine = std::make_unique<impl::engine>();
  impl::g_env = this;
}

environment::~environment() {
  impl::g_engine.reset();
  impl::g_env = nullptr;
  MPI_Finalize();
}

std::vector<unsigned> environment::communication_cpus() const { return impl::the_engine().cpus(); }

environment& environment::current() {
  if (impl::g_env == nullptr) throw std::logic_error("mtp::mpi: no mtp::mpi::environment exists (create one in main first)");
  return *impl::g_env;
}

}  // namespace mtp::mpi
