#include "config/status_codes.h"

#include <iterator>

namespace curfew::config {

std::optional<int> status_code_from_name(std::string_view name) {
  for (int code = 0; code < static_cast<int>(std::size(kStatusCodeNames)); ++code) {
    if (kStatusCodeNames[code] == name) return code;
  }
  return std::nullopt;
}

std::string_view status_code_name(int code) {
  if (code < 0 || code >= static_cast<int>(std::size(kStatusCodeNames))) return "UNKNOWN_CODE";
  return kStatusCodeNames[code];
}

}  // namespace curfew::config
