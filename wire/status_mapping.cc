#include "wire/status_mapping.h"

#include <algorithm>
#include <charconv>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "wire/h2_error.h"

namespace curfew::wire {
namespace {

// This Abseil predates its alias of std::string_view: absl::string_view is a type of its own.
absl::string_view to_absl(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

int http_status_of(std::optional<std::string_view> status_value) {
  if (!status_value || status_value->size() != 3) return 0;
  int status = 0;
  const char* end = status_value->data() + status_value->size();
  const auto [ptr, ec] = std::from_chars(status_value->data(), end, status);
  return ec == std::errc() && ptr == end && status >= 100 ? status : 0;
}

absl::StatusCode grpc_code_from_http_status(int http_status) {
  switch (http_status) {
    case 400:
    case 431:
      return absl::StatusCode::kInternal;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kUnknown;
  }
}

absl::StatusCode grpc_code_from_h2_error(uint32_t h2_error) {
  switch (static_cast<H2Error>(h2_error)) {
    case H2Error::kRefusedStream:
      return absl::StatusCode::kUnavailable;
    case H2Error::kCancel:
      return absl::StatusCode::kCancelled;
    case H2Error::kEnhanceYourCalm:
      return absl::StatusCode::kResourceExhausted;
    case H2Error::kInadequateSecurity:
      return absl::StatusCode::kPermissionDenied;
    default:
      return absl::StatusCode::kInternal;
  }
}

uint32_t rst_stream_code_for(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return h2_code(H2Error::kNoError);
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kDeadlineExceeded:
      return h2_code(H2Error::kCancel);
    default:
      return h2_code(H2Error::kInternalError);
  }
}

absl::StatusOr<absl::StatusCode> parse_grpc_status(std::string_view value) {
  const bool decimal = !value.empty() && value.size() <= 2 &&
                       std::all_of(value.begin(), value.end(), absl::ascii_isdigit) &&
                       !(value.size() > 1 && value[0] == '0');
  if (decimal) {
    int code = 0;
    for (const char c : value) code = code * 10 + (c - '0');
    if (code <= 16) return static_cast<absl::StatusCode>(code);
  }
  // The value is the peer's: quoted, escaped and cut short in the reason.
  return absl::UnknownError(
      absl::StrCat("grpc-status \"", absl::CHexEscape(to_absl(value.substr(0, 32))),
                   value.size() > 32 ? "...\"" : "\"", " is not a gRPC status code (0 to 16)"));
}

}  // namespace curfew::wire
