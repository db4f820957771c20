// SPDX-License-Identifier: MIT
// Method messages own their arguments, compare equal when their arguments do, copy the value
// a reference-returning member refers to, and name one overload of a member function; request
// families (mtp::one_of) mix kinds of requests in one batch.
#include "pool_test_util.hpp"

#include <mtp/testing.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace {

// ---- Arguments are owned ------------------------------------------------------------------

class notebook {
 public:
  explicit notebook(mtp::id_t) {}

  void note(std::string_view text) { notes_.emplace_back(text); }
  int sum(std::span<const int> values) const {
    int s = 0;
    for (int v : values) s += v;
    return s;
  }
  std::size_t take(std::string&& text) { return (kept_ = std::move(text)).size(); }
  std::size_t length(const std::string& text) const { return text.size(); }
  int read(const int* p) const { return *p; }
  const std::string& last() const { return notes_.back(); }  // returns a reference
  const std::vector<std::string>& notes() const { return notes_; }

  int twice(int x) const { return 2 * x; }  // an overload set: twice(int), twice(std::string)
  std::string twice(const std::string& s) const { return s + s; }
  int bump(int x) { return x + 1; }  // an overload set differing in constness
  int bump(int x) const { return x + 2; }
  int bump_by(int x) { return x + 1; }

 private:
  std::vector<std::string> notes_;
  std::string kept_;
};

static_assert(std::is_same_v<mtp::call_t<&notebook::note>::traits::args, std::tuple<std::string>>,
              "std::string_view is stored as std::string");
static_assert(std::is_same_v<mtp::call_t<&notebook::sum>::traits::args, std::tuple<std::vector<int>>>,
              "std::span<const T> is stored as std::vector<T>");
static_assert(std::is_same_v<mtp::call_t<&notebook::length>::traits::args, std::tuple<std::string>>,
              "const T& is stored as T");
static_assert(std::is_same_v<mtp::call_t<&notebook::take>::traits::args, std::tuple<std::string>>,
              "T&& is stored as T");
static_assert(std::is_same_v<mtp::call_t<&notebook::read>::traits::args, std::tuple<const int*>>,
              "a pointer is stored as given");
static_assert(std::is_same_v<mtp::response_t<mtp::call_t<&notebook::last>>, std::string>,
              "a reference response is a copy of the value");
static_assert(std::is_same_v<mtp::response_t<mtp::call_t<&notebook::notes>>, std::vector<std::string>>);
static_assert(mtp::handles<notebook, mtp::call_t<&notebook::last>>);

TEST(Messages, ViewArgumentsAreCopiedIntoTheMessage) {
  mtp::thread_pool<notebook> pool(mtp_test::options(2));
  pool.create(1);
  {
    auto text = std::make_unique<std::string>(64, 'a');  // the only copy of the text
    EXPECT_TRUE(pool.post(mtp::make_call(1, &notebook::note, std::string_view(*text))).has_value());
    text->assign(64, 'z');  // overwrite and free it before the worker may have run the post
    text.reset();
  }
  EXPECT_TRUE(pool.post(mtp::make_call(1, &notebook::note, std::string("temporary"))).has_value());
  const auto notes = pool.call(1, &notebook::notes);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0], std::string(64, 'a'));
  EXPECT_EQ(notes[1], "temporary");

  std::vector<int> values{1, 2, 3};
  auto m = mtp::make_call(1, &notebook::sum, std::span<const int>(values));
  values.assign({100, 100, 100});
  EXPECT_EQ(pool.send(m), 6) << "the message holds its own copy of the span's elements";
  EXPECT_EQ(pool.call(1, &notebook::sum, std::vector<int>{4, 5}), 9);
  EXPECT_EQ(pool.call(1, &notebook::take, std::string("four")), 4u) << "T&& parameter gets a copy";
  EXPECT_EQ(pool.call(1, &notebook::length, "seven!!"), 7u);
  const int shared = 41;
  EXPECT_EQ(pool.call(1, &notebook::read, &shared), 41) << "pointers travel as given";
}

TEST(Messages, ReferenceResponsesAreCopies) {
  mtp::thread_pool<notebook> pool(mtp_test::options(2));
  pool.create(2);
  pool.call(2, &notebook::note, "first");
  const std::string last = pool.call(2, &notebook::last);
  EXPECT_EQ(last, "first");
  std::vector<mtp::call_t<&notebook::last>> reads{mtp::make_call(2, &notebook::last), mtp::make_call(3, &notebook::last)};
  const auto r = pool.send_batch(reads);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(r[0])>, mtp::result<std::string>>);
  EXPECT_EQ(r[0].value(), "first");
  EXPECT_EQ(r[1].error().code, mtp::errc::unknown_id);
}

TEST(Messages, OverloadedMembersArePickedBySignature) {
  mtp::thread_pool<notebook> pool(mtp_test::options(2));
  pool.create(4);
  EXPECT_EQ(pool.call(4, mtp::overload<int(int) const>(&notebook::twice), 21), 42);
  EXPECT_EQ(pool.call(4, mtp::overload<std::string(const std::string&) const>(&notebook::twice), std::string("ab")),
            "abab");
  EXPECT_EQ(pool.call(4, mtp::overload<int(int)>(&notebook::bump), 1), 2);
  EXPECT_EQ(pool.call(4, mtp::overload<int(int) const>(&notebook::bump), 1), 3);
  // The same with a cast to the member pointer type.
  EXPECT_EQ(pool.call(4, static_cast<int (notebook::*)(int) const>(&notebook::twice), 5), 10);
  constexpr auto pick = mtp::overload<int(int) const>(&notebook::twice);
  static_assert(std::is_same_v<decltype(pick), int (notebook::*const)(int) const>);
}

// The member as a template argument: a request holding only the id and the arguments, which
// every form takes (blocking, timed, async, batch, post), and pool.call<&Item::member>.
static_assert(std::is_same_v<mtp::member_call<&notebook::note>::traits::args, std::tuple<std::string>>);
static_assert(mtp::handles<notebook, mtp::member_call<&notebook::last>>);
static_assert(mtp::is_member_call_v<mtp::member_call<&notebook::sum>> && !mtp::is_method_call_v<mtp::member_call<&notebook::sum>>);
static_assert(sizeof(mtp::member_call<&notebook::bump_by>) < sizeof(mtp::call_t<&notebook::bump_by>),
              "no member pointer inside");

TEST(Messages, MemberCallsNameTheMemberAtCompileTime) {
  using namespace std::chrono_literals;
  mtp::thread_pool<notebook> pool(mtp_test::options(2));
  pool.create(4);
  pool.call<&notebook::note>(4, "first");  // the view becomes an owned string
  EXPECT_EQ(pool.call<&notebook::last>(4), "first");
  EXPECT_EQ(pool.send(mtp::make_call<&notebook::bump_by>(4, 5), 10s), 6);
  const std::vector<mtp::member_call<&notebook::sum>> batch{mtp::make_call<&notebook::sum>(4, std::vector<int>{1, 2}),
                                                            mtp::make_call<&notebook::sum>(4, std::vector<int>{3})};
  const auto sums = pool.send_batch(batch);
  ASSERT_EQ(sums.size(), 2u);
  EXPECT_EQ(sums[0].value(), 3);
  EXPECT_EQ(sums[1].value(), 3);
  std::promise<std::string> last;
  EXPECT_TRUE(pool.post(mtp::make_call<&notebook::note>(4, "second")).has_value());
  (void)pool.send_async(mtp::make_call<&notebook::last>(4), [&](mtp::result<std::string>&& r) { last.set_value(r.value()); });
  EXPECT_EQ(last.get_future().get(), "second");
  EXPECT_EQ(mtp::make_call<&notebook::note>(1, "x"), mtp::make_call<&notebook::note>(1, std::string("x")));
  EXPECT_NE(mtp::make_call<&notebook::note>(1, "x"), mtp::make_call<&notebook::note>(1, "y"));
  mtp::mock_pool<notebook> mock;
  mock.expect(mtp::make_call<&notebook::bump_by>(4, 1), 7);
  EXPECT_EQ(mock.call<&notebook::bump_by>(4, 1), 7);
  mock.verify();
}

TEST(Messages, MethodMessagesCompareTheirArguments) {
  const auto a = mtp::make_call(1, &notebook::note, std::string("x"));
  EXPECT_EQ(a, mtp::make_call(1, &notebook::note, "x"));
  EXPECT_NE(a, mtp::make_call(2, &notebook::note, "x")) << "different id";
  EXPECT_NE(a, mtp::make_call(1, &notebook::note, "y")) << "different argument";
  EXPECT_EQ(mtp::make_call(1, &notebook::sum, std::vector<int>{1, 2}), mtp::make_call(1, &notebook::sum, std::vector<int>{1, 2}));
  EXPECT_NE(mtp::make_call(1, mtp::overload<int(int)>(&notebook::bump), 1),
            mtp::make_call(1, static_cast<int (notebook::*)(int)>(&notebook::bump), 2));
  struct opaque {};  // no ==: the message has none either
  struct holder {
    explicit holder(mtp::id_t) {}
    void take(opaque) {}
  };
  static_assert(!std::equality_comparable<mtp::call_t<&holder::take>>);
  static_assert(std::equality_comparable<mtp::call_t<&notebook::note>>);
}

// ---- Request families ----------------------------------------------------------------------

struct deposit {
  mtp::id_t id;
  long amount;
  using response_type = long;  // the new balance
  friend bool operator==(const deposit&, const deposit&) = default;
};
struct freeze {
  mtp::id_t id;
  using response_type = void;
};
struct statement {
  mtp::id_t id;
  using response_type = std::string;
};

class account {
 public:
  account(mtp::id_t id, long balance) : id_(id), balance_(balance) {}
  long handle(const deposit& d) {
    if (frozen_) throw std::runtime_error("frozen");
    return balance_ += d.amount;
  }
  void handle(const freeze&) { frozen_ = true; }
  std::string handle(const statement&) const {
    return std::to_string(id_) + ":" + std::to_string(balance_) + (frozen_ ? " frozen" : "");
  }
  long balance() const { return balance_; }

 private:
  mtp::id_t id_;
  long balance_;
  bool frozen_ = false;
};

using account_op = mtp::one_of<deposit, freeze, statement>;
using account_reply = std::variant<long, mtp::unit, std::string>;
static_assert(std::is_same_v<mtp::response_t<account_op>, account_reply>, "alternative i answers R_i");
static_assert(mtp::request<account_op>);
static_assert(mtp::handles<account, account_op>);
static_assert(std::is_same_v<mtp::response_t<mtp::one_of<deposit, mtp::call_t<&account::balance>>>, long>,
              "one response type for all: that type");
static_assert(std::is_same_v<mtp::response_t<mtp::one_of<freeze>>, void>);
struct unrelated {
  mtp::id_t id;
  using response_type = int;
};
static_assert(!mtp::handles<account, mtp::one_of<deposit, unrelated>>, "every alternative must be handled");

// A family's id comes from the request it holds and from nothing else: it reads as an id but
// cannot be set on its own, so a family can never send its request to another item.
template <class F>
concept id_can_be_set = requires(F& f, mtp::id_t id) { f.id = id; };
template <class F>
concept id_can_be_copied_in = requires(F& f, const F& other) { f.id = other.id; };
template <class F>
concept id_can_be_moved_in = requires(F& f, F& other) { f.id = std::move(other.id); };
static_assert(id_can_be_set<deposit> && id_can_be_copied_in<deposit>, "the checks can tell: a plain id can be set");
static_assert(!id_can_be_set<account_op>);
static_assert(!id_can_be_copied_in<account_op>);
static_assert(!id_can_be_moved_in<account_op>);
static_assert(std::is_convertible_v<decltype(std::declval<const account_op&>().id), mtp::id_t>);
static_assert(std::is_copy_assignable_v<account_op> && std::is_move_assignable_v<account_op>,
              "a whole family still assigns, its id with it");

TEST(Messages, OneBatchMixesKindsOfRequests) {
  mtp::thread_pool<account> pool(mtp_test::options(2));
  for (mtp::id_t id = 1; id <= 4; ++id) pool.create(id, 100L * static_cast<long>(id));
  const std::vector<account_op> batch{
      deposit{1, 5}, statement{2}, freeze{3}, deposit{3, 1}, statement{3},
      deposit{4, -4}, statement{1}, freeze{9},  // 9: no such item
  };
  EXPECT_EQ(batch[3].id, 3u);
  EXPECT_EQ(batch[3].index(), 0u);
  const auto replies = pool.send_batch(batch);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(replies[0])>, mtp::result<account_reply>>);
  ASSERT_EQ(replies.size(), batch.size());
  EXPECT_EQ(std::get<0>(replies[0].value()), 105);
  EXPECT_EQ(std::get<2>(replies[1].value()), "2:200");
  EXPECT_EQ(replies[2].value().index(), 1u) << "void response: mtp::unit at the request's index";
  ASSERT_TRUE(replies[3].has_error()) << "deposit after freeze, same item, in batch order";
  EXPECT_THROW((void)replies[3].value(), std::runtime_error);
  EXPECT_EQ(std::get<2>(replies[4].value()), "3:300 frozen");
  EXPECT_EQ(std::get<0>(replies[5].value()), 396);
  EXPECT_EQ(std::get<2>(replies[6].value()), "1:105");
  EXPECT_EQ(replies[7].error().code, mtp::errc::unknown_id);

  // The single forms take a family too.
  EXPECT_EQ(std::get<0>(pool.send(account_op(deposit{2, 1}))), 201);
  EXPECT_TRUE(pool.post(account_op(deposit{2, 1})).has_value());
  EXPECT_EQ(pool.call(2, &account::balance), 202);
}

TEST(Messages, FamilyIsAnsweredByTheItemItsRequestNames) {
  mtp::thread_pool<account> pool(mtp_test::options(2));  // items 1 and 2 live on different workers
  pool.create(1, 100L);
  pool.create(2, 200L);
  account_op op = statement{1};
  EXPECT_EQ(op.id, 1u);
  EXPECT_EQ(std::get<2>(pool.send(op)), "1:100") << "answered by item 1, the item the request names";
  op = statement{2};  // the one way to change a family's id: a whole new request
  EXPECT_EQ(op.id, 2u);
  EXPECT_EQ(std::get<2>(pool.send(op)), "2:200");

  std::vector<account_op> batch{statement{1}, deposit{2, 5}, statement{2}};
  std::swap(batch[0], batch[2]);  // families move and swap whole
  EXPECT_EQ(batch[0].id, 2u);
  EXPECT_EQ(batch[2].id, 1u);
  const auto replies = pool.send_batch(batch);
  EXPECT_EQ(std::get<2>(replies[0].value()), "2:200");
  EXPECT_EQ(std::get<0>(replies[1].value()), 205);
  EXPECT_EQ(std::get<2>(replies[2].value()), "1:100");
}

TEST(Messages, FamilyWithOneResponseTypeAnswersWithIt) {
  mtp::thread_pool<account> pool(mtp_test::options(2));
  pool.create(1, 10L);
  using op = mtp::one_of<deposit, mtp::call_t<&account::balance>>;
  const std::vector<op> batch{deposit{1, 1}, mtp::make_call(1, &account::balance), deposit{1, 2}};
  const auto r = pool.send_batch(batch);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(r[0])>, mtp::result<long>>);
  EXPECT_EQ(r[0].value(), 11);
  EXPECT_EQ(r[1].value(), 11);
  EXPECT_EQ(r[2].value(), 13);
  EXPECT_EQ(op(deposit{1, 1}), op(deposit{1, 1}));
  EXPECT_NE(op(deposit{1, 1}), op(deposit{1, 2}));
}

}  // namespace
