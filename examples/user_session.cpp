// SPDX-License-Identifier: MIT
// A user session whose helper objects share plain, non-thread-safe state with it: no locks,
// no atomics. It is safe because the session and its helpers live on one worker thread.
#include <mtp/mtp.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace {

struct session_state {  // shared by the session and its helpers through plain pointers
  std::vector<std::string> history;
  int requests = 0;
};

class spell_checker {
 public:
  explicit spell_checker(session_state* state) : state_(state) {}
  std::string fix(std::string text) {
    ++state_->requests;  // plain write: only this worker thread ever touches the state
    for (auto& c : text) {
      if (c == '0') c = 'o';
    }
    return text;
  }

 private:
  session_state* state_;
};

class recorder {
 public:
  explicit recorder(session_state* state) : state_(state) {}
  void record(const std::string& line) { state_->history.push_back(line); }

 private:
  session_state* state_;
};

struct say {
  mtp::id_t id;
  std::string text;
  using response_type = std::string;
};
struct history_size {
  mtp::id_t id;
  using response_type = std::size_t;
};

class user_session {
 public:
  user_session(mtp::id_t id, std::string user)
      : user_(std::move(user)), state_(std::make_unique<session_state>()), checker_(state_.get()), recorder_(state_.get()) {
    (void)id;
  }
  std::string handle(const say& s) {
    std::string line = user_ + ": " + checker_.fix(s.text);
    recorder_.record(line);
    return line;
  }
  std::size_t handle(const history_size&) const { return state_->history.size(); }
  int requests() const { return state_->requests; }

 private:
  std::string user_;
  std::unique_ptr<session_state> state_;
  spell_checker checker_;
  recorder recorder_;
};

}  // namespace

int main() {
  mtp::thread_pool<user_session> pool({.workers = 2, .placement = mtp::plan_placement("none")});
  pool.create(1, std::string("ada"));
  pool.create(2, std::string("bob"));

  std::vector<say> batch{{1, "hell0"}, {2, "g00d morning"}, {1, "h0w are y0u"}};
  for (auto& line : pool.send_batch(batch)) std::printf("%s\n", line.value().c_str());

  const std::size_t lines = pool.send(history_size{1});
  const int checked = pool.call(1, &user_session::requests);
  std::printf("session 1: %zu lines, %d spell checks\n", lines, checked);
  return (lines == 2 && checked == 2) ? 0 : 1;
}
