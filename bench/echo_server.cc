// bench_echo_server: the benchmark's upstream. A fast gRPC server on the completion-queue API with
// an AsyncGenericService (bytes in, bytes out, no protobuf parsing), so that the upstream costs as
// little as possible and the proxy's cost shows.
//
//   bench_echo_server --port 50051 [--port 50052 ...] [--threads 1] [--slow-ms 1000]
//                     [--host 127.0.0.1] [--delay-ms 0]
//
// --host: the address every --port listens on (a loopback "pod" of the endpoint-set scenarios:
// 127.0.0.2, .3, ... on one port). --delay-ms: every Unary call answers that much later (an
// alarm: the thread stays free), a slow pod. The call counter printed on exit (calls=N, every
// call accepted) gives each pod's share of the calls.
//
// Methods (any service name; the method name after the last '/' decides):
//   .../Unary  read one message, answer it with WriteAndFinish (one response, status OK), after
//              --delay-ms if set
//   .../Stream echo every message until the client half-closes, then OK
//   .../Slow   read one message, wait --slow-ms (or until the call is cancelled), then answer it;
//              counts the calls that were cancelled before the wait ended
//   .../Hold   read one message and wait (10 s at most) for the caller to cancel; notes when the
//              cancellation arrived (CLOCK_MONOTONIC) under the call's x-bench-id metadata
//   .../CancelLog  answers with the notes so far ("id nanoseconds" lines) and forgets them: the
//              load generator's cancel mode matches them with when it cancelled (cancel lag)
// Every other method behaves as Stream. Runs until SIGINT/SIGTERM; prints its counters then.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/alarm.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

namespace {

std::atomic<long> g_calls{0};
std::atomic<long> g_slow_cancelled{0};
std::atomic<long> g_slow_completed{0};
int g_slow_ms = 1000;
int g_delay_ms = 0;  // added to every Unary call
constexpr int kHoldMs = 10000;
std::mutex g_cancel_log_mu;
std::string g_cancel_log;  // "id nanoseconds\n" per cancellation of a Hold call

long long monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Tag {
  virtual void done(bool ok) = 0;
};

enum class Kind { kUnary, kStream, kSlow, kHold, kCancelLog };

Kind kind_of(const std::string& method) {
  const auto slash = method.rfind('/');
  const std::string name = slash == std::string::npos ? method : method.substr(slash + 1);
  if (name == "Unary") return Kind::kUnary;
  if (name == "Slow") return Kind::kSlow;
  if (name == "Hold") return Kind::kHold;
  if (name == "CancelLog") return Kind::kCancelLog;
  return Kind::kStream;
}

// One call: a small state machine driven by its completion-queue tags. It deletes itself once
// no tag of it is pending any more.
class Call {
 public:
  Call(grpc::AsyncGenericService* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq) {
    ctx_.AsyncNotifyWhenDone(&done_tag_);
    pending_ = 1;  // the accept
    service_->RequestCall(&ctx_, &stream_, cq_, cq_, &op_tag_);
  }

 private:
  enum class State { kAccepting, kReading, kWriting, kWaiting, kFinishing };

  struct OpTag final : Tag {
    Call* call;
    explicit OpTag(Call* c) : call(c) {}
    void done(bool ok) override { call->on_op(ok); }
  };
  struct DoneTag final : Tag {
    Call* call;
    explicit DoneTag(Call* c) : call(c) {}
    void done(bool) override { call->on_done(); }
  };
  struct AlarmTag final : Tag {
    Call* call;
    explicit AlarmTag(Call* c) : call(c) {}
    void done(bool ok) override { call->on_alarm(ok); }
  };

  void on_op(bool ok) {
    --pending_;
    switch (state_) {
      case State::kAccepting:
        if (!ok) {  // server shutting down; the done tag never fires for an unaccepted call
          delete this;
          return;
        }
        new Call(service_, cq_);  // keep a slot open for the next call
        ++pending_;               // the done notification is due now
        g_calls.fetch_add(1, std::memory_order_relaxed);
        kind_ = kind_of(ctx_.method());
        read();
        break;
      case State::kReading:
        if (!ok) {  // client half-closed (or died)
          finish();
          break;
        }
        if (kind_ == Kind::kUnary && g_delay_ms > 0) {
          state_ = State::kWaiting;
          ++pending_;
          alarm_.Set(cq_, std::chrono::system_clock::now() + std::chrono::milliseconds(g_delay_ms),
                     &alarm_tag_);
        } else if (kind_ == Kind::kUnary) {
          state_ = State::kFinishing;
          ++pending_;
          stream_.WriteAndFinish(message_, grpc::WriteOptions(), grpc::Status::OK, &op_tag_);
        } else if (kind_ == Kind::kSlow || kind_ == Kind::kHold) {
          state_ = State::kWaiting;
          ++pending_;
          const int ms = kind_ == Kind::kSlow ? g_slow_ms : kHoldMs;
          alarm_.Set(cq_, std::chrono::system_clock::now() + std::chrono::milliseconds(ms),
                     &alarm_tag_);
        } else if (kind_ == Kind::kCancelLog) {
          std::string log;
          {
            std::lock_guard lock(g_cancel_log_mu);
            log.swap(g_cancel_log);
          }
          grpc::Slice slice(log);
          message_ = grpc::ByteBuffer(&slice, 1);
          state_ = State::kFinishing;
          ++pending_;
          stream_.WriteAndFinish(message_, grpc::WriteOptions(), grpc::Status::OK, &op_tag_);
        } else {
          state_ = State::kWriting;
          ++pending_;
          stream_.Write(message_, &op_tag_);
        }
        break;
      case State::kWriting:
        if (!ok) {
          finish();
          break;
        }
        read();
        break;
      case State::kWaiting:
        break;  // not reached: the alarm has its own tag
      case State::kFinishing:
        break;
    }
    maybe_delete();
  }

  void on_alarm(bool fired) {
    --pending_;
    if (fired && !cancelled_) {
      if (kind_ != Kind::kUnary) g_slow_completed.fetch_add(1, std::memory_order_relaxed);
      state_ = State::kFinishing;
      ++pending_;
      stream_.WriteAndFinish(message_, grpc::WriteOptions(), grpc::Status::OK, &op_tag_);
    } else {
      if (kind_ != Kind::kUnary) g_slow_cancelled.fetch_add(1, std::memory_order_relaxed);
      finish();
    }
    maybe_delete();
  }

  void on_done() {
    --pending_;
    done_ = true;
    if (ctx_.IsCancelled()) {
      cancelled_ = true;
      if (kind_ == Kind::kHold) note_cancel();
      if (state_ == State::kWaiting) alarm_.Cancel();  // the alarm tag completes with ok=false
    }
    maybe_delete();
  }

  void note_cancel() {
    const long long now = monotonic_ns();
    const auto& md = ctx_.client_metadata();
    const auto it = md.find("x-bench-id");
    if (it == md.end()) return;
    const std::string line =
        std::string(it->second.data(), it->second.size()) + " " + std::to_string(now) + "\n";
    std::lock_guard lock(g_cancel_log_mu);
    g_cancel_log += line;
  }

  void read() {
    state_ = State::kReading;
    ++pending_;
    stream_.Read(&message_, &op_tag_);
  }

  void finish() {
    state_ = State::kFinishing;
    ++pending_;
    stream_.Finish(grpc::Status::OK, &op_tag_);
  }

  void maybe_delete() {
    if (pending_ == 0) delete this;
  }

  grpc::AsyncGenericService* service_;
  grpc::ServerCompletionQueue* cq_;
  grpc::GenericServerContext ctx_;
  grpc::GenericServerAsyncReaderWriter stream_{&ctx_};
  grpc::ByteBuffer message_;
  grpc::Alarm alarm_;
  OpTag op_tag_{this};
  DoneTag done_tag_{this};
  AlarmTag alarm_tag_{this};
  State state_ = State::kAccepting;
  Kind kind_ = Kind::kStream;
  int pending_ = 0;
  bool done_ = false;
  bool cancelled_ = false;
};

void usage() {
  std::fprintf(stderr,
               "usage: bench_echo_server --port N [--port N ...] [--threads T] [--slow-ms MS] "
               "[--host ADDR] [--delay-ms MS]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> ports;
  std::string host = "127.0.0.1";
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) usage();
    if (arg == "--port") {
      ports.push_back(std::atoi(argv[++i]));
    } else if (arg == "--threads") {
      threads = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--slow-ms") {
      g_slow_ms = std::atoi(argv[++i]);
    } else if (arg == "--host") {
      host = argv[++i];
    } else if (arg == "--delay-ms") {
      g_delay_ms = std::max(0, std::atoi(argv[++i]));
    } else {
      usage();
    }
  }
  if (ports.empty()) usage();

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  grpc::AsyncGenericService service;
  grpc::ServerBuilder builder;
  for (int port : ports) {
    builder.AddListeningPort(host + ":" + std::to_string(port), grpc::InsecureServerCredentials());
  }
  builder.RegisterAsyncGenericService(&service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  for (int i = 0; i < threads; ++i) cqs.push_back(builder.AddCompletionQueue());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "bench_echo_server: cannot listen\n");
    return 1;
  }
  std::vector<std::thread> workers;
  for (auto& cq : cqs) {
    workers.emplace_back([&service, cq = cq.get()] {
      for (int i = 0; i < 16; ++i) new Call(&service, cq);
      void* tag = nullptr;
      bool ok = false;
      while (cq->Next(&tag, &ok)) static_cast<Tag*>(tag)->done(ok);
    });
  }
  std::fprintf(stderr, "bench_echo_server: listening\n");

  int sig = 0;
  sigwait(&signals, &sig);
  // A benchmark fixture: report and leave without draining (calls in flight are simply dropped).
  std::printf("calls=%ld slow_cancelled=%ld slow_completed=%ld\n", g_calls.load(),
              g_slow_cancelled.load(), g_slow_completed.load());
  std::fflush(stdout);
  std::_Exit(0);
  return 0;
}
