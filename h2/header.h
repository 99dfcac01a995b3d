// A header field as HTTP/2 carries it. Values are bytes: -bin metadata is base64 on the wire and
// passed through untouched.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace curfew::h2 {

struct Header {
  std::string name;
  std::string value;
};
using Headers = std::vector<Header>;

// The first value of `name` (a lowercase name), or nullptr.
inline const std::string* find_header(const Headers& headers, std::string_view name) {
  for (const Header& h : headers)
    if (h.name == name) return &h.value;
  return nullptr;
}

}  // namespace curfew::h2
