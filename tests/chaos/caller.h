// curfew-chaos: one call, driven to its end. Every call is a generic stream at the wire level, so
// one driver serves every kind (the plan says how many messages go each way): an async
// ClientAsyncReaderWriter on the caller thread's own completion queue, with at most one read and
// one write outstanding, timed writes, and a cancellation at a planned point. Bounded: a call
// that has not ended by its deadline (or curfew's longest route deadline) plus kHungSlack is
// cancelled and recorded as hung.
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>

#include "payload.h"
#include "routes.h"

namespace curfew::chaos {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kHungSlack{15000};  // sanitizers on a busy 2-core machine: generous
constexpr int kHoldMs = 30000;             // "never answers": only a deadline or a cancel ends it

enum class CancelAt { kNever, kBeforeStart, kMidUpload, kAfterHalfClose, kMidDownload, kAtTime };

inline const char* cancel_name(CancelAt c) {
  switch (c) {
    case CancelAt::kNever:
      return "no";
    case CancelAt::kBeforeStart:
      return "before-start";
    case CancelAt::kMidUpload:
      return "mid-upload";
    case CancelAt::kAfterHalfClose:
      return "after-half-close";
    case CancelAt::kMidDownload:
      return "mid-download";
    case CancelAt::kAtTime:
      return "at-time";
  }
  return "?";
}

// One call: what was asked, and what happened.
struct CallRecord {
  uint64_t id = 0;
  int method = 0;  // index into the run's methods
  Plan plan;
  int deadline_ms = -1;  // the caller's own deadline; -1: none
  CancelAt cancel_at = CancelAt::kNever;
  int cancel_arg = 0;  // messages (mid-upload/-download) or ms (at-time, after-half-close)
  bool use_write_last = false;

  bool cancelled = false;                    // TryCancel was called before the call ended
  bool cancelled_before_half_close = false;  // ... before WritesDone / WriteLast was started
  bool hung = false;
  int sent = 0;      // request messages written
  int received = 0;  // response messages received
  int copies = -1;   // fan-out concat: copies of the response in the one message
  std::string bad;   // first response that failed verification
  int code = -1;
  std::string message;
  double seconds = 0;

  std::string describe(const Method& m) const {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "call %llu %s (%s) plan[%s] deadline=%dms cancel=%s/%d%s sent=%d received=%d -> "
                  "%s \"%.160s\" after %.3fs",
                  static_cast<unsigned long long>(id), m.path.c_str(), kind_name(m.kind),
                  plan.encode().c_str(), deadline_ms, cancel_name(cancel_at), cancel_arg,
                  cancelled ? (cancelled_before_half_close ? " (cancelled before half-close)"
                                                           : " (cancelled)")
                            : "",
                  sent, received, code_name(code), message.c_str(), seconds);
    return buf;
  }
};

// ---- drawing a call --------------------------------------------------------------------------

inline int uniform(std::mt19937_64& rng, int lo, int hi) {
  return lo + static_cast<int>(rng() % (hi - lo + 1));
}

inline int draw_size(std::mt19937_64& rng, int max) {
  const int r = uniform(rng, 0, 9);
  if (r < 4) return uniform(rng, 0, 64);
  if (r < 8) return uniform(rng, 0, 1024);
  return uniform(rng, 0, max);
}

inline int draw_delay(std::mt19937_64& rng) {
  const int r = uniform(rng, 0, 99);
  if (r < 30) return 0;
  if (r < 70) return uniform(rng, 1, 50);
  if (r < 92) return uniform(rng, 50, 500);
  return kHoldMs;
}

// Codes an upstream is asked to fail with. Never INTERNAL or UNKNOWN: a caller seeing one of
// those got it from curfew (or its gRPC), never from an upstream.
inline int draw_fail_code(std::mt19937_64& rng) {
  static const int codes[] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16};
  return codes[rng() % (sizeof codes / sizeof codes[0])];
}

inline Plan draw_plan(const Method& m, std::mt19937_64& rng) {
  Plan p;
  p.kind = static_cast<int>(m.kind);
  const bool streams_in = m.kind == Kind::kClientStream || m.kind == Kind::kBidi;
  const bool streams_out = m.kind == Kind::kServerStream || m.kind == Kind::kBidi;
  p.n_req = streams_in ? uniform(rng, 0, 6) : 1;
  p.req_max = draw_size(rng, 40 * 1024);
  p.n_resp = streams_out ? uniform(rng, 0, 8) : 1;
  p.resp_max = draw_size(rng, 20 * 1024);
  p.interval_ms = streams_out ? uniform(rng, 0, 5) : 0;
  p.delay_ms = draw_delay(rng);
  if (uniform(rng, 0, 99) < 30) {
    p.code = draw_fail_code(rng);
    p.partial = streams_out ? uniform(rng, 0, p.n_resp) : 0;
  }
  if (uniform(rng, 0, 99) < 4) p.reset = uniform(rng, 0, p.n_resp);
  if (streams_in && p.n_req > 0 && uniform(rng, 0, 99) < 5) p.early = uniform(rng, 0, p.n_req - 1);
  if ((m.fanout() || m.mirror >= 0) && uniform(rng, 0, 99) < 40) {
    // Some upstreams answer differently: fan-out children that disagree, a mirror that fails.
    p.alt_mask = m.mirror >= 0 ? 1u << m.mirror : static_cast<unsigned>(rng() % 16) & m.mask();
    p.alt_code = uniform(rng, 0, 1) ? 0 : draw_fail_code(rng);
    p.alt_delay_ms = draw_delay(rng);
  }
  if (m.policy == Policy::kRetry && uniform(rng, 0, 1)) {
    static const int retried[] = {14, 10, 8,
                                  5};  // UNAVAILABLE, ABORTED, RESOURCE_EXHAUSTED, NOT_FOUND
    p.fail_first = uniform(rng, 1, 3);
    p.fail_code = retried[rng() % 4];
  }
  return p;
}

inline void draw_call(CallRecord& c, const Method& m, std::mt19937_64& rng) {
  c.plan = draw_plan(m, rng);
  if (uniform(rng, 0, 99) < 60)
    c.deadline_ms = std::max(
        5, static_cast<int>(std::exp(std::log(5.0) + (rng() % 1000) / 1000.0 * std::log(200.0))));
  c.use_write_last = uniform(rng, 0, 1);
  if (uniform(rng, 0, 99) >= 30) return;
  // A cancellation, at a point that exists for this call.
  const int r = uniform(rng, 0, 11);
  if (r == 0) {
    c.cancel_at = CancelAt::kBeforeStart;
  } else if (r < 4) {
    // After `cancel_arg` writes; cancel_arg == n_req: every message sent, END_STREAM not yet.
    c.cancel_at = CancelAt::kMidUpload;
    c.cancel_arg = uniform(rng, 0, c.plan.n_req);
    if (c.cancel_arg == c.plan.n_req) c.use_write_last = false;
  } else if (r < 7) {
    c.cancel_at = CancelAt::kAfterHalfClose;
    c.cancel_arg = uniform(rng, 0, 30);
  } else if (r < 9 && c.plan.n_resp >= 2) {
    c.cancel_at = CancelAt::kMidDownload;
    c.cancel_arg = uniform(rng, 1, c.plan.n_resp - 1);
  } else {
    c.cancel_at = CancelAt::kAtTime;
    c.cancel_arg = uniform(rng, 0, 300);
  }
}

// ---- driving a call --------------------------------------------------------------------------

class CallDriver {
 public:
  CallDriver(grpc::GenericStub& stub, grpc::CompletionQueue& cq, const Method& method,
             CallRecord& rec, std::mt19937_64& rng)
      : stub_(stub), cq_(cq), m_(method), rec_(rec), rng_(rng) {}

  // Runs the call to its end. False only if gRPC never completed it even after a cancel (the
  // completion queue cannot be reused then).
  bool run() {
    const auto start = Clock::now();
    ctx_.AddMetadata("x-chaos-id", std::to_string(rec_.id));
    ctx_.AddMetadata("x-chaos-plan", rec_.plan.encode());
    ctx_.AddMetadata("x-chaos-upstreams", std::to_string(m_.mask()));
    int bound_ms = kMaxRouteDeadlineMs;
    if (rec_.deadline_ms >= 0) {
      ctx_.set_deadline(std::chrono::system_clock::now() + milliseconds(rec_.deadline_ms));
      bound_ms = std::min(bound_ms, rec_.deadline_ms);
    }
    hung_at_ = start + milliseconds(bound_ms) + kHungSlack;
    if (rec_.cancel_at == CancelAt::kAtTime) cancel_at_ = start + milliseconds(rec_.cancel_arg);
    stream_ = stub_.PrepareCall(&ctx_, m_.path, &cq_);
    if (rec_.cancel_at == CancelAt::kBeforeStart) cancel();
    stream_->StartCall(tag(kStart));
    pending_start_ = true;
    bool ok_run = true;
    while (!finished_) {
      if (!turn()) {
        ok_run = false;
        break;
      }
    }
    rec_.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return ok_run;
  }

 private:
  enum Tag : intptr_t { kStart = 1, kRead, kWrite, kWritesDone, kFinish };
  static void* tag(Tag t) { return reinterpret_cast<void*>(t); }

  // Waits for the next event or timed action and handles it. False: gRPC is stuck.
  bool turn() {
    auto wake = hung_at_;
    if (write_at_) wake = std::min(wake, *write_at_);
    if (cancel_at_) wake = std::min(wake, *cancel_at_);
    void* t = nullptr;
    bool ok = false;
    const auto wake_system = std::chrono::system_clock::now() + (wake - Clock::now());
    switch (cq_.AsyncNext(&t, &ok, wake_system)) {
      case grpc::CompletionQueue::SHUTDOWN:
        return false;
      case grpc::CompletionQueue::TIMEOUT:
        return timed();
      case grpc::CompletionQueue::GOT_EVENT:
        break;
    }
    switch (static_cast<Tag>(reinterpret_cast<intptr_t>(t))) {
      case kStart:
        on_start(ok);
        break;
      case kRead:
        on_read(ok);
        break;
      case kWrite:
        on_write(ok);
        break;
      case kWritesDone:
        on_writes_done();
        break;
      case kFinish:
        finished_ = true;
        rec_.code = static_cast<int>(status_.error_code());
        rec_.message = status_.error_message();
        break;
    }
    maybe_finish();
    return true;
  }

  bool timed() {
    const auto now = Clock::now();
    if (now >= hung_at_) {
      if (rec_.hung) return false;  // cancelled a while ago and still not over
      rec_.hung = true;
      ctx_.TryCancel();
      hung_at_ = now + std::chrono::seconds(30);
      return true;
    }
    if (cancel_at_ && now >= *cancel_at_) {
      cancel_at_.reset();
      cancel();
    }
    if (write_at_ && now >= *write_at_) {
      write_at_.reset();
      write_next();
    }
    maybe_finish();
    return true;
  }

  void on_start(bool ok) {
    pending_start_ = false;
    if (!ok) {  // the call failed at once (e.g. cancelled before it started)
      reads_over_ = writes_over_ = true;
      return;
    }
    pending_read_ = true;
    stream_->Read(&in_, tag(kRead));
    write_next();
  }

  void on_read(bool ok) {
    pending_read_ = false;
    if (!ok) {
      reads_over_ = writes_over_ = true;  // the status is decided: nothing more to send
      write_at_.reset();
      return;
    }
    check_response(to_string(in_));
    ++rec_.received;
    if (rec_.cancel_at == CancelAt::kMidDownload && rec_.received == rec_.cancel_arg) cancel();
    pending_read_ = true;
    stream_->Read(&in_, tag(kRead));
  }

  void on_write(bool ok) {
    pending_write_ = false;
    if (!ok) {  // the stream is over; the status tells why
      writes_over_ = true;
      return;
    }
    ++rec_.sent;
    if (half_close_started_) {  // that was WriteLast
      after_half_close();
      return;
    }
    // The next message after a short random pause (0-5 ms), or now.
    const int pause = uniform(rng_, 0, 5);
    if (pause == 0) {
      write_next();
    } else {
      write_at_ = Clock::now() + milliseconds(pause);
    }
  }

  void on_writes_done() {
    pending_write_ = false;
    after_half_close();
  }

  void after_half_close() {
    writes_over_ = true;
    if (rec_.cancel_at == CancelAt::kAfterHalfClose)
      cancel_at_ = Clock::now() + milliseconds(rec_.cancel_arg);
  }

  // Sends the next request message, or the half-close after the last.
  void write_next() {
    if (writes_over_ || pending_write_ || reads_over_) return;
    if (rec_.cancel_at == CancelAt::kMidUpload && rec_.sent == rec_.cancel_arg && !rec_.cancelled) {
      cancel();
      writes_over_ = true;
      return;
    }
    const int i = rec_.sent;
    if (i >= rec_.plan.n_req) {
      half_close_started_ = true;
      pending_write_ = true;
      stream_->WritesDone(tag(kWritesDone));
      return;
    }
    out_ = to_buffer(message_bytes(rec_.id, kRequest, i, rec_.plan.req_max));
    pending_write_ = true;
    if (i + 1 == rec_.plan.n_req && rec_.use_write_last) {
      half_close_started_ = true;
      stream_->WriteLast(out_, grpc::WriteOptions(), tag(kWrite));
    } else {
      stream_->Write(out_, tag(kWrite));
    }
  }

  void cancel() {
    if (rec_.cancelled || reads_over_) return;  // the outcome is already decided
    rec_.cancelled = true;
    rec_.cancelled_before_half_close = !half_close_started_;
    ctx_.TryCancel();
  }

  void maybe_finish() {
    if (finish_started_ || !reads_over_ || pending_start_ || pending_write_) return;
    finish_started_ = true;
    stream_->Finish(&status_, tag(kFinish));
  }

  void check_response(const std::string& got) {
    if (!rec_.bad.empty()) return;
    const int i = rec_.received;
    if (m_.fanout() && m_.concat) {
      // The fan-out's answers, concatenated: copies of the same bytes (every upstream derives
      // them from the call id alone).
      const std::string one = message_bytes(rec_.id, kResponse, 0, rec_.plan.resp_max);
      if (i > 0) {
        rec_.bad = "a second response message on a fan-out route";
      } else if (one.empty()) {
        if (!got.empty())
          rec_.bad =
              "fan-out concat of empty responses has " + std::to_string(got.size()) + " bytes";
      } else if (got.size() % one.size() != 0) {
        rec_.bad = "fan-out concat of " + std::to_string(one.size()) + "-byte responses has " +
                   std::to_string(got.size()) + " bytes";
      } else {
        for (size_t at = 0; at < got.size(); at += one.size()) {
          if (got.compare(at, one.size(), one) != 0) {
            rec_.bad =
                "fan-out concat: copy " + std::to_string(at / one.size()) + " has wrong bytes";
            break;
          }
        }
        rec_.copies = static_cast<int>(got.size() / one.size());
      }
      return;
    }
    if (i >= rec_.plan.n_resp) {
      rec_.bad = "extra response message " + std::to_string(i) +
                 " (plan: " + std::to_string(rec_.plan.n_resp) + ")";
      return;
    }
    rec_.bad = verify_message(got, rec_.id, kResponse, i, rec_.plan.resp_max);
  }

  grpc::GenericStub& stub_;
  grpc::CompletionQueue& cq_;
  const Method& m_;
  CallRecord& rec_;
  std::mt19937_64& rng_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> stream_;
  grpc::ByteBuffer in_, out_;
  grpc::Status status_;
  Clock::time_point hung_at_;
  std::optional<Clock::time_point> write_at_, cancel_at_;
  bool pending_start_ = false, pending_read_ = false, pending_write_ = false;
  bool reads_over_ = false, writes_over_ = false, half_close_started_ = false;
  bool finish_started_ = false, finished_ = false;
};

}  // namespace curfew::chaos
