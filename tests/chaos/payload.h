// curfew-chaos: what travels in a call. The caller's plan for the upstream (request metadata), and
// self-verifying message bytes: message `index` of call `id` in one direction has a size and
// content that both ends compute from (id, direction, index, max size) alone, so either end can
// tell whether a message is complete, correct and in its place, with no shared state.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/status_codes.h"

namespace curfew::chaos {

// The shapes of calls. All travel as generic HTTP/2 streams; the kind says how many messages go
// each way and when the upstream answers.
enum class Kind { kUnary, kClientStream, kServerStream, kBidi, kUnknown };

inline const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kUnary:
      return "unary";
    case Kind::kClientStream:
      return "client-stream";
    case Kind::kServerStream:
      return "server-stream";
    case Kind::kBidi:
      return "bidi";
    case Kind::kUnknown:
      return "unmatched";
  }
  return "?";
}

inline const char* code_name(int code) {
  return code >= 0 && code <= 16 ? config::kStatusCodeNames[code] : "?";
}

// What the upstream is asked to do (header x-chaos-plan). Upstreams whose index is in alt_mask
// use alt_code / alt_delay_ms instead of code / delay_ms (fan-out children that disagree).
struct Plan {
  int kind = 0;         // Kind: a bidi upstream answers while reading, others after the half-close
  int n_req = 1;        // request messages the caller sends
  int req_max = 0;      // max request message size
  int n_resp = 1;       // response messages on success
  int resp_max = 0;     // max response message size
  int interval_ms = 0;  // between response messages
  int delay_ms = 0;     // before the first response (or the status)
  int code = 0;         // final status
  int partial = 0;      // responses sent before a failure status
  int reset = -1;  // >= 0: the upstream resets the stream (TryCancel) after this many responses
  int early = -1;  // >= 0: the upstream answers after this many requests, not waiting for the rest
  unsigned alt_mask = 0;
  int alt_code = 0, alt_delay_ms = 0;
  int fail_first = 0;  // the first N tries of this call on an upstream fail at once with fail_code
  int fail_code = 14;

  // Status and delay for upstream `u`.
  int code_for(int u) const { return (alt_mask >> u) & 1 ? alt_code : code; }
  int delay_for(int u) const { return (alt_mask >> u) & 1 ? alt_delay_ms : delay_ms; }
  // Responses upstream `u` sends before its status (without reset or fail_first).
  int sends_for(int u) const { return code_for(u) == 0 ? n_resp : partial; }

  std::string encode() const {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%u,%d,%d,%d,%d", kind, n_req,
                  req_max, n_resp, resp_max, interval_ms, delay_ms, code, partial, reset, early,
                  alt_mask, alt_code, alt_delay_ms, fail_first, fail_code);
    return buf;
  }
  static bool decode(const std::string& text, Plan& p) {
    return std::sscanf(text.c_str(), "%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%u,%d,%d,%d,%d", &p.kind,
                       &p.n_req, &p.req_max, &p.n_resp, &p.resp_max, &p.interval_ms, &p.delay_ms,
                       &p.code, &p.partial, &p.reset, &p.early, &p.alt_mask, &p.alt_code,
                       &p.alt_delay_ms, &p.fail_first, &p.fail_code) == 16;
  }
};

// The status message an upstream sends with a planned failure (curfew must pass it on as is).
inline std::string planned_message(int code, int upstream) {
  return std::string("chaos: planned ") + code_name(code) + " from u" + std::to_string(upstream);
}

constexpr int kRequest = 1, kResponse = 2;

inline uint64_t mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline uint64_t message_seed(uint64_t id, int direction, int index) {
  return mix(mix(id) ^ (static_cast<uint64_t>(direction) << 56) ^ static_cast<uint64_t>(index));
}

inline size_t message_size(uint64_t id, int direction, int index, int max_size) {
  if (max_size <= 0) return 0;
  return message_seed(id, direction, index) % static_cast<uint64_t>(max_size + 1);
}

// The bytes of message `index` of call `id` going in `direction`.
inline std::string message_bytes(uint64_t id, int direction, int index, int max_size) {
  std::string out(message_size(id, direction, index, max_size), '\0');
  uint64_t state = message_seed(id, direction, index) | 1;
  for (size_t i = 0; i < out.size(); i += 8) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    for (size_t j = 0; j < 8 && i + j < out.size(); ++j)
      out[i + j] = static_cast<char>(state >> (8 * j));
  }
  return out;
}

inline grpc::ByteBuffer to_buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

inline std::string to_string(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// Empty when `got` is message `index` of call `id`; otherwise what is wrong with it.
inline std::string verify_message(const std::string& got, uint64_t id, int direction, int index,
                                  int max_size) {
  const std::string want = message_bytes(id, direction, index, max_size);
  if (got == want) return "";
  if (got.size() != want.size()) {
    return "message " + std::to_string(index) + " has " + std::to_string(got.size()) +
           " bytes, expected " + std::to_string(want.size());
  }
  return "message " + std::to_string(index) + " has the right size but wrong bytes";
}

}  // namespace curfew::chaos
