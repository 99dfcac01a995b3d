// EndpointSetKey: a pool finds an upstream's set from its definition without building the key,
// and only an equal definition finds it.
#include "sidecar/internal/endpoint_set_key.h"

#include <string>
#include <unordered_map>

#include <gtest/gtest.h>

namespace curfew::sidecar {
namespace {

config::Upstream upstream(std::string name, std::vector<std::string> endpoints) {
  config::Upstream u;
  u.name = std::move(name);
  u.endpoints = std::move(endpoints);
  return u;
}

TEST(EndpointSetKey, ViewHashesAndComparesAsItsString) {
  UpstreamTls tls;
  tls.key = "ca=/etc/ca.pem";
  const config::Upstream cases[] = {
      upstream("u", {"127.0.0.1:1"}),
      upstream("u", {"127.0.0.1:1", "dns:///b.test:2"}),
      upstream("", {}),
      upstream("u\nx", {"1"}),
  };
  EndpointSetKey::Hash hash;
  EndpointSetKey::Equal equal;
  for (const config::Upstream& u : cases) {
    for (const UpstreamTls* t :
         {static_cast<const UpstreamTls*>(nullptr), static_cast<const UpstreamTls*>(&tls)}) {
      const EndpointSetKey::Of view{u, t};
      const std::string str = view.str();
      EXPECT_EQ(hash(view), hash(str)) << str;
      EXPECT_TRUE(equal(view, str)) << str;
      EXPECT_TRUE(equal(str, view)) << str;
    }
  }
  EXPECT_EQ(EndpointSetKey::Of(cases[1], &tls).str(),
            "u\n127.0.0.1:1\ndns:///b.test:2\ntls:ca=/etc/ca.pem");
}

TEST(EndpointSetKey, OnlyAnEqualDefinitionFindsTheSet) {
  std::unordered_map<std::string, int, EndpointSetKey::Hash, EndpointSetKey::Equal> sets;
  const config::Upstream a = upstream("u", {"127.0.0.1:1", "127.0.0.1:2"});
  sets.emplace(EndpointSetKey::Of{a, nullptr}.str(), 1);

  const config::Upstream same = upstream("u", {"127.0.0.1:1", "127.0.0.1:2"});
  EXPECT_NE(sets.find(EndpointSetKey::Of{same, nullptr}), sets.end());

  UpstreamTls tls;
  tls.key = "k";
  const config::Upstream differ[] = {
      upstream("v", {"127.0.0.1:1", "127.0.0.1:2"}),  // name
      upstream("u", {"127.0.0.1:1"}),                 // fewer endpoints
      upstream("u", {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}),
      upstream("u", {"127.0.0.1:2", "127.0.0.1:1"}),  // order
      upstream("u", {"127.0.0.1:1:2"}),               // a prefix of the key's bytes
  };
  for (const config::Upstream& u : differ) {
    EXPECT_EQ(sets.find(EndpointSetKey::Of{u, nullptr}), sets.end()) << u.name;
  }
  EXPECT_EQ(sets.find(EndpointSetKey::Of{a, &tls}), sets.end());  // TLS settings
}

}  // namespace
}  // namespace curfew::sidecar
