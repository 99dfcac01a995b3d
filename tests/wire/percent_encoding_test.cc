#include "wire/percent_encoding.h"

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace curfew::wire {
namespace {

struct Case {
  const char* name;
  std::string input;
  std::string expected;
};

TEST(PercentEncodingTest, Encode) {
  const std::vector<Case> cases = {
      {"empty", "", ""},
      {"printable ASCII kept", "Hello, World!", "Hello, World!"},
      {"space kept", "Hello World", "Hello World"},
      {"edges of the kept range", " ~", " ~"},
      {"percent", "100%", "100%25"},
      {"newline and tab", "a\nb\tc", "a%0Ab%09c"},
      {"NUL", std::string("\0", 1), "%00"},
      {"last control byte", "\x1f", "%1F"},
      {"DEL", "\x7f", "%7F"},
      {"UTF-8, uppercase hex", "\xe2\x82\xac", "%E2%82%AC"},
      {"0xff", "\xff", "%FF"},
      {"already encoded text is encoded again", "%41", "%2541"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(encode_grpc_message(c.input), c.expected);
  }
}

TEST(PercentEncodingTest, Decode) {
  const std::vector<Case> cases = {
      {"empty", "", ""},
      {"plain", "Hello World", "Hello World"},
      {"uppercase hex", "%41%2F", "A/"},
      {"lowercase hex", "%4a%2f", "J/"},
      {"UTF-8", "%E2%82%AC", "\xe2\x82\xac"},
      {"NUL", "a%00b", std::string("a\0b", 3)},
      {"percent", "100%25", "100%"},
      // Lenient: what is not a valid escape is kept literally.
      {"lone percent", "%", "%"},
      {"percent then one hex digit", "%4", "%4"},
      {"non-hex digits", "%zz", "%zz"},
      {"one non-hex digit", "%4g", "%4g"},
      {"first digit not hex", "%g4", "%g4"},
      {"trailing percent", "100%", "100%"},
      {"percent at the end after text", "a%2", "a%2"},
      {"double percent", "%%", "%%"},
      {"invalid then valid", "%%41", "%A"},
      {"space inside escape", "% 41", "% 41"},
      {"sign inside escape", "%+1", "%+1"},
      {"bytes outside the encoded range kept", "\n\xff", "\n\xff"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(decode_grpc_message(c.input), c.expected);
  }
}

TEST(PercentEncodingTest, DecodeReadsNothingPastTheValue) {
  // The bytes after the view would complete the escapes: they must not be looked at.
  const std::string buffer = "a%41%4";
  EXPECT_EQ(decode_grpc_message(std::string_view(buffer).substr(0, 2)), "a%");
  EXPECT_EQ(decode_grpc_message(std::string_view(buffer).substr(0, 3)), "a%4");
  EXPECT_EQ(decode_grpc_message(std::string_view(buffer).substr(0, 4)), "aA");
}

TEST(PercentEncodingTest, EverySingleByte) {
  for (int b = 0; b < 256; ++b) {
    SCOPED_TRACE(testing::Message() << "byte " << b);
    const std::string input(1, static_cast<char>(b));
    const std::string encoded = encode_grpc_message(input);
    if (b >= 0x20 && b <= 0x7e && b != '%') {
      EXPECT_EQ(encoded, input);
    } else {
      ASSERT_EQ(encoded.size(), 3u);
      EXPECT_EQ(encoded[0], '%');
      EXPECT_EQ(std::stoi(encoded.substr(1), nullptr, 16), b);
      EXPECT_EQ(encoded.substr(1).find_first_of("abcdef"), std::string::npos) << "uppercase";
    }
    EXPECT_EQ(decode_grpc_message(encoded), input);
  }
}

TEST(PercentEncodingTest, EncodedValuesArePrintableAscii) {
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte.push_back(static_cast<char>(b));
  for (const char c : encode_grpc_message(every_byte)) {
    EXPECT_TRUE(c >= 0x20 && c <= 0x7e) << static_cast<int>(c);
  }
}

TEST(PercentEncodingTest, RoundTripRandomStrings) {
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    std::string input(rng() % 64, '\0');
    // Half the strings from a small alphabet heavy in '%' and hex digits, where escapes collide.
    const bool tricky = i % 2 == 0;
    for (char& c : input) {
      c = tricky ? "%4aAfF0 \n"[rng() % 9] : static_cast<char>(rng() & 0xff);
    }
    const std::string encoded = encode_grpc_message(input);
    ASSERT_EQ(decode_grpc_message(encoded), input) << "encoded as " << encoded;
  }
}

}  // namespace
}  // namespace curfew::wire
