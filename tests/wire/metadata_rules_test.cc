#include "wire/metadata_rules.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace curfew::wire {
namespace {

TEST(MetadataRulesTest, Forwarding) {
  struct Case {
    const char* name;
    std::string field;
    std::string value;
    bool pseudo;
    bool connection_specific;
  };
  const std::vector<Case> cases = {
      // Connection-specific (RFC 9113 §8.2.2).
      {"connection", "connection", "close", false, true},
      {"keep-alive", "keep-alive", "timeout=5", false, true},
      {"proxy-connection", "proxy-connection", "keep-alive", false, true},
      {"transfer-encoding", "transfer-encoding", "chunked", false, true},
      {"upgrade", "upgrade", "h2c", false, true},
      {"uppercase name", "Connection", "close", false, true},
      {"empty value", "upgrade", "", false, true},
      // te: only "trailers" crosses.
      {"te trailers", "te", "trailers", false, false},
      {"te trailers, any case", "TE", "Trailers", false, false},
      {"te gzip", "te", "gzip", false, true},
      {"te trailers and more", "te", "trailers, deflate", false, true},
      {"te empty", "te", "", false, true},
      // Pseudo-headers: the caller's.
      {":path", ":path", "/pkg.Svc/Method", true, false},
      {":status", ":status", "200", true, false},
      {":authority", ":authority", "example.com", true, false},
      // End to end.
      {"content-type", "content-type", "application/grpc", false, false},
      {"grpc-timeout", "grpc-timeout", "1S", false, false},
      {"custom", "x-request-id", "abc", false, false},
      {"binary", "trace-bin", "AAEC", false, false},
      {"name containing connection", "x-connection", "close", false, false},
      {"name starting with te", "tenant", "a", false, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(is_pseudo_header(c.field), c.pseudo);
    EXPECT_EQ(is_connection_specific_header(c.field, c.value), c.connection_specific);
    EXPECT_EQ(is_forwardable_header(c.field, c.value), !c.pseudo && !c.connection_specific);
  }
}

TEST(MetadataRulesTest, BinaryHeader) {
  struct Case {
    const char* name;
    std::string field;
    bool expected;
  };
  const std::vector<Case> cases = {
      {"binary", "trace-bin", true},       {"grpc binary", "grpc-status-details-bin", true},
      {"suffix only", "-bin", true},       {"no dash", "tracebin", false},
      {"bin inside", "x-bin-data", false}, {"uppercase suffix", "trace-BIN", false},
      {"ascii", "x-request-id", false},    {"empty", "", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(is_binary_header(c.field), c.expected);
  }
}

TEST(MetadataRulesTest, HeaderName) {
  struct Case {
    const char* name;
    std::string field;
    bool expected;
  };
  const std::vector<Case> cases = {
      {"lowercase", "authorization", true},
      {"every allowed class", "a-z_0.9", true},
      {"digits only", "123", true},
      {"single dot", ".", true},
      {"binary", "trace-bin", true},
      {"empty", "", false},
      {"uppercase", "Authorization", false},
      {"pseudo-header", ":path", false},
      {"space", "x request", false},
      {"slash", "x/y", false},
      {"plus", "x+y", false},
      {"tilde", "x~", false},
      {"NUL", std::string("x\0", 2), false},
      {"non-ASCII", "caf\xc3\xa9", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(is_valid_header_name(c.field), c.expected);
  }
}

TEST(MetadataRulesTest, AsciiValue) {
  struct Case {
    const char* name;
    std::string value;
    bool expected;
  };
  const std::vector<Case> cases = {
      {"text", "Bearer abc.def", true},
      {"empty", "", true},
      {"edges", " ~", true},
      {"every printable byte",
       [] {
         std::string s;
         for (char c = 0x20; c <= 0x7e; ++c) s.push_back(c);
         return s;
       }(),
       true},
      {"tab", "a\tb", false},
      {"newline", "a\nb", false},
      {"NUL", std::string("a\0", 2), false},
      {"last control byte", "\x1f", false},
      {"DEL", "\x7f", false},
      {"non-ASCII", "caf\xc3\xa9", false},
      {"0xff", "\xff", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(is_valid_ascii_value(c.value), c.expected);
  }
}

TEST(MetadataRulesTest, HeaderListSize) {
  EXPECT_EQ(header_list_size("", ""), 32u);
  EXPECT_EQ(header_list_size("a", "bc"), 35u);
  EXPECT_EQ(header_list_size("content-type", "application/grpc"), 12u + 16u + 32u);
  static_assert(header_list_size("te", "trailers") == 42);
}

}  // namespace
}  // namespace curfew::wire
