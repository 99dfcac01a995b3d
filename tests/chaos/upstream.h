// curfew-chaos: the upstream. A generic gRPC server (callback API, independent of curfew's code)
// that does what each call's plan (request metadata) says: reads and verifies the request
// messages, waits, streams self-verifying responses, fails with a planned code, or resets the
// stream. It records what the checks need: calls still open, and the calls whose request stream
// ended with a clean half-close (END_STREAM from the wire) rather than a cancellation.
//
// The same code runs in-process (three upstreams) and in a child process (the one that is
// SIGKILLed and restarted), which prints its findings to its log instead.
#pragma once

#include <grpc/grpc.h>
#include <grpcpp/alarm.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "payload.h"

namespace curfew::chaos {

// What one upstream saw. Thread-safe.
class UpstreamRecord {
 public:
  explicit UpstreamRecord(int index, bool print_violations = false)
      : index_(index), print_(print_violations) {}
  int index() const { return index_; }

  void opened(uint64_t id) {
    std::lock_guard lock(mu_);
    open_.insert(id);
    ++calls_;
  }
  void closed(uint64_t id) {
    std::lock_guard lock(mu_);
    open_.erase(open_.find(id));
  }
  // Tries of call `id` seen so far, this one included, by every replica of this upstream (a
  // retry may land on another replica: share_attempts()).
  int attempt(uint64_t id) {
    std::lock_guard lock(attempts_->mu);
    return ++attempts_->by_call[id];
  }
  void share_attempts(const UpstreamRecord& with) { attempts_ = with.attempts_; }
  void half_closed(uint64_t id) {
    std::lock_guard lock(mu_);
    half_closed_.insert(id);
  }
  void violation(const std::string& what) {
    const std::string line = "upstream u" + std::to_string(index_) + ": " + what;
    if (print_) std::printf("chaos-upstream: VIOLATION %s\n", line.c_str()), std::fflush(stdout);
    std::lock_guard lock(mu_);
    if (violations_.size() < 200) violations_.push_back(line);
  }

  std::multiset<uint64_t> open_calls() const {
    std::lock_guard lock(mu_);
    return open_;
  }
  bool saw_half_close(uint64_t id) const {
    std::lock_guard lock(mu_);
    return half_closed_.count(id) > 0;
  }
  std::vector<std::string> violations() const {
    std::lock_guard lock(mu_);
    return violations_;
  }
  long calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  const int index_;
  const bool print_;
  mutable std::mutex mu_;
  std::multiset<uint64_t> open_;
  std::unordered_set<uint64_t> half_closed_;
  struct Attempts {
    std::mutex mu;
    std::unordered_map<uint64_t, int> by_call;
  };
  std::shared_ptr<Attempts> attempts_ = std::make_shared<Attempts>();  // set before serving
  std::vector<std::string> violations_;
  long calls_ = 0;
};

inline std::string metadata(const grpc::GenericCallbackServerContext& ctx, const char* key) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(key);
  return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
}

// One call. Decisions are taken under mu_; every gRPC operation is started after releasing it, so
// no reaction can ever run while this object's lock is held by the same thread.
class ChaosReactor final : public grpc::ServerGenericBidiReactor {
 public:
  ChaosReactor(grpc::GenericCallbackServerContext* ctx, UpstreamRecord& record)
      : ctx_(ctx), record_(record) {
    const std::string id_text = metadata(*ctx, "x-chaos-id");
    id_ = std::strtoull(id_text.c_str(), nullptr, 10);
    record_.opened(id_);
    if (id_text.empty() || !Plan::decode(metadata(*ctx, "x-chaos-plan"), plan_)) {
      record_.violation("call " + id_text + " on " + ctx->method() + " without a readable plan");
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "chaos: no plan"));
      finished_ = true;
      return;
    }
    const unsigned allowed = std::strtoul(metadata(*ctx, "x-chaos-upstreams").c_str(), nullptr, 10);
    if (!((allowed >> record_.index()) & 1)) {
      record_.violation("call " + id_text + " on " + ctx->method() +
                        " reached this upstream, which its route does not name (mask " +
                        std::to_string(allowed) + ")");
    }
    const int u = record_.index();
    code_ = plan_.code_for(u);
    delay_ms_ = plan_.delay_for(u);
    to_send_ = plan_.sends_for(u);
    reset_ = plan_.reset;
    early_ = plan_.early;
    if (record_.attempt(id_) <= plan_.fail_first) {  // a try that fails at once (retry routes)
      code_ = plan_.fail_code;
      delay_ms_ = 0;
      to_send_ = 0;
      reset_ = early_ = -1;
    }
    if (reset_ > to_send_) reset_ = to_send_;
    bidi_ = plan_.kind == static_cast<int>(Kind::kBidi);
    read_pending_ = true;
    StartRead(&in_);
    step();
  }

  void OnReadDone(bool ok) override {
    bool again = false;
    {
      std::lock_guard lock(mu_);
      read_pending_ = false;
      if (ok) {
        check_request();
        again = !finished_;
        read_pending_ = again;
      } else {
        reads_done_ = true;
        // After a read that brought no message: 0 = END_STREAM from the wire (a half-close),
        // 1 = the stream was reset or cancelled while the read waited. A reset that came before
        // the read was even started can also read as 0 (the transport drops what it buffered),
        // so this is only a candidate: OnDone confirms it if the call then ends uncancelled.
        if (!finished_ && grpc_call_failed_before_recv_message(ctx_->c_call()) == 0)
          half_closed_ = true;
      }
    }
    if (again) StartRead(&in_);
    step();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      write_pending_ = false;
      if (ok) {
        ++sent_;
      } else {
        cancelled_ = true;  // the stream is gone
      }
    }
    step();
  }

  void OnCancel() override {
    grpc::Alarm* pending = nullptr;
    {
      std::lock_guard lock(mu_);
      ++busy_;
      cancelled_ = cancel_seen_ = true;
      if (timer_pending_) pending = alarms_.back().get();
    }
    if (pending) pending->Cancel();  // its callback then runs (ok=false) and finishes the call
    step();
    release();
  }

  void OnDone() override {
    bool confirmed = false;
    int reads = 0;
    {
      std::lock_guard lock(mu_);
      confirmed = half_closed_ && !cancel_seen_;
      reads = reads_;
    }
    // A half-close followed by an uncancelled end: no reset came before our status, so the
    // request stream really ended with END_STREAM (a reset would have made it a cancellation).
    if (confirmed) {
      record_.half_closed(id_);
      if (early_ < 0 && reads != plan_.n_req) {
        record_.violation("call " + std::to_string(id_) + " on " + ctx_->method() +
                          ": clean half-close after " + std::to_string(reads) + " of " +
                          std::to_string(plan_.n_req) + " request messages");
      }
    }
    record_.closed(id_);
    {
      std::lock_guard lock(mu_);
      done_ = true;
      if (busy_ > 0) return;  // the running step deletes it
    }
    delete this;
  }

 private:
  enum class Op { kNone, kWrite, kTimer, kFinish, kReset };
  struct Action {
    Op op = Op::kNone;
    int ms = 0;
    grpc::Status status;
  };

  void check_request() {
    if (reads_ >= plan_.n_req) {
      record_.violation("call " + std::to_string(id_) + ": extra request message " +
                        std::to_string(reads_));
    } else {
      const std::string bad = verify_message(to_string(in_), id_, kRequest, reads_, plan_.req_max);
      if (!bad.empty()) record_.violation("call " + std::to_string(id_) + ": request " + bad);
    }
    ++reads_;
  }

  bool requests_over() const { return half_closed_ || (early_ >= 0 && reads_ >= early_); }

  // What to do next (under mu_); marks the operation pending.
  Action decide() {
    Action a;
    if (finished_ || write_pending_ || timer_pending_) return a;
    if (cancelled_ || (reads_done_ && !half_closed_ && !(early_ >= 0 && reads_ >= early_))) {
      // Cancelled (or the request stream ended without a half-close): finish, as required.
      finished_ = true;
      a.op = Op::kFinish;
      a.status = grpc::Status(grpc::StatusCode::CANCELLED, "chaos: cancelled");
      return a;
    }
    if (!responding_) {
      if (!bidi_ && !requests_over()) return a;  // answers after the request stream
      responding_ = true;
      if (delay_ms_ > 0) return timer(delay_ms_);
    }
    if (reset_ >= 0 && sent_ == reset_) {
      finished_ = true;
      a.op = Op::kReset;
      return a;
    }
    if (sent_ < to_send_) {
      if (sent_ > 0 && plan_.interval_ms > 0 && !interval_waited_) {
        interval_waited_ = true;
        return timer(plan_.interval_ms);
      }
      interval_waited_ = false;
      out_ = to_buffer(message_bytes(id_, kResponse, sent_, plan_.resp_max));
      write_pending_ = true;
      a.op = Op::kWrite;
      return a;
    }
    if (!requests_over()) return a;  // bidi: every request read before the status
    finished_ = true;
    a.op = Op::kFinish;
    a.status = code_ == 0 ? grpc::Status::OK
                          : grpc::Status(static_cast<grpc::StatusCode>(code_),
                                         planned_message(code_, record_.index()));
    return a;
  }

  Action timer(int ms) {
    timer_pending_ = true;
    alarms_.push_back(std::make_unique<grpc::Alarm>());
    Action a;
    a.op = Op::kTimer;
    a.ms = ms;
    return a;
  }

  // Decides and starts the next operation. `timer_fired`: called by the timer, whose end and the
  // decision must be one step. While a step runs (busy_), OnDone leaves the deletion to it: a
  // timer callback is no gRPC reaction, so gRPC does not wait for it before OnDone.
  void step(bool timer_fired = false) {
    Action a;
    grpc::Alarm* alarm = nullptr;
    {
      std::lock_guard lock(mu_);
      ++busy_;
      if (timer_fired) timer_pending_ = false;
      a = decide();
      if (a.op == Op::kTimer) alarm = alarms_.back().get();
    }
    switch (a.op) {
      case Op::kNone:
        break;
      case Op::kWrite:
        StartWrite(&out_);
        break;
      case Op::kTimer:
        alarm->Set(std::chrono::system_clock::now() + std::chrono::milliseconds(a.ms),
                   [this](bool) { step(/*timer_fired=*/true); });
        break;
      case Op::kFinish:
        Finish(a.status);
        break;
      case Op::kReset:
        ctx_->TryCancel();
        Finish(grpc::Status(grpc::StatusCode::CANCELLED, "chaos: reset"));
        break;
    }
    bool cancel_timer = false;
    {
      std::lock_guard lock(mu_);
      // A cancellation that came while the timer was being set found nothing to cancel.
      cancel_timer = a.op == Op::kTimer && cancelled_ && timer_pending_;
    }
    if (cancel_timer) alarm->Cancel();
    release();
  }

  void release() {
    bool last = false;
    {
      std::lock_guard lock(mu_);
      last = --busy_ == 0 && done_;
    }
    if (last) delete this;
  }

  grpc::GenericCallbackServerContext* ctx_;
  UpstreamRecord& record_;
  uint64_t id_ = 0;
  Plan plan_;
  int code_ = 0, delay_ms_ = 0, to_send_ = 0, reset_ = -1, early_ = -1;
  bool bidi_ = false;

  std::mutex mu_;
  grpc::ByteBuffer in_, out_;
  std::vector<std::unique_ptr<grpc::Alarm>> alarms_;
  int reads_ = 0, sent_ = 0, busy_ = 0;
  bool done_ = false, cancel_seen_ = false;
  bool read_pending_ = false, reads_done_ = false, half_closed_ = false;
  bool responding_ = false, interval_waited_ = false;
  bool write_pending_ = false, timer_pending_ = false, cancelled_ = false, finished_ = false;
};

class ChaosService final : public grpc::CallbackGenericService {
 public:
  explicit ChaosService(UpstreamRecord& record) : record_(record) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new ChaosReactor(ctx, record_);
  }

 private:
  UpstreamRecord& record_;
};

// An upstream server on 127.0.0.1:`port` (0: any free port).
class UpstreamServer {
 public:
  // Upstream u`index` on host:port (port 0: a free one). Several servers may share an index:
  // the replicas of one upstream's endpoint set, each with its own record.
  UpstreamServer(int index, int port, bool print_violations = false,
                 const std::string& host = "127.0.0.1", const UpstreamServer* replica_of = nullptr)
      : record_(index, print_violations), service_(record_) {
    if (replica_of != nullptr) record_.share_attempts(replica_of->record_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort(host + ":" + std::to_string(port), grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterCallbackGenericService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~UpstreamServer() { shutdown(); }
  void shutdown() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_.reset();
  }
  bool ok() const { return server_ != nullptr && port_ > 0; }
  int port() const { return port_; }
  UpstreamRecord& record() { return record_; }

 private:
  UpstreamRecord record_;
  ChaosService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace curfew::chaos
