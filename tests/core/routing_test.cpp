// SPDX-License-Identifier: MIT
// Routing: the default id % workers, custom routers, worker_of, and routers that misbehave.
#include "pool_test_util.hpp"

#include <span>
#include <stdexcept>
#include <vector>

namespace {

struct where {
  mtp::id_t id;
  using response_type = std::size_t;  // this_worker::index() in the handler
};

struct item {
  explicit item(mtp::id_t) : born_on(mtp::this_worker::index().value_or(999)) {}
  std::size_t handle(const where&) const { return mtp::this_worker::index().value_or(999); }
  std::size_t constructed_on() const { return born_on; }
  std::size_t born_on;
};

using pool_t = mtp::thread_pool<item>;

void expect_default_routing(std::size_t workers) {
  pool_t pool(mtp_test::options(workers));
  for (mtp::id_t id = 0; id < 40; ++id) {
    EXPECT_EQ(pool.worker_of(id), id % workers) << workers << " workers, id " << id;
    pool.create(id);
    EXPECT_EQ(pool.send(where{id}), id % workers);
    EXPECT_EQ(pool.call(id, &item::constructed_on), id % workers);
  }
  const mtp::id_t big = 0xFFFF'FFFF'FFFF'FFF1ull;
  EXPECT_EQ(pool.worker_of(big), big % workers);
}

TEST(Routing, DefaultIsIdModuloWorkers) {
  expect_default_routing(2);
  expect_default_routing(3);
  expect_default_routing(4);
}

TEST(Routing, CustomRouterPlacesIdsWhereItSays) {
  mtp::pool_options o = mtp_test::options(2);
  o.router = [](mtp::id_t id, std::size_t workers) { return static_cast<std::size_t>(id / 100 % workers); };
  pool_t pool(std::move(o));
  std::vector<mtp::id_t> ids;
  for (mtp::id_t id = 0; id < 300; id += 7) ids.push_back(id);
  for (const auto& r : pool.create_batch(std::span<const mtp::id_t>(ids))) ASSERT_TRUE(r.has_value());
  std::size_t on0 = 0;
  for (const mtp::id_t id : ids) {
    const std::size_t expected = id / 100 % 2;
    on0 += expected == 0 ? 1 : 0;
    EXPECT_EQ(pool.worker_of(id), expected);
    EXPECT_EQ(pool.send(where{id}), expected) << "id " << id;
  }
  std::vector<where> batch;
  for (const mtp::id_t id : ids) batch.push_back({id});
  const auto r = pool.send_batch(batch);
  for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(r[i].value(), ids[i] / 100 % 2);
  EXPECT_EQ(pool.stats().workers[0].items, on0);
  EXPECT_EQ(pool.stats().workers[1].items, ids.size() - on0);
}

class BadRoute : public ::testing::Test {
 protected:
  static mtp::pool_options opts(mtp_test::diagnostic_sink& sink) {
    mtp::pool_options o = mtp_test::options(2);
    o.router = [](mtp::id_t id, std::size_t workers) -> std::size_t {
      if (id == 666) return workers;  // one past the end
      if (id == 667) return 1000;
      if (id == 668) throw std::runtime_error("router refused");
      return id % workers;
    };
    o.on_diagnostic = sink.callback();
    return o;
  }
  mtp_test::diagnostic_sink sink;
  pool_t pool{opts(sink)};
};

TEST_F(BadRoute, OutOfRangeOrThrowingRouterGivesInvalidRoute) {
  pool.create(1);
  for (const mtp::id_t id : {666u, 667u, 668u}) {
    MTP_EXPECT_POOL_ERROR(mtp::errc::invalid_route, (void)pool.worker_of(id));
    MTP_EXPECT_POOL_ERROR(mtp::errc::invalid_route, pool.create(id));
    MTP_EXPECT_POOL_ERROR(mtp::errc::invalid_route, pool.send(where{id}));
    MTP_EXPECT_POOL_ERROR(mtp::errc::invalid_route, pool.remove(id));
    const auto posted = pool.post(where{id});
    ASSERT_TRUE(posted.has_error());
    EXPECT_EQ(posted.error().code, mtp::errc::invalid_route);
    EXPECT_EQ(posted.error().id, id);
  }
  const std::vector<where> batch{{1}, {666}, {1}, {668}};
  const auto r = pool.send_batch(batch);
  EXPECT_EQ(r[0].value(), 1u);
  EXPECT_EQ(r[2].value(), 1u);
  for (std::size_t i : {1u, 3u}) {
    ASSERT_TRUE(r[i].has_error());
    EXPECT_EQ(r[i].error().code, mtp::errc::invalid_route);
    EXPECT_EQ(r[i].error().id, batch[i].id);
    EXPECT_TRUE(mtp_test::contains(r[i].error().message(), std::to_string(batch[i].id)));
  }
  auto handle = pool.submit_batch(std::vector<where>{{667}, {667}});
  const auto hr = MTP_BOUNDED([&] { return handle.take(); });
  for (const auto& x : hr) EXPECT_EQ(x.error().code, mtp::errc::invalid_route);
  EXPECT_EQ(pool.stats().total_items(), 1u);
  EXPECT_EQ(pool.send(where{1}), 1u) << "the pool stopped serving after bad routes";
}

}  // namespace
