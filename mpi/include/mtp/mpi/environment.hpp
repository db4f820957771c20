// SPDX-License-Identifier: MIT
// mtp::mpi::environment: MPI for the whole program, and the one communication thread per rank
// that every mtp::mpi::sharded_pool shares.
//
// Create one on the main thread before any sharded_pool and keep it until the last one is
// gone:
//
//     int main(int argc, char** argv) {
//       mtp::mpi::environment env(argc, argv);   // MPI_Init_thread, starts the comm thread
//       mtp::mpi::sharded_pool<agent> pool;     // collective: every rank builds one
//       ...
//     }                                          // pool (collective), then MPI_Finalize
//
// Threads and MPI: between MPI_Init_thread and MPI_Finalize the library calls MPI from one
// thread at a time, under its progress lock: the communication thread; a thread that has just
// queued a message, which sends it itself when the lock is free (a worker's reply, a caller's
// request); and a caller waiting for its reply, which polls for it itself while it spins. So
// a remote round trip needs no thread hand-off but rank 1's, from its communication thread to
// the item's worker. MPI is called from several threads, one at a time, so the design needs
// MPI_THREAD_SERIALIZED (FUNNELED would allow MPI calls from the main thread only); the
// environment asks for it and throws
// std::runtime_error naming both levels if the library offers less. The communication thread
// runs on the CPUs the local pool's placement keeps for callers (":reserve=N", e.g.
// "cores:reserve=1"; the latest sharded pool that keeps some decides) and is not pinned
// otherwise: the default placement gives every core to a worker, and the scheduler places the
// thread. When idle it polls, yielding, for about 200 us, then sleeps in steps of 50 us (1 ms after
// 20 ms without traffic); sending wakes it at once, traffic from other ranks is seen at the
// next poll.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace mtp::mpi {

/// The MPI thread support levels, in increasing order (the values of MPI_THREAD_*).
enum class thread_level : int { single = 0, funneled = 1, serialized = 2, multiple = 3 };
[[nodiscard]] const char* to_string(thread_level level) noexcept;

class environment {
 public:
  /// Calls MPI_Init_thread asking for `required` (default: serialized, what the design needs)
  /// and starts the communication thread. Throws std::runtime_error if MPI offers less than
  /// serialized, if MPI was already initialised, or if another environment exists.
  environment(int& argc, char**& argv, thread_level required = thread_level::serialized);
  /// Stops the communication thread and calls MPI_Finalize. Destroy (or shut down) every
  /// sharded_pool first.
  ~environment();
  environment(const environment&) = delete;
  environment& operator=(const environment&) = delete;

  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] int size() const noexcept { return size_; }
  /// The level MPI_Init_thread provided.
  [[nodiscard]] thread_level provided() const noexcept { return provided_; }
  /// The processor name (MPI_Get_processor_name), read once at start.
  [[nodiscard]] const std::string& processor_name() const noexcept { return processor_; }
  /// The CPUs the communication thread may run on now (see the top of this file).
  [[nodiscard]] std::vector<unsigned> communication_cpus() const;

  /// The environment of this process; throws std::logic_error if there is none.
  static environment& current();

 private:
  int rank_ = 0;
  int size_ = 1;
  thread_level provided_ = thread_level::single;
  std::string processor_;
};

/// A handler's or constructor's exception thrown on another rank. Its what() reads
/// "<type>: <what>" (e.g. "std::invalid_argument: bad amount"); the parts are kept apart.
class remote_error : public std::runtime_error {
 public:
  remote_error(int rank, std::string type, std::string what);
  [[nodiscard]] const std::string& type_name() const noexcept { return type_; }
  [[nodiscard]] const std::string& remote_what() const noexcept { return what_; }
  /// The rank it was thrown on.
  [[nodiscard]] int rank() const noexcept { return rank_; }

 private:
  int rank_;
  std::string type_;
  std::string what_;
};

namespace impl {

/// What a sharded pool gives the communication thread. Called by whichever thread makes a
/// round of progress (the communication thread, or a caller in drive_progress), one at a
/// time, under the communication thread's rules; they must not block, and must not throw
/// (that ends the process: see the engine's pass()).
class channel_client {
 public:
  /// A message from `source` for this pool; the bytes are valid during the call only.
  virtual void on_message(int source, const char* data, std::size_t size) = 0;
  /// During shutdown: this rank has nothing in flight (no call of its own outstanding, every
  /// request it received answered).
  [[nodiscard]] virtual bool quiescent() const = 0;
  /// For quiesce(): nothing in flight on this rank (as quiescent()) and the local pool
  /// quiescent (no message queued or running, items' messages to each other included).
  [[nodiscard]] virtual bool idle() const = 0;

 protected:
  ~channel_client() = default;
};

class channel;  // one pool's communicator and counters; used under the engine's progress lock

/// Collective (every rank, same order): a communicator of its own for `client`; waits until
/// it is ready. `slot` receives the channel before any message can reach the client.
void open_channel(channel_client& client, channel*& slot);
/// Queues `bytes` for `dest` (any thread), and sends what is queued at once, from this thread,
/// when no other thread holds the progress lock (MPI_Isend: it never waits for the receiver).
void send_bytes(channel* c, int dest, std::vector<char>&& bytes);
/// Bytes that a message takes from where they lie rather than from its own buffer: `size`
/// bytes at `data`, which come at offset `at` of the message's own bytes.
struct borrowed {
  std::size_t at;
  const char* data;
  std::size_t size;
};
/// As send_bytes, the message being `bytes` with the `parts` inserted (in order of `at`),
/// which are sent from where they lie, never copied; `sent()` runs on the thread making
/// progress (under the progress lock: it must not send) once MPI no longer reads them. Until
/// then the caller keeps them alive and unchanged.
/// The message travels alone, as its size and then pieces (as a message larger than a piece).
void send_borrowing(channel* c, int dest, std::vector<char>&& bytes, std::vector<borrowed>&& parts,
                    std::function<void()> sent);
/// An empty buffer for a message, with the capacity of one already sent when there is one
/// (large buffers are reused rather than returned to the system and faulted in again).
std::vector<char> take_buffer();
/// Collective: returns once every rank has called it for this channel (MPI_Ibarrier on the
/// communication thread).
void barrier(channel* c);
/// Collective: returns once no message of the channel is in flight or being served anywhere
/// and every rank's client is idle(), found by two rounds of sums with the same counts.
void quiesce(channel* c);
/// Collective: waits until every rank has asked and every message of the channel has been
/// received and answered (counting termination), then frees the channel.
void close_channel(channel* c);

/// Pins the communication thread to `cpus` (OS CPU numbers). Returns a token for
/// unpin_communication_thread, or 0 with the reason in `why`.
std::uint64_t pin_communication_thread(const std::vector<unsigned>& cpus, std::string& why);
/// Lets the communication thread run where it could at start again, unless a later pin
/// replaced the one `token` names.
void unpin_communication_thread(std::uint64_t token);
/// Whether the calling thread is the communication thread, or a thread delivering messages
/// in drive_progress (where remote shares of async calls complete: blocking calls there would
/// wait for themselves).
[[nodiscard]] bool on_communication_thread() noexcept;

/// One round of progress on the calling thread, when no other thread is making progress: what
/// is queued goes out, and what has arrived is delivered (replies, requests for the local pool,
/// async callbacks), here. For a thread waiting for a reply: its message leaves and its reply
/// arrives with no thread hand-off. Whether anything happened; false at once on the
/// communication thread or inside a delivery.
bool drive_progress() noexcept;
/// Around a thread's calls to drive_progress: start_driving before the first (the
/// communication thread then leaves progress to it while it keeps making rounds), stop_driving
/// once it has its reply or is about to sleep (which wakes the communication thread if it
/// sleeps, so that what arrives meanwhile is delivered).
void start_driving();
void stop_driving();
/// What the engine counts to tell thread hand-offs: messages sent by the thread that queued
/// them (no hand-off) and by another thread (handed over), messages delivered, and those
/// delivered by a thread in drive_progress rather than by the communication thread.
struct progress_counts {
  unsigned long long sent_by_queuer, handed_over, delivered, delivered_by_caller;
};
progress_counts progress_counts_now();

/// The name and what() of the exception `e` (the demangled dynamic type), and the rank it was
/// thrown on: a remote_error passed on keeps its own; any other exception, `here`.
int describe(const std::exception_ptr& e, int here, std::string& type, std::string& what);

}  // namespace impl
}  // namespace mtp::mpi
