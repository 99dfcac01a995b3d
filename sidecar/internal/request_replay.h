// RequestReplay: the request bytes a call sent on its upstream stream, kept until the response
// begins, so that a stream the upstream refused unprocessed can be sent again on another stream.
//
// RFC 9113 §8.7: a stream reset with REFUSED_STREAM, or above the last stream id of a GOAWAY
// (nghttp2 closes those with REFUSED_STREAM too), was never processed by the upstream, so sending
// it again is safe for any method. gRPC retries such streams transparently (gRFC A6); curfew does
// the same, once, for requests small enough to keep (kLimit), within the call's deadline.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace curfew::sidecar {

class RequestReplay {
 public:
  // Larger requests are streamed without a copy; a refusal then fails the call UNAVAILABLE.
  static constexpr size_t kLimit = 64 << 10;

  // A request chunk about to be sent upstream.
  void record(const std::string& chunk) {
    if (!available_) return;
    if (bytes_ + chunk.size() > kLimit) {
      stop();
      return;
    }
    bytes_ += chunk.size();
    chunks_.push_back(chunk);
  }
  // The response began (or the request outgrew kLimit): nothing will be replayed.
  void stop() {
    available_ = false;
    chunks_.clear();
    chunks_.shrink_to_fit();
    bytes_ = 0;
  }
  // Everything sent so far is kept: a refused stream can be replayed.
  bool available() const noexcept { return available_; }
  const std::vector<std::string>& chunks() const noexcept { return chunks_; }

 private:
  bool available_ = true;
  size_t bytes_ = 0;
  std::vector<std::string> chunks_;
};

}  // namespace curfew::sidecar
