// h2::Headers: a header block in one buffer, read back as views.
#include "h2/header.h"

#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace curfew::h2 {
namespace {

std::vector<std::pair<std::string, std::string>> fields(const Headers& h) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Header f : h) out.emplace_back(f.name, f.value);
  return out;
}

using Fields = std::vector<std::pair<std::string, std::string>>;

TEST(Headers, KeepsFieldsInOrderWithDuplicates) {
  Headers h = {{":status", "200"}, {"content-type", "application/grpc"}};
  h.push_back({"x-dup", "1"});
  h.push_back({"x-dup", "2"});
  EXPECT_EQ(h.size(), 4u);
  EXPECT_FALSE(h.empty());
  EXPECT_EQ(fields(h), (Fields{{":status", "200"},
                               {"content-type", "application/grpc"},
                               {"x-dup", "1"},
                               {"x-dup", "2"}}));
  EXPECT_EQ(find_header(h, "x-dup"), "1");  // the first
  EXPECT_EQ(find_header(h, "content-type"), "application/grpc");
  EXPECT_FALSE(find_header(h, "grpc-status").has_value());
  EXPECT_FALSE(find_header(h, "x-du").has_value());
}

TEST(Headers, ValuesAreBytes) {
  const std::string binary("\0\x01\xff bin", 7);
  Headers h;
  h.push_back({"x-bin", binary});
  h.push_back({"x-empty", ""});
  h.push_back({"", "empty name"});
  EXPECT_EQ(fields(h), (Fields{{"x-bin", binary}, {"x-empty", ""}, {"", "empty name"}}));
  EXPECT_EQ(find_header(h, "x-empty"), "");  // present, empty
}

TEST(Headers, LargeBlocksGrowWithoutLosingFields) {
  Headers h;
  Fields expected;
  for (int i = 0; i < 200; ++i) {
    const std::string name = "x-field-" + std::to_string(i);
    const std::string value(static_cast<size_t>(i * 37 % 1000), static_cast<char>('a' + i % 26));
    h.push_back({name, value});
    expected.emplace_back(name, value);
  }
  EXPECT_EQ(h.size(), 200u);
  EXPECT_EQ(fields(h), expected);
}

TEST(Headers, ReserveMakesRoomForAnotherBlock) {
  const Headers from = {{"a", "1"}, {"bb", std::string(100, 'x')}};
  Headers to;
  to.reserve(0, from.byte_size());
  EXPECT_EQ(to.byte_size(), 0u);
  for (const Header f : from) to.push_back(f);
  EXPECT_EQ(to.byte_size(), from.byte_size());
  EXPECT_EQ(fields(to), fields(from));
}

TEST(Headers, PushingItsOwnFieldCopiesBeforeGrowing) {
  // The appended views point into the buffer the append may move.
  Headers h = {{"x-long", std::string(300, 'v')}};
  for (int i = 0; i < 6; ++i) h.push_back(*h.begin());
  EXPECT_EQ(h.size(), 7u);
  for (const Header f : h) {
    EXPECT_EQ(f.name, "x-long");
    EXPECT_EQ(f.value, std::string(300, 'v'));
  }
}

TEST(Headers, MovedFromIsEmptyAndReusable) {
  Headers a = {{"k", "v"}};
  Headers b = std::move(a);
  EXPECT_EQ(fields(b), (Fields{{"k", "v"}}));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): specified as empty
  EXPECT_EQ(a.begin(), a.end());
  a.push_back({"again", "1"});
  EXPECT_EQ(fields(a), (Fields{{"again", "1"}}));
  b = std::move(a);
  EXPECT_EQ(fields(b), (Fields{{"again", "1"}}));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(Headers, CopiesAreIndependent) {
  Headers a = {{"k", "v"}};
  Headers b = a;
  b.push_back({"k2", "v2"});
  EXPECT_EQ(a.size(), 1u);
  EXPECT_EQ(b.size(), 2u);
  a.clear();
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.byte_size(), 0u);
  EXPECT_EQ(fields(b), (Fields{{"k", "v"}, {"k2", "v2"}}));
}

}  // namespace
}  // namespace curfew::h2
