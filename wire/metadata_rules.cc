#include "wire/metadata_rules.h"

#include <algorithm>
#include <iterator>

#include "absl/strings/match.h"

namespace curfew::wire {
namespace {

// This Abseil predates its alias of std::string_view: absl::string_view is a type of its own.
absl::string_view to_absl(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

bool is_connection_specific_header(std::string_view name, std::string_view value) {
  if (absl::EqualsIgnoreCase(to_absl(name), "te")) {
    return !absl::EqualsIgnoreCase(to_absl(value), "trailers");
  }
  constexpr std::string_view kConnectionSpecific[] = {
      "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
  };
  return std::any_of(std::begin(kConnectionSpecific), std::end(kConnectionSpecific),
                     [name](std::string_view field) {
                       return absl::EqualsIgnoreCase(to_absl(name), to_absl(field));
                     });
}

bool is_forwardable_header(std::string_view name, std::string_view value) {
  return !is_pseudo_header(name) && !is_connection_specific_header(name, value);
}

bool is_binary_header(std::string_view name) { return absl::EndsWith(to_absl(name), "-bin"); }

bool is_valid_header_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' || c == '-' || c == '.';
  });
}

bool is_valid_ascii_value(std::string_view value) {
  return std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

}  // namespace curfew::wire
