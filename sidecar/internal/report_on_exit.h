// ReportOnExit: hands a call's CallReport to the observer when it goes out of scope, however the
// call's task ends (a status sent, the caller gone, a cancellation unwinding it). Used by every
// path that accepts a call (proxy_call, a refusal), so none can forget a report.
#pragma once

#include <grpcpp/grpcpp.h>

#include "runtime/clock.h"
#include "runtime/grpc_server.h"
#include "sidecar/call_report.h"

namespace curfew::sidecar {

class ReportOnExit {
 public:
  ReportOnExit(CallReport& report, const rt::ServerCall& call, CallObserver* observer)
      : report_(report), call_(call), observer_(observer), arrival_(rt::Clock::now()) {}
  ReportOnExit(const ReportOnExit&) = delete;
  ReportOnExit& operator=(const ReportOnExit&) = delete;
  ~ReportOnExit() {
    // A call that never sent a status was not answered OK: its caller went away.
    if (!call_.sent_code() && report_.code == grpc::StatusCode::OK) {
      report_.code = grpc::StatusCode::CANCELLED;
    }
    report_.duration = rt::Clock::now() - arrival_;
    if (observer_) observer_->call_finished(report_);
  }

  rt::TimePoint arrival() const noexcept { return arrival_; }

 private:
  CallReport& report_;
  const rt::ServerCall& call_;
  CallObserver* observer_;
  rt::TimePoint arrival_;
};

}  // namespace curfew::sidecar
