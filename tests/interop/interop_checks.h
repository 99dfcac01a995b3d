// Assertions for the interop cases. Each returns an empty string when the expectation holds and a
// human-readable failure otherwise, so a case reads as a list of checks that stops at the first
// failure (see CURFEW_INTEROP_CHECK).
#pragma once

#include <grpcpp/support/status.h>
#include <grpcpp/support/string_ref.h>

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "grpc/testing/messages.pb.h"

namespace curfew::testing {

// Returns from the enclosing case with the failure if `check` produced one.
#define CURFEW_INTEROP_CHECK(check)                                         \
  do {                                                                      \
    if (std::string failure_ = (check); !failure_.empty()) return failure_; \
  } while (false)

// "DEADLINE_EXCEEDED (4): message", with control and non-ASCII bytes escaped.
std::string DescribeStatus(const grpc::Status& status);

// Printable form of arbitrary bytes: ASCII as is, anything else as \xNN.
std::string Escape(std::string_view bytes);

// `status` is OK.
std::string ExpectOk(const grpc::Status& status, std::string_view what);

// `status` has code `code` (the message is not checked).
std::string ExpectCode(const grpc::Status& status, grpc::StatusCode code, std::string_view what);

// `status` has exactly this code and message, byte for byte.
std::string ExpectStatus(const grpc::Status& status, grpc::StatusCode code,
                         std::string_view message, std::string_view what);

// `payload` has a body of `size` bytes, all zeros.
std::string ExpectZeros(const grpc::testing::Payload& payload, std::size_t size,
                        std::string_view what);

// `metadata` holds `key` with exactly `value` (among possibly several values for the key).
std::string ExpectMetadata(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                           std::string_view key, std::string_view value, std::string_view what);

// `condition` holds.
std::string Expect(bool condition, std::string_view failure);

}  // namespace curfew::testing
