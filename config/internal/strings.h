// String glue between the standard library and the installed Abseil.

#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace curfew::config::internal {

// to_absl()
//
// Views `s` as an absl::string_view. The system Abseil is built with its own string_view type
// (ABSL_OPTION_USE_STD_STRING_VIEW is 0), so std::string_view does not convert implicitly when
// passed to absl::StrCat, absl::SimpleAtoi and the like.
inline absl::string_view to_absl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// to_std()
//
// Views `s` as a std::string_view (e.g. absl::Status::message()).
inline std::string_view to_std(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace curfew::config::internal
