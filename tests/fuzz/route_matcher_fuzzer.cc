// libFuzzer target: the route matcher (config::Match::matches / covers, Listener::route_for).
//
// The input is read as a route table and some method paths: each line "KIND VALUE" (KIND: m, s
// or p for method, service, prefix) adds a route, any other line is a method path to route.
// Checked against a reference written from the definitions in config.h:
//   - matches(): method = the exact path; service S = "/S/..." ; prefix P = starts with P;
//   - covers(a, b): never claims coverage that a path contradicts (b.matches(x) and not
//     a.matches(x), for the paths of the input and paths derived from b itself);
//   - route_for(): the first route whose match selects the path, or none.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace {

using curfew::config::Listener;
using curfew::config::Match;
using curfew::config::Route;

[[noreturn]] void fail(const char* what, const std::string& a, const std::string& b) {
  std::fprintf(stderr, "route matcher fuzzer: %s [%s] [%s]\n", what, a.c_str(), b.c_str());
  std::abort();
}

bool reference_matches(const Match& m, std::string_view path) {
  switch (m.kind) {
    case Match::kMethod:
      return path == m.value;
    case Match::kService: {
      const std::string prefix = "/" + m.value + "/";
      return path.substr(0, prefix.size()) == prefix;
    }
    case Match::kPrefix:
      return path.substr(0, m.value.size()) == m.value;
  }
  return false;
}

// Paths that `m` selects (if it selects any): what covers() must be consistent with.
std::vector<std::string> witnesses(const Match& m) {
  switch (m.kind) {
    case Match::kMethod:
      return {m.value};
    case Match::kService:
      return {"/" + m.value + "/", "/" + m.value + "/M", "/" + m.value + "/x/y"};
    case Match::kPrefix:
      return {m.value, m.value + "x", m.value + "/", m.value + "Svc/Method"};
  }
  return {};
}

std::string describe(const Match& m) {
  return std::string(m.kind == Match::kMethod    ? "method "
                     : m.kind == Match::kService ? "service "
                                                 : "prefix ") +
         m.value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  Listener listener;
  std::vector<std::string> paths;
  size_t start = 0;
  while (start <= input.size() && listener.routes.size() < 64 && paths.size() < 256) {
    size_t end = input.find('\n', start);
    if (end == std::string_view::npos) end = input.size();
    const std::string_view line = input.substr(start, end - start);
    start = end + 1;
    if (line.size() >= 2 && line[1] == ' ' &&
        (line[0] == 'm' || line[0] == 's' || line[0] == 'p')) {
      Route route;
      route.name = "r" + std::to_string(listener.routes.size());
      route.match.kind = line[0] == 'm'   ? Match::kMethod
                         : line[0] == 's' ? Match::kService
                                          : Match::kPrefix;
      route.match.value = std::string(line.substr(2));
      listener.routes.push_back(std::move(route));
    } else {
      paths.emplace_back(line);
    }
    if (end == input.size()) break;
  }
  for (const Route& r : listener.routes) {
    for (const std::string& w : witnesses(r.match)) paths.push_back(w);
  }

  for (const std::string& path : paths) {
    const Route* expected = nullptr;
    for (const Route& r : listener.routes) {
      const bool got = r.match.matches(path);
      if (got != reference_matches(r.match, path))
        fail("matches() disagrees", describe(r.match), path);
      if (got && expected == nullptr) expected = &r;
    }
    if (listener.route_for(path) != expected) fail("route_for() is not the first match", path, "");
  }

  for (const Route& a : listener.routes) {
    for (const Route& b : listener.routes) {
      if (!a.match.covers(b.match)) continue;
      for (const std::string& path : paths) {
        if (b.match.matches(path) && !a.match.matches(path)) {
          fail("covers() claims coverage a path contradicts",
               describe(a.match) + " covers " + describe(b.match), path);
        }
      }
    }
    if (!a.match.covers(a.match)) fail("a match does not cover itself", describe(a.match), "");
  }
  return 0;
}
