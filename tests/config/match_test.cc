// Match::matches(), Match::covers() and Listener::route_for().

#include <string>

#include "config/config.h"
#include "gtest/gtest.h"

namespace curfew::config {
namespace {

Match method(std::string value) { return {Match::kMethod, std::move(value)}; }
Match service(std::string value) { return {Match::kService, std::move(value)}; }
Match prefix(std::string value) { return {Match::kPrefix, std::move(value)}; }

TEST(Match, MethodMatchesOnlyThatPath) {
  const Match m = method("/shop.Inventory/Get");
  EXPECT_TRUE(m.matches("/shop.Inventory/Get"));
  EXPECT_FALSE(m.matches("/shop.Inventory/GetAll"));
  EXPECT_FALSE(m.matches("/shop.Inventory/Ge"));
  EXPECT_FALSE(m.matches("shop.Inventory/Get"));
}

TEST(Match, ServiceMatchesEveryMethodOfThatServiceOnly) {
  const Match m = service("shop.Inventory");
  EXPECT_TRUE(m.matches("/shop.Inventory/Get"));
  EXPECT_TRUE(m.matches("/shop.Inventory/List"));
  EXPECT_FALSE(m.matches("/shop.InventoryAdmin/Get"));  // A longer service name.
  EXPECT_FALSE(m.matches("/shop.Inventor/Get"));
  EXPECT_FALSE(m.matches("/x.shop.Inventory/Get"));
  EXPECT_FALSE(m.matches("/shop.Inventory"));
  EXPECT_FALSE(m.matches("shop.Inventory/Get"));
  EXPECT_FALSE(m.matches(""));
}

TEST(Match, PrefixMatchesByStringPrefix) {
  EXPECT_TRUE(prefix("/").matches("/a.B/C"));
  EXPECT_TRUE(prefix("/shop.").matches("/shop.Inventory/Get"));
  EXPECT_FALSE(prefix("/shop.").matches("/pay.Payments/Charge"));
}

TEST(Match, CatchAllCoversEverything) {
  EXPECT_TRUE(prefix("/").covers(prefix("/a.")));
  EXPECT_TRUE(prefix("/").covers(service("a.B")));
  EXPECT_TRUE(prefix("/").covers(method("/a.B/C")));
  EXPECT_TRUE(prefix("/").covers(prefix("/")));
}

TEST(Match, ServiceCoversItsMethods) {
  EXPECT_TRUE(service("a.B").covers(method("/a.B/X")));
  EXPECT_TRUE(service("a.B").covers(service("a.B")));
  EXPECT_TRUE(service("a.B").covers(prefix("/a.B/X")));
  EXPECT_FALSE(service("a.B").covers(method("/a.BC/X")));
  EXPECT_FALSE(service("a.B").covers(service("a.BC")));
  EXPECT_FALSE(service("a.B").covers(prefix("/a.B")));  // Also matches /a.BC/...
  EXPECT_FALSE(service("a.B").covers(prefix("/")));
}

TEST(Match, PrefixCoversServicesAndMethodsUnderIt) {
  EXPECT_TRUE(prefix("/a.").covers(service("a.B")));
  EXPECT_TRUE(prefix("/a.B").covers(service("a.BC")));  // "/a.BC/..." starts with "/a.B".
  EXPECT_TRUE(prefix("/a.B/").covers(service("a.B")));
  EXPECT_TRUE(prefix("/a.").covers(method("/a.B/X")));
  EXPECT_TRUE(prefix("/a.").covers(prefix("/a.B")));
  EXPECT_FALSE(prefix("/a.B/X").covers(service("a.B")));
  EXPECT_FALSE(prefix("/a.B").covers(prefix("/a.")));
  EXPECT_FALSE(prefix("/b.").covers(service("a.B")));
}

TEST(Match, MethodCoversOnlyTheSameMethod) {
  EXPECT_TRUE(method("/a.B/X").covers(method("/a.B/X")));
  EXPECT_FALSE(method("/a.B/X").covers(method("/a.B/Y")));
  EXPECT_FALSE(method("/a.B/X").covers(service("a.B")));
  EXPECT_FALSE(method("/a.B/X").covers(prefix("/a.B/X")));
}

TEST(Listener, RouteForReturnsFirstMatchInOrder) {
  Listener listener;
  listener.routes = {
      Route{.name = "exact", .match = method("/a.B/X")},
      Route{.name = "svc", .match = service("a.B")},
      Route{.name = "pkg", .match = prefix("/a.")},
  };
  ASSERT_NE(listener.route_for("/a.B/X"), nullptr);
  EXPECT_EQ(listener.route_for("/a.B/X")->name, "exact");
  EXPECT_EQ(listener.route_for("/a.B/Y")->name, "svc");
  EXPECT_EQ(listener.route_for("/a.C/Y")->name, "pkg");
  EXPECT_EQ(listener.route_for("/b.C/Y"), nullptr);
}

TEST(Listener, EffectiveTimeoutFallsBackToListenerDefault) {
  Listener listener;
  listener.default_timeout = std::chrono::milliseconds(700);
  Route with{.name = "with", .timeout = std::chrono::milliseconds(30)};
  Route without{.name = "without"};
  EXPECT_EQ(listener.effective_timeout(with), std::chrono::milliseconds(30));
  EXPECT_EQ(listener.effective_timeout(without), std::chrono::milliseconds(700));
}

TEST(Config, FindUpstreamByName) {
  Config config;
  config.upstreams = {Upstream{.name = "a"}, Upstream{.name = "b"}};
  ASSERT_NE(config.find_upstream("b"), nullptr);
  EXPECT_EQ(config.find_upstream("b")->name, "b");
  EXPECT_EQ(config.find_upstream("c"), nullptr);
}

}  // namespace
}  // namespace curfew::config
