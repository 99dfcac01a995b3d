// bench_loadgen: a gRPC load generator on the completion-queue API (generic stub: bytes only, no
// protobuf work on the client), for the benchmark in bench/run.sh.
//
//   bench_loadgen --target 127.0.0.1:P --mode closed --concurrency 64 [--duration 5 --warmup 1]
//   bench_loadgen --target ... --mode open --rate 5000         # fixed arrival rate
//   bench_loadgen --target ... --mode stream --concurrency 64  # ping-pong on long-lived streams
//   bench_loadgen --target ... --mode idle --streams 10000 --channels 20 --hold 2
//   bench_loadgen --target ... --mode cancel --concurrency 8 [--hold-ms 5]
//
// closed: `concurrency` calls always in flight; each completion issues the next call.
// open:   call k is due at start + k/rate whatever happened to earlier calls, and its latency is
//         measured from that due time, not from when it was actually sent, so a stalled target
//         is charged for the whole stall (no coordinated omission). At most --max-inflight calls
//         are outstanding; calls beyond that are counted as dropped, never sent.
// stream: `concurrency` bidi streams; each message round trip is one operation.
// idle:   opens --streams bidi streams (one ping-pong each, so each is established end to end),
//         holds them idle, and reports the RSS the --pid processes gained per stream.
// cancel: `concurrency` callers each start a call to .../Hold (bench_echo_server waits for its
//         cancellation), cancel it --hold-ms later, and start the next; at the end the echo
//         server's CancelLog says when each cancellation reached it (CLOCK_MONOTONIC, the same
//         clock on one machine): the cancel lag, caller's cancel -> upstream observes it.
//
// Only the calls that complete inside the measured window (after --warmup, for --duration
// seconds) count. With --pid (repeatable) the process's CPU time (/proc/PID/stat utime+stime)
// over the window and its peak RSS during it (VmHWM, reset through /proc/PID/clear_refs at the
// window's start) are reported. --slow-fraction F sends that share of calls to --slow-method with
// a --slow-deadline-ms deadline (the "20% of calls hit their deadline" scenario). --calls N stops
// a closed loop after N calls (for instruction counts under callgrind, with --warmup 0).
// Output: one JSON object on stdout; when unary calls failed, also when the first and the last
// failure completed (first_failure_mono_s, last_failure_mono_s: CLOCK_MONOTONIC seconds, to be
// set against another process's events, e.g. an upstream killed). Every loop is bounded in time.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

struct Options {
  std::string target;
  std::string mode = "closed";
  std::string method = "/bench.Echo/Unary";
  std::string stream_method = "/bench.Echo/Stream";
  std::string slow_method = "/bench.Echo/Slow";
  int concurrency = 1;
  double rate = 0;
  double duration = 5;
  double warmup = 1;
  int payload = 64;
  int channels = 1;
  double slow_fraction = 0;
  int slow_deadline_ms = 0;
  int deadline_ms = 0;  // deadline on every (non-slow) call; 0: none
  int streams = 10000;
  double hold = 2;
  int hold_ms = 5;  // mode cancel
  long max_inflight = 20000;
  long calls = 0;  // closed loop: stop after this many calls (0: run for the duration)
  std::vector<int> pids;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "bench_loadgen: %s (see the comment at the top of bench/loadgen.cc)\n", why);
  std::exit(2);
}

// gRPC's queue deadlines are system_clock (or gpr_timespec) time points.
std::chrono::system_clock::time_point to_system(TimePoint t) {
  if (t == TimePoint::max()) return std::chrono::system_clock::time_point::max();
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(t - Clock::now());
}

// ---- /proc ----------------------------------------------------------------------------------

double cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(text.substr(paren + 2));
  std::string f;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::atol(f.c_str());
    if (i == 15) stime = std::atol(f.c_str());
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long status_kb(int pid, const char* key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') {
      return std::atol(line.c_str() + n + 1);
    }
  }
  return 0;
}

void reset_peak_rss(int pid) {
  std::ofstream out("/proc/" + std::to_string(pid) + "/clear_refs");
  out << "5";  // resets VmHWM to the current RSS (Linux >= 4.0)
}

double total_cpu(const std::vector<int>& pids) {
  double s = 0;
  for (int p : pids) s += cpu_seconds(p);
  return s;
}

long total_kb(const std::vector<int>& pids, const char* key) {
  long s = 0;
  for (int p : pids) s += status_kb(p, key);
  return s;
}

double own_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ---- the generator ----------------------------------------------------------------------------

struct Tag {
  virtual void done(bool ok) = 0;
};

class Generator;
struct StreamCall;

struct Recorder {
  std::vector<int64_t> latencies_ns;
  std::map<int, long> codes;  // of the calls in the window
  void add(int64_t ns, int code) {
    latencies_ns.push_back(ns);
    ++codes[code];
  }
};

class Generator {
 public:
  explicit Generator(Options o) : o_(std::move(o)) {
    for (int i = 0; i < o_.channels; ++i) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one connection per channel
      args.SetInt("bench.channel", i);
      args.SetMaxReceiveMessageSize(64 << 20);
      auto channel = grpc::CreateCustomChannel(o_.target, grpc::InsecureChannelCredentials(), args);
      if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5))) {
        usage(("cannot connect to " + o_.target).c_str());
      }
      stubs_.push_back(std::make_unique<grpc::GenericStub>(channel));
    }
    std::string bytes(static_cast<size_t>(o_.payload), 'x');
    grpc::Slice slice(bytes);
    payload_ = grpc::ByteBuffer(&slice, 1);
  }

  int run();

  // For the call objects.
  grpc::CompletionQueue cq_;
  Options o_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
  grpc::ByteBuffer payload_;
  Recorder rec_;
  TimePoint window_start_, window_end_;
  long outstanding_ = 0;
  long issued_ = 0;
  long dropped_ = 0;
  long streams_established_ = 0;
  long streams_failed_ = 0;
  double slow_acc_ = 0;
  TimePoint first_failure_{}, last_failure_{};  // unary calls that ended with a non-OK status
  std::vector<StreamCall*> idle_streams_;
  std::string first_error_;  // of a stream that failed to open  // mode idle: owned here, deleted
                             // at the end

  grpc::GenericStub& next_stub() { return *stubs_[static_cast<size_t>(issued_) % stubs_.size()]; }
  bool in_window(TimePoint t) const { return t >= window_start_ && t < window_end_; }

 private:
  int run_idle(TimePoint drain_limit);
  std::string codes_json() const;
  static std::string json_safe(const std::string& text);
  int report(double secs, double cpu, long hwm_kb, double client_cpu, const std::string& extra);
  // Runs the queue until `until` (or until no call is outstanding when `until_idle`).
  void pump(TimePoint until, bool until_idle);
  void open_loop_pump(TimePoint until, TimePoint& next_due, double interval);
};

void start_unary(Generator& g, TimePoint due, bool closed);

// A unary call. `due` is when it was meant to start (open loop) or when it started (closed).
struct UnaryCall final : Tag {
  Generator& g;
  TimePoint due;
  grpc::ClientContext ctx;
  grpc::ByteBuffer response;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> rpc;
  bool closed_loop;

  UnaryCall(Generator& gen, TimePoint d, bool closed) : g(gen), due(d), closed_loop(closed) {}

  void done(bool) override {
    const TimePoint now = Clock::now();
    if (!status.ok()) {
      if (g.first_failure_ == TimePoint{}) g.first_failure_ = now;
      g.last_failure_ = now;
    }
    // Closed loop: calls completing in the window; open loop: calls due in the window.
    if (g.in_window(closed_loop ? now : due)) {
      g.rec_.add(std::chrono::duration_cast<std::chrono::nanoseconds>(now - due).count(),
                 status.error_code());
    }
    --g.outstanding_;
    Generator& gen = g;
    const bool again =
        closed_loop && now < g.window_end_ && (g.o_.calls == 0 || g.issued_ < g.o_.calls);
    delete this;
    if (again) start_unary(gen, Clock::now(), true);  // the slot's next call
  }
};

// A ping-pong stream (mode stream) or an idle stream (mode idle).
struct StreamCall final : Tag {
  enum class State { kStarting, kWriting, kReading, kIdle, kClosing, kFinishing };
  Generator& g;
  bool idle;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> rw;
  grpc::ByteBuffer response;
  grpc::Status status;
  State state = State::kStarting;
  TimePoint sent;
  bool established = false;
  bool finished = false;

  StreamCall(Generator& gen, bool idle_stream) : g(gen), idle(idle_stream) {}

  void start() {
    rw = g.next_stub().PrepareCall(&ctx, g.o_.stream_method, &g.cq_);
    ++g.outstanding_;
    rw->StartCall(this);
  }
  void write() {
    state = State::kWriting;
    sent = Clock::now();
    rw->Write(g.payload_, this);
  }
  void finish() {
    state = State::kFinishing;
    rw->Finish(&status, this);
  }

  void done(bool ok) override {
    switch (state) {
      case State::kStarting:
        if (!ok) return finish();
        return write();
      case State::kWriting:
        if (!ok) return finish();
        state = State::kReading;
        return rw->Read(&response, this);
      case State::kReading: {
        if (!ok) return finish();
        const TimePoint now = Clock::now();
        if (idle) {
          if (!established) {
            established = true;
            ++g.streams_established_;
          }
          state = State::kIdle;
          return rw->Read(&response, this);  // completes when the stream ends
        }
        if (g.in_window(now)) {
          g.rec_.add(std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent).count(), 0);
        }
        if (now < g.window_end_) return write();
        state = State::kClosing;
        return rw->WritesDone(this);
      }
      case State::kIdle:
        return finish();
      case State::kClosing:
        return finish();
      case State::kFinishing:
        if (!established && idle) {
          ++g.streams_failed_;
          ++g.rec_.codes[status.error_code()];
          if (g.first_error_.empty()) g.first_error_ = status.error_message();
        }
        if (!idle && !status.ok()) ++g.rec_.codes[status.error_code()];
        --g.outstanding_;
        finished = true;
        if (!idle) delete this;  // idle streams are deleted by the generator at the end
        return;
    }
  }
};

void start_unary(Generator& g, TimePoint due, bool closed) {
  const Options& o = g.o_;
  auto* call = new UnaryCall(g, due, closed);
  const std::string* method = &o.method;
  int deadline_ms = o.deadline_ms;
  if (o.slow_fraction > 0) {
    g.slow_acc_ += o.slow_fraction;
    if (g.slow_acc_ >= 1) {
      g.slow_acc_ -= 1;
      method = &o.slow_method;
      deadline_ms = o.slow_deadline_ms;
    }
  }
  if (deadline_ms > 0) {
    call->ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(deadline_ms));
  }
  call->rpc = g.next_stub().PrepareUnaryCall(&call->ctx, *method, g.payload_, &g.cq_);
  ++g.issued_;
  ++g.outstanding_;
  call->rpc->StartCall();
  call->rpc->Finish(&call->response, &call->status, call);
}

void Generator::pump(TimePoint until, bool until_idle) {
  void* tag = nullptr;
  bool ok = false;
  for (;;) {
    if (until_idle && outstanding_ == 0) return;
    if (Clock::now() >= until) return;
    const auto status = cq_.AsyncNext(&tag, &ok, to_system(until));
    if (status == grpc::CompletionQueue::GOT_EVENT) {
      static_cast<Tag*>(tag)->done(ok);
    } else if (status == grpc::CompletionQueue::TIMEOUT) {
      return;
    } else {
      return;
    }
  }
}

void Generator::open_loop_pump(TimePoint until, TimePoint& next_due, double interval) {
  void* tag = nullptr;
  bool ok = false;
  const auto step =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval));
  for (;;) {
    TimePoint now = Clock::now();
    if (now >= until) return;
    // Send every call that is due (late ones too: their latency counts from their due time).
    while (next_due <= now && next_due < until) {
      if (outstanding_ >= o_.max_inflight) {
        if (in_window(next_due)) ++dropped_;
      } else {
        start_unary(*this, next_due, false);
      }
      next_due += step;
    }
    const TimePoint wake = std::min(next_due, until);
    const auto status = cq_.AsyncNext(&tag, &ok, to_system(wake));
    if (status == grpc::CompletionQueue::GOT_EVENT) {
      static_cast<Tag*>(tag)->done(ok);
    } else if (status == grpc::CompletionQueue::SHUTDOWN) {
      return;
    }
  }
}

int Generator::report(double secs, double cpu, long hwm_kb, double client_cpu,
                      const std::string& extra) {
  auto& v = rec_.latencies_ns;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) -> double {
    if (v.empty()) return 0;
    size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size()));
    if (i >= v.size()) i = v.size() - 1;
    return static_cast<double>(v[i]) / 1000.0;
  };
  const long calls = static_cast<long>(v.size());
  long ok_calls = rec_.codes.count(0) ? rec_.codes[0] : 0;
  std::string codes = "{";
  for (const auto& [code, n] : rec_.codes) {
    if (codes.size() > 1) codes += ",";
    codes += "\"" + std::to_string(code) + "\":" + std::to_string(n);
  }
  codes += "}";
  std::printf(
      "{\"mode\":\"%s\",\"concurrency\":%d,\"rate\":%.0f,\"secs\":%.3f,\"calls\":%ld,\"ok\":%ld,"
      "\"rps\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
      "\"max_us\":%.1f,\"codes\":%s,\"dropped\":%ld,\"proxy_cpu_s\":%.3f,"
      "\"proxy_cpu_s_per_1k\":%.4f,\"proxy_hwm_kb\":%ld,\"client_cpu_s\":%.3f%s}\n",
      o_.mode.c_str(), o_.concurrency, o_.rate, secs, calls, ok_calls,
      static_cast<double>(calls) / secs, pct(50), pct(90), pct(99), pct(99.9),
      v.empty() ? 0.0 : static_cast<double>(v.back()) / 1000.0, codes.c_str(), dropped_, cpu,
      calls > 0 && !o_.pids.empty() ? cpu * 1000.0 / static_cast<double>(calls) : 0.0, hwm_kb,
      client_cpu, extra.c_str());
  std::fflush(stdout);
  return 0;
}

std::string Generator::codes_json() const {
  std::string codes = "{";
  for (const auto& [code, n] : rec_.codes) {
    if (codes.size() > 1) codes += ",";
    codes += "\"" + std::to_string(code) + "\":" + std::to_string(n);
  }
  return codes + "}";
}

std::string Generator::json_safe(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out.substr(0, 200);
}

int Generator::run_idle(TimePoint drain_limit) {
  window_start_ = window_end_ = TimePoint::max();  // no latency window: this is about memory
  const long rss_before = total_kb(o_.pids, "VmRSS");
  const TimePoint t_open = Clock::now();
  for (int i = 0; i < o_.streams; ++i) {
    ++issued_;
    auto* s = new StreamCall(*this, true);
    idle_streams_.push_back(s);
    s->start();
  }
  const TimePoint open_limit = Clock::now() + std::chrono::seconds(60);
  void* tag = nullptr;
  bool ok = false;
  while (streams_established_ + streams_failed_ < o_.streams && Clock::now() < open_limit) {
    if (cq_.AsyncNext(&tag, &ok, to_system(open_limit)) != grpc::CompletionQueue::GOT_EVENT) break;
    static_cast<Tag*>(tag)->done(ok);
  }
  const double open_secs = std::chrono::duration<double>(Clock::now() - t_open).count();
  // Held idle: nothing moves on the streams.
  pump(Clock::now() +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.hold)),
       false);
  const long rss_with = total_kb(o_.pids, "VmRSS");
  const long hwm = total_kb(o_.pids, "VmHWM");
  // Close them all: cancel (the pending read fails, each stream then collects its status).
  for (StreamCall* s : idle_streams_) {
    if (!s->finished) s->ctx.TryCancel();
  }
  pump(std::min(drain_limit, Clock::now() + std::chrono::seconds(30)), true);
  const long rss_after = total_kb(o_.pids, "VmRSS");
  const long est = streams_established_;
  std::printf(
      "{\"mode\":\"idle\",\"streams\":%d,\"established\":%ld,\"failed\":%ld,\"open_secs\":%.2f,"
      "\"rss_before_kb\":%ld,\"rss_with_streams_kb\":%ld,\"rss_after_close_kb\":%ld,"
      "\"proxy_hwm_kb\":%ld,\"bytes_per_stream\":%.0f,\"unfinished\":%ld,\"codes\":%s,"
      "\"first_error\":\"%s\"}\n",
      o_.streams, est, streams_failed_, open_secs, rss_before, rss_with, rss_after, hwm,
      est > 0 ? static_cast<double>(rss_with - rss_before) * 1024.0 / static_cast<double>(est)
              : 0.0,
      outstanding_, codes_json().c_str(), json_safe(first_error_).c_str());
  std::fflush(stdout);
  if (outstanding_ == 0) {
    for (StreamCall* s : idle_streams_) delete s;
  }
  return est == o_.streams ? 0 : 1;
}

int Generator::run() {
  const auto secs = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  const TimePoint t0 = Clock::now();
  window_start_ = t0 + secs(o_.warmup);
  window_end_ = window_start_ + secs(o_.duration);
  const TimePoint drain_limit = window_end_ + std::chrono::seconds(10);

  if (o_.mode == "idle") return run_idle(drain_limit);

  double cpu_start = 0, cpu_end = 0, client_start = 0, client_end = 0;
  long hwm = 0;
  auto open_window = [&] {
    for (int p : o_.pids) reset_peak_rss(p);
    cpu_start = total_cpu(o_.pids);
    client_start = own_cpu_seconds();
  };
  auto close_window = [&] {
    cpu_end = total_cpu(o_.pids);
    client_end = own_cpu_seconds();
    hwm = total_kb(o_.pids, "VmHWM");
  };

  if (o_.mode == "closed") {
    for (int i = 0; i < o_.concurrency; ++i) start_unary(*this, Clock::now(), true);
    pump(window_start_, false);
    open_window();
    pump(window_end_, o_.calls > 0);
    close_window();
    pump(drain_limit, true);
  } else if (o_.mode == "open") {
    if (o_.rate <= 0) usage("--mode open needs --rate");
    TimePoint next_due = t0;
    const double interval = 1.0 / o_.rate;
    open_loop_pump(window_start_, next_due, interval);
    open_window();
    open_loop_pump(window_end_, next_due, interval);
    close_window();
    pump(drain_limit, true);  // calls due in the window that are still out
  } else if (o_.mode == "stream") {
    for (int i = 0; i < o_.concurrency; ++i) {
      ++issued_;
      (new StreamCall(*this, false))->start();
    }
    pump(window_start_, false);
    open_window();
    pump(window_end_, false);
    close_window();
    pump(drain_limit, true);
  } else {
    usage("unknown --mode");
  }
  const double window = o_.duration;
  std::string extra;
  if (outstanding_ > 0) extra = ",\"unfinished\":" + std::to_string(outstanding_);
  if (first_failure_ != TimePoint{}) {
    const auto mono_s = [](TimePoint t) {
      return std::to_string(std::chrono::duration<double>(t.time_since_epoch()).count());
    };
    extra += ",\"first_failure_mono_s\":" + mono_s(first_failure_) +
             ",\"last_failure_mono_s\":" + mono_s(last_failure_);
  }
  return report(window, cpu_end - cpu_start, hwm, client_end - client_start, extra);
}

long long monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// One unary generic call on `cq`, waited for (polling the queue is what moves the call along);
// with `cancel_after`, the call is cancelled that long after it started unless it ended first,
// and `cancelled_at` is when. False when it did not complete in time.
bool call_and_wait(grpc::GenericStub& stub, grpc::CompletionQueue& cq, grpc::ClientContext& ctx,
                   const std::string& method, const grpc::ByteBuffer& request,
                   grpc::ByteBuffer* reply, grpc::Status* status,
                   std::optional<std::chrono::milliseconds> cancel_after = std::nullopt,
                   long long* cancelled_at = nullptr) {
  auto call = stub.PrepareUnaryCall(&ctx, method, request, &cq);
  call->StartCall();
  int tag = 0;
  call->Finish(reply, status, &tag);
  void* got = nullptr;
  bool ok = false;
  if (cancel_after) {
    if (cq.AsyncNext(&got, &ok, std::chrono::system_clock::now() + *cancel_after) ==
        grpc::CompletionQueue::GOT_EVENT) {
      return true;  // it ended before its time to be cancelled
    }
    *cancelled_at = monotonic_ns();
    ctx.TryCancel();
  }
  return cq.AsyncNext(&got, &ok, std::chrono::system_clock::now() + std::chrono::seconds(15)) ==
         grpc::CompletionQueue::GOT_EVENT;
}

// Mode cancel (see the top): the cancel lag of `concurrency` callers for `duration` seconds.
int run_cancel(const Options& o) {
  auto channel = grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  std::string hold_method = o.method;
  hold_method = hold_method.substr(0, hold_method.rfind('/') + 1) + "Hold";
  const std::string log_method = hold_method.substr(0, hold_method.rfind('/') + 1) + "CancelLog";
  grpc::Slice slice(std::string(static_cast<size_t>(o.payload), 'x'));
  const grpc::ByteBuffer request(&slice, 1);
  std::mutex mu;
  std::map<long, long long> cancelled_at;  // x-bench-id -> when the caller cancelled
  std::atomic<long> next_id{0};
  const TimePoint start = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(o.warmup));
  const TimePoint end = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(o.duration));
  std::vector<std::thread> callers;
  for (int c = 0; c < o.concurrency; ++c) {
    callers.emplace_back([&] {
      grpc::CompletionQueue cq;
      for (int n = 0; n < 1000000 && Clock::now() < end; ++n) {
        const long id = next_id.fetch_add(1);
        grpc::ClientContext ctx;
        ctx.AddMetadata("x-bench-id", std::to_string(id));
        grpc::ByteBuffer reply;
        grpc::Status status;
        long long at = 0;
        call_and_wait(stub, cq, ctx, hold_method, request, &reply, &status,
                      std::chrono::milliseconds(o.hold_ms), &at);
        if (Clock::now() >= start) {
          std::lock_guard lock(mu);
          cancelled_at[id] = at;
        }
      }
      cq.Shutdown();
      void* tag = nullptr;
      bool ok = false;
      while (cq.Next(&tag, &ok)) {
      }
    });
  }
  for (auto& t : callers) t.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the last cancels land
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::ByteBuffer reply;
  grpc::Status status;
  call_and_wait(stub, cq, ctx, log_method, request, &reply, &status);
  std::string log;
  std::vector<grpc::Slice> slices;
  if (status.ok() && reply.Dump(&slices).ok()) {
    for (const auto& s : slices) log.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  std::vector<double> lags_us;
  std::istringstream in(log);
  long id = 0;
  long long seen = 0;
  while (in >> id >> seen) {
    auto it = cancelled_at.find(id);
    if (it != cancelled_at.end() && it->second > 0)
      lags_us.push_back(static_cast<double>(seen - it->second) / 1000.0);
  }
  std::sort(lags_us.begin(), lags_us.end());
  auto pct = [&](double p) {
    if (lags_us.empty()) return 0.0;
    return lags_us[std::min(lags_us.size() - 1, static_cast<size_t>(p * lags_us.size()))];
  };
  std::printf(
      "{\"mode\":\"cancel\",\"concurrency\":%d,\"hold_ms\":%d,\"cancels\":%zu,\"observed\":%zu,"
      "\"lag_p50_us\":%.1f,\"lag_p90_us\":%.1f,\"lag_p99_us\":%.1f,\"lag_max_us\":%.1f%s}\n",
      o.concurrency, o.hold_ms, cancelled_at.size(), lags_us.size(), pct(0.5), pct(0.9), pct(0.99),
      lags_us.empty() ? 0.0 : lags_us.back(),
      status.ok() ? "" : (",\"error\":\"CancelLog: " + status.error_message() + "\"").c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + arg).c_str());
    const char* v = argv[++i];
    if (arg == "--target")
      o.target = v;
    else if (arg == "--mode")
      o.mode = v;
    else if (arg == "--method")
      o.method = v;
    else if (arg == "--stream-method")
      o.stream_method = v;
    else if (arg == "--slow-method")
      o.slow_method = v;
    else if (arg == "--concurrency")
      o.concurrency = std::max(1, std::atoi(v));
    else if (arg == "--rate")
      o.rate = std::atof(v);
    else if (arg == "--duration")
      o.duration = std::atof(v);
    else if (arg == "--warmup")
      o.warmup = std::atof(v);
    else if (arg == "--payload")
      o.payload = std::max(0, std::atoi(v));
    else if (arg == "--channels")
      o.channels = std::max(1, std::atoi(v));
    else if (arg == "--slow-fraction")
      o.slow_fraction = std::atof(v);
    else if (arg == "--slow-deadline-ms")
      o.slow_deadline_ms = std::atoi(v);
    else if (arg == "--deadline-ms")
      o.deadline_ms = std::atoi(v);
    else if (arg == "--streams")
      o.streams = std::max(1, std::atoi(v));
    else if (arg == "--hold")
      o.hold = std::atof(v);
    else if (arg == "--hold-ms")
      o.hold_ms = std::max(0, std::atoi(v));
    else if (arg == "--max-inflight")
      o.max_inflight = std::max(1L, std::atol(v));
    else if (arg == "--pid")
      o.pids.push_back(std::atoi(v));
    else if (arg == "--calls")
      o.calls = std::max(0L, std::atol(v));
    else
      usage(("unknown option " + arg).c_str());
  }
  if (o.target.empty()) usage("--target is required");
  if (o.duration <= 0 || o.duration > 600 || o.warmup < 0 || o.warmup > 60) {
    usage("--duration must be in (0, 600] and --warmup in [0, 60] seconds");
  }
  if (o.mode == "cancel") return run_cancel(o);
  Generator g(o);
  return g.run();
}
