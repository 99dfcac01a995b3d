#include "h2/stream.h"

#include "h2/session.h"

namespace curfew::h2 {

// Every method runs on the loop thread; `this` stays put across the waits below because the task
// calling them holds the stream's shared_ptr (Session hands them out only that way).

rt::Task<bool> Stream::wait_headers() {
  while (!headers_received_ && !closed_) {
    inbound_changed_.clear();
    co_await inbound_changed_.wait();
  }
  co_return headers_received_;
}

rt::Task<std::optional<std::string>> Stream::read() {
  for (;;) {
    if (!inbound_.empty()) {
      std::string chunk = std::move(inbound_.front());
      inbound_.pop_front();
      if (session_ != nullptr) session_->consume(*this, chunk.size());
      co_return chunk;
    }
    if (inbound_ended_ || closed_) co_return std::nullopt;
    inbound_changed_.clear();
    co_await inbound_changed_.wait();
  }
}

bool Stream::send_headers(const Headers& headers) {
  if (session_ == nullptr || closed_ || headers_sent_) return false;
  return session_->submit_response(*this, headers, /*with_body=*/true);
}

bool Stream::send_trailers_only(const Headers& headers) {
  if (session_ == nullptr || closed_ || headers_sent_) return false;
  out_end_ = true;
  return session_->submit_response(*this, headers, /*with_body=*/false);
}

bool Stream::write_now(std::string bytes) {
  if (session_ == nullptr || closed_ || out_end_) return false;
  if (bytes.empty()) return true;
  out_bytes_ += bytes.size();
  out_.push_back(std::move(bytes));
  session_->resume(*this);
  return true;
}

rt::Task<bool> Stream::write(std::string bytes) {
  if (!write_now(std::move(bytes))) co_return false;
  while (session_ != nullptr && !closed_ &&
         out_bytes_ > session_->limits_.stream_send_buffer_bytes) {
    send_space_.clear();
    co_await send_space_.wait();
  }
  co_return session_ != nullptr && !closed_;
}

void Stream::end(Headers trailers) {
  if (session_ == nullptr || closed_ || out_end_) return;
  out_end_ = true;
  out_trailers_ = std::move(trailers);
  session_->resume(*this);
}

void Stream::reset(uint32_t error_code) {
  if (session_ == nullptr || closed_ || reset_) return;
  reset_ = true;
  reset_by_us_ = true;
  reset_code_ = error_code;
  session_->submit_reset(*this, error_code);
}

rt::Task<void> Stream::wait_closed() {
  while (!closed_) {
    closed_event_.clear();
    co_await closed_event_.wait();
  }
}

}  // namespace curfew::h2
