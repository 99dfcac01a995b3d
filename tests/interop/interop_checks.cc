#include "interop_checks.h"

#include <cstdio>

#include "config/status_codes.h"

namespace curfew::testing {
namespace {

std::string CodeName(grpc::StatusCode code) {
  return std::string(config::status_code_name(static_cast<int>(code)));
}

std::string Join(std::string_view a, std::string_view b) {
  std::string out(a);
  out += ": ";
  out += b;
  return out;
}

}  // namespace

std::string Escape(std::string_view bytes) {
  std::string out;
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f && c != '\\') {
      out += c;
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", byte);
      out += buf;
    }
  }
  return out;
}

std::string DescribeStatus(const grpc::Status& status) {
  return CodeName(status.error_code()) + " (" +
         std::to_string(static_cast<int>(status.error_code())) + "): \"" +
         Escape(status.error_message()) + "\"";
}

std::string ExpectOk(const grpc::Status& status, std::string_view what) {
  if (status.ok()) return {};
  return Join(what, "expected OK, got " + DescribeStatus(status));
}

std::string ExpectCode(const grpc::Status& status, grpc::StatusCode code, std::string_view what) {
  if (status.error_code() == code) return {};
  return Join(what, std::string("expected ") + CodeName(code) + ", got " + DescribeStatus(status));
}

std::string ExpectStatus(const grpc::Status& status, grpc::StatusCode code,
                         std::string_view message, std::string_view what) {
  if (status.error_code() == code && status.error_message() == message) return {};
  return Join(what, std::string("expected ") + CodeName(code) + " (" +
                        std::to_string(static_cast<int>(code)) + "): \"" + Escape(message) +
                        "\", got " + DescribeStatus(status));
}

std::string ExpectZeros(const grpc::testing::Payload& payload, std::size_t size,
                        std::string_view what) {
  const std::string& body = payload.body();
  if (body.size() != size) {
    return Join(what, "expected a " + std::to_string(size) + "-byte payload, got " +
                          std::to_string(body.size()) + " bytes");
  }
  if (body.find_first_not_of('\0') != std::string::npos) {
    return Join(what, "payload body is not all zeros");
  }
  return {};
}

std::string ExpectMetadata(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                           std::string_view key, std::string_view value, std::string_view what) {
  std::string seen;
  const auto [begin, end] = metadata.equal_range(grpc::string_ref(key.data(), key.size()));
  for (auto it = begin; it != end; ++it) {
    const std::string_view got(it->second.data(), it->second.size());
    if (got == value) return {};
    seen += (seen.empty() ? "\"" : ", \"") + Escape(got) + "\"";
  }
  return Join(what, "expected " + std::string(key) + ": \"" + Escape(value) + "\", got " +
                        (seen.empty() ? std::string("no such key") : seen));
}

std::string Expect(bool condition, std::string_view failure) {
  return condition ? std::string() : std::string(failure);
}

}  // namespace curfew::testing
