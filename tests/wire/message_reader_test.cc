#include "wire/message_reader.h"

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace curfew::wire {
namespace {

constexpr uint32_t kNoLimit = std::numeric_limits<uint32_t>::max();

struct Message {
  MessageHeader header;
  std::string body;
  bool ended = false;

  friend bool operator==(const Message&, const Message&) = default;
};

std::ostream& operator<<(std::ostream& os, const Message& m) {
  return os << "{compressed=" << m.header.compressed << " length=" << m.header.length
            << " body=" << m.body.size() << " bytes ended=" << m.ended << "}";
}

// Records what the reader reports and checks the order of the calls on the way.
class RecordingSink : public MessageSink {
 public:
  absl::Status on_message_header(MessageHeader header) override {
    EXPECT_TRUE(messages.empty() || messages.back().ended) << "header inside a message";
    messages.push_back({header, {}, false});
    return header_status;
  }
  absl::Status on_message_data(std::string_view piece) override {
    EXPECT_FALSE(piece.empty()) << "empty piece";
    EXPECT_FALSE(messages.empty() || messages.back().ended) << "data outside a message";
    if (messages.empty()) return absl::OkStatus();
    messages.back().body.append(piece);
    EXPECT_LE(messages.back().body.size(), messages.back().header.length) << "body too long";
    ++pieces;
    return data_status;
  }
  absl::Status on_message_end() override {
    EXPECT_FALSE(messages.empty() || messages.back().ended) << "end outside a message";
    if (messages.empty()) return absl::OkStatus();
    EXPECT_EQ(messages.back().body.size(), messages.back().header.length) << "body too short";
    messages.back().ended = true;
    return end_status;
  }

  std::vector<Message> messages;
  int pieces = 0;
  absl::Status header_status;
  absl::Status data_status;
  absl::Status end_status;
};

std::string framed(bool compressed, std::string_view body) {
  std::string out;
  append_message_prefix(out, compressed, static_cast<uint32_t>(body.size()));
  out.append(body);
  return out;
}

std::string all_bytes(size_t size) {
  std::string s;
  for (size_t i = 0; i < size; ++i) s.push_back(static_cast<char>(i & 0xff));
  return s;
}

// A stream with empty messages at the start, middle and end, both flag values, bodies holding
// every byte value (0x00 and 0x01 included, which look like flags) and lengths using two bytes.
struct TestStream {
  std::string bytes;
  std::vector<Message> messages;

  void add(bool compressed, std::string body) {
    bytes += framed(compressed, body);
    messages.push_back({{compressed, static_cast<uint32_t>(body.size())}, std::move(body), true});
  }
};

TestStream test_stream() {
  TestStream s;
  s.add(false, "");
  s.add(false, "hello");
  s.add(true, all_bytes(300));
  s.add(false, "");
  s.add(true, "");
  s.add(false, std::string(1, '\0'));
  s.add(false, all_bytes(257));
  s.add(false, "");
  return s;
}

// Feeds `chunks` in order and returns what the sink saw; every feed must succeed.
std::vector<Message> read_all(const std::vector<std::string_view>& chunks) {
  MessageReader reader(kNoLimit);
  RecordingSink sink;
  for (const std::string_view chunk : chunks) {
    const absl::Status s = reader.feed(chunk, sink);
    EXPECT_TRUE(s.ok()) << s;
  }
  EXPECT_TRUE(reader.at_message_boundary());
  EXPECT_TRUE(reader.end_of_stream_status().ok());
  return sink.messages;
}

TEST(MessageReaderTest, WholeStreamInOneChunk) {
  const TestStream stream = test_stream();
  MessageReader reader(kNoLimit);
  RecordingSink sink;
  ASSERT_TRUE(reader.feed(stream.bytes, sink).ok());
  EXPECT_EQ(sink.messages, stream.messages);
  EXPECT_TRUE(reader.at_message_boundary());
  EXPECT_EQ(reader.messages(), stream.messages.size());
  EXPECT_EQ(reader.payload_bytes(), 5u + 300u + 1u + 257u);
  EXPECT_EQ(reader.stream_bytes(), stream.bytes.size());
}

TEST(MessageReaderTest, SplitAtEveryByteBoundary) {
  const TestStream stream = test_stream();
  const std::string_view bytes = stream.bytes;
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    SCOPED_TRACE(testing::Message() << "cut at " << cut);
    EXPECT_EQ(read_all({bytes.substr(0, cut), bytes.substr(cut)}), stream.messages);
  }
}

TEST(MessageReaderTest, SplitAtEveryPairOfBoundariesInTheFirstMessages) {
  // Three chunks, both cuts anywhere in the first 40 bytes (the prefixes of several messages).
  const TestStream stream = test_stream();
  const std::string_view bytes = stream.bytes;
  for (size_t a = 0; a <= 40; ++a) {
    for (size_t b = a; b <= 40; ++b) {
      SCOPED_TRACE(testing::Message() << "cuts at " << a << " and " << b);
      EXPECT_EQ(read_all({bytes.substr(0, a), bytes.substr(a, b - a), bytes.substr(b)}),
                stream.messages);
    }
  }
}

TEST(MessageReaderTest, OneByteAtATime) {
  const TestStream stream = test_stream();
  std::vector<std::string_view> chunks;
  for (size_t i = 0; i < stream.bytes.size(); ++i) {
    chunks.push_back(std::string_view(stream.bytes).substr(i, 1));
  }
  EXPECT_EQ(read_all(chunks), stream.messages);
}

TEST(MessageReaderTest, RandomChunksWithEmptyOnes) {
  const TestStream stream = test_stream();
  const std::string_view bytes = stream.bytes;
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::string_view> chunks;
    for (size_t at = 0; at < bytes.size();) {
      const size_t n = std::min<size_t>(rng() % 12, bytes.size() - at);  // 0: an empty chunk
      chunks.push_back(bytes.substr(at, n));
      at += n;
    }
    SCOPED_TRACE(testing::Message() << "round " << round);
    EXPECT_EQ(read_all(chunks), stream.messages);
  }
}

TEST(MessageReaderTest, BodyIsReportedBeforeTheMessageIsComplete) {
  MessageReader reader(kNoLimit);
  RecordingSink sink;
  const std::string message = framed(false, "0123456789");
  ASSERT_TRUE(reader.feed(std::string_view(message).substr(0, 5), sink).ok());
  ASSERT_EQ(sink.messages.size(), 1u) << "header reported as soon as the prefix is in";
  EXPECT_EQ(sink.messages[0].header, (MessageHeader{false, 10}));
  ASSERT_TRUE(reader.feed(std::string_view(message).substr(5, 3), sink).ok());
  EXPECT_EQ(sink.messages[0].body, "012");
  EXPECT_FALSE(sink.messages[0].ended);
  EXPECT_FALSE(reader.at_message_boundary());
  EXPECT_EQ(reader.payload_bytes(), 3u);
  EXPECT_EQ(reader.messages(), 0u);
  ASSERT_TRUE(reader.feed(std::string_view(message).substr(8), sink).ok());
  EXPECT_EQ(sink.messages[0].body, "0123456789");
  EXPECT_TRUE(sink.messages[0].ended);
  EXPECT_EQ(sink.pieces, 2);
  EXPECT_EQ(reader.messages(), 1u);
}

TEST(MessageReaderTest, LengthIsBigEndian) {
  MessageReader reader(kNoLimit);
  RecordingSink sink;
  ASSERT_TRUE(reader.feed(std::string("\x01\x01\x02\x03\x04", 5), sink).ok());
  ASSERT_EQ(sink.messages.size(), 1u);
  EXPECT_EQ(sink.messages[0].header, (MessageHeader{true, 0x01020304}));
}

TEST(MessageReaderTest, ZeroLengthMessagesHaveNoData) {
  MessageReader reader(0);  // a limit of 0 still lets empty messages through
  RecordingSink sink;
  ASSERT_TRUE(reader.feed(framed(false, "") + framed(true, ""), sink).ok());
  ASSERT_EQ(sink.messages.size(), 2u);
  EXPECT_EQ(sink.messages[0], (Message{{false, 0}, "", true}));
  EXPECT_EQ(sink.messages[1], (Message{{true, 0}, "", true}));
  EXPECT_EQ(sink.pieces, 0);
  EXPECT_TRUE(reader.at_message_boundary());
  EXPECT_EQ(reader.messages(), 2u);
  EXPECT_EQ(reader.payload_bytes(), 0u);
  EXPECT_EQ(reader.stream_bytes(), 10u);
}

struct FlagCase {
  const char* name;
  unsigned char flag;
  std::string expected_message;  // empty: accepted
};

TEST(MessageReaderTest, CompressedFlag) {
  const std::vector<FlagCase> cases = {
      {"0 is uncompressed", 0x00, ""},
      {"1 is compressed", 0x01, ""},
      {"2 is refused", 0x02, "grpc message: compressed flag byte 0x02"},
      {"0x80 is refused", 0x80, "grpc message: compressed flag byte 0x80"},
      {"0xff is refused", 0xff, "grpc message: compressed flag byte 0xff"},
  };
  for (const FlagCase& c : cases) {
    SCOPED_TRACE(c.name);
    MessageReader reader(kNoLimit);
    RecordingSink sink;
    // The flag alone: a bad one is refused without waiting for the length.
    const absl::Status s = reader.feed(std::string(1, static_cast<char>(c.flag)), sink);
    if (c.expected_message.empty()) {
      EXPECT_TRUE(s.ok()) << s;
      EXPECT_FALSE(reader.at_message_boundary());
    } else {
      EXPECT_EQ(s, absl::InternalError(c.expected_message));
      EXPECT_TRUE(sink.messages.empty());
    }
  }
}

TEST(MessageReaderTest, BadFlagOfALaterMessage) {
  MessageReader reader(kNoLimit);
  RecordingSink sink;
  const std::string stream = framed(false, "ok") + std::string("\x02\x00\x00\x00\x00", 5);
  const absl::Status s = reader.feed(stream, sink);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  ASSERT_EQ(sink.messages.size(), 1u);
  EXPECT_EQ(sink.messages[0], (Message{{false, 2}, "ok", true}));
  EXPECT_EQ(reader.messages(), 1u);
}

struct LimitCase {
  const char* name;
  uint32_t max;
  uint32_t length;
  bool accepted;
};

TEST(MessageReaderTest, LengthLimit) {
  const std::vector<LimitCase> cases = {
      {"zero under a zero limit", 0, 0, true},
      {"one over a zero limit", 0, 1, false},
      {"one under the limit", 1024, 1023, true},
      {"exactly the limit", 1024, 1024, true},
      {"one over the limit", 1024, 1025, false},
      {"largest length, no limit", kNoLimit, kNoLimit, true},
      {"largest length, one under", kNoLimit - 1, kNoLimit, false},
  };
  for (const LimitCase& c : cases) {
    SCOPED_TRACE(c.name);
    MessageReader reader(c.max);
    RecordingSink sink;
    std::string prefix;
    append_message_prefix(prefix, false, c.length);
    const absl::Status s = reader.feed(prefix, sink);
    if (c.accepted) {
      EXPECT_TRUE(s.ok()) << s;
      ASSERT_EQ(sink.messages.size(), 1u);
      EXPECT_EQ(sink.messages[0].header.length, c.length);
    } else {
      EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
      EXPECT_EQ(s.message(), "grpc message: length " + std::to_string(c.length) +
                                 " exceeds the limit of " + std::to_string(c.max) + " bytes");
      EXPECT_TRUE(sink.messages.empty()) << "no header for a refused message";
    }
  }
}

TEST(MessageReaderTest, ErrorsAreFinal) {
  MessageReader reader(4);
  RecordingSink sink;
  const absl::Status first = reader.feed(framed(false, "too long"), sink);
  ASSERT_EQ(first.code(), absl::StatusCode::kResourceExhausted);
  const uint64_t consumed = reader.stream_bytes();
  EXPECT_EQ(reader.feed(framed(false, "ok"), sink), first);
  EXPECT_EQ(reader.stream_bytes(), consumed);
  EXPECT_TRUE(sink.messages.empty());
  EXPECT_FALSE(reader.at_message_boundary());
  EXPECT_EQ(reader.end_of_stream_status(), first);
}

struct TruncationCase {
  const char* name;
  size_t bytes;                  // of framed(false, "hello") fed before the stream ends
  std::string expected_message;  // empty: a clean end
};

TEST(MessageReaderTest, EndOfStream) {
  const std::vector<TruncationCase> cases = {
      {"nothing", 0, ""},
      {"flag only", 1, "grpc message: stream ended after 1 of the 5 bytes of a message prefix"},
      {"four prefix bytes", 4,
       "grpc message: stream ended after 4 of the 5 bytes of a message prefix"},
      {"prefix only", 5, "grpc message: stream ended after 0 of the 5 bytes of a message"},
      {"one body byte short", 9, "grpc message: stream ended after 4 of the 5 bytes of a message"},
      {"whole message", 10, ""},
  };
  const std::string message = framed(false, "hello");
  for (const TruncationCase& c : cases) {
    SCOPED_TRACE(c.name);
    MessageReader reader(kNoLimit);
    RecordingSink sink;
    ASSERT_TRUE(reader.feed(std::string_view(message).substr(0, c.bytes), sink).ok());
    EXPECT_EQ(reader.at_message_boundary(), c.expected_message.empty());
    if (c.expected_message.empty()) {
      EXPECT_TRUE(reader.end_of_stream_status().ok());
    } else {
      EXPECT_EQ(reader.end_of_stream_status(), absl::InternalError(c.expected_message));
    }
  }
}

TEST(MessageReaderTest, SinkErrorStopsTheReader) {
  const std::string stream = framed(false, "abc") + framed(false, "def");
  struct Case {
    const char* name;
    absl::Status RecordingSink::*which;
    size_t messages_seen;
  };
  const std::vector<Case> cases = {
      {"header", &RecordingSink::header_status, 1},
      {"data", &RecordingSink::data_status, 1},
      {"end", &RecordingSink::end_status, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    MessageReader reader(kNoLimit);
    RecordingSink sink;
    sink.*c.which = absl::CancelledError("peer gone");
    EXPECT_EQ(reader.feed(stream, sink), absl::CancelledError("peer gone"));
    EXPECT_EQ(sink.messages.size(), c.messages_seen) << "nothing reported after the error";
    EXPECT_EQ(reader.feed(stream, sink), absl::CancelledError("peer gone"));
    EXPECT_EQ(sink.messages.size(), c.messages_seen);
  }
}

struct PrefixCase {
  const char* name;
  bool compressed;
  uint32_t length;
  std::string expected;
};

TEST(MessageReaderTest, AppendMessagePrefix) {
  const std::vector<PrefixCase> cases = {
      {"empty uncompressed", false, 0, std::string("\x00\x00\x00\x00\x00", 5)},
      {"empty compressed", true, 0, std::string("\x01\x00\x00\x00\x00", 5)},
      {"every length byte", false, 0x01020304, std::string("\x00\x01\x02\x03\x04", 5)},
      {"largest", true, kNoLimit, std::string("\x01\xff\xff\xff\xff", 5)},
  };
  for (const PrefixCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::string out = "x";  // appended, not replaced
    append_message_prefix(out, c.compressed, c.length);
    EXPECT_EQ(out, "x" + c.expected);
  }
}

}  // namespace
}  // namespace curfew::wire
