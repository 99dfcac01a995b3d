#include "sidecar/internal/fanout_status.h"

#include "config/status_codes.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace curfew::sidecar {

const char* outcome_name(ChildResult::Outcome outcome) noexcept {
  switch (outcome) {
    case ChildResult::Outcome::kSucceeded:
      return "succeeded";
    case ChildResult::Outcome::kFailed:
      return "failed";
    case ChildResult::Outcome::kCancelled:
      return "cancelled";
    case ChildResult::Outcome::kNotStarted:
      return "not_started";
  }
  return "unknown";
}

CallStatus aggregate_failure(const config::Route& route, const char* mode,
                             const std::vector<ChildResult>& children) {
  const ChildResult* first_failure = nullptr;
  int failed = 0;
  for (const ChildResult& c : children) {
    if (c.outcome != ChildResult::Outcome::kFailed) continue;
    ++failed;
    if (first_failure == nullptr || c.finish_order < first_failure->finish_order)
      first_failure = &c;
  }
  const grpc::StatusCode code =
      first_failure ? first_failure->status.code() : grpc::StatusCode::DEADLINE_EXCEEDED;

  std::string message = std::string("curfew: fan-out (") + mode + ") on route '" + route.name +
                        "' failed: " + std::to_string(failed) + " of " +
                        std::to_string(children.size()) + " upstreams failed";
  const char* separator = ": ";
  for (const ChildResult& c : children) {
    if (c.outcome != ChildResult::Outcome::kFailed) continue;
    message += separator;
    separator = "; ";
    message += c.upstream + ": " + std::string(config::status_code_name(c.status.code())) + ": " +
               c.status.message();
  }

  google::rpc::Status details;
  details.set_code(code);
  details.set_message(message);
  for (const ChildResult& c : children) {
    google::rpc::ErrorInfo info;
    const grpc::StatusCode child_code =
        c.outcome == ChildResult::Outcome::kCancelled    ? grpc::StatusCode::CANCELLED
        : c.outcome == ChildResult::Outcome::kNotStarted ? grpc::StatusCode::CANCELLED
                                                         : c.status.code();
    info.set_reason(std::string(config::status_code_name(child_code)));
    info.set_domain("curfew.fanout");
    auto& md = *info.mutable_metadata();
    md["upstream"] = c.upstream;
    md["outcome"] = outcome_name(c.outcome);
    md["route"] = route.name;
    if (c.outcome == ChildResult::Outcome::kFailed) md["message"] = c.status.message();
    if (c.outcome == ChildResult::Outcome::kCancelled) md["message"] = c.cancel_reason;
    details.add_details()->PackFrom(info);
  }
  return CallStatus(code, message, details.SerializeAsString());
}

}  // namespace curfew::sidecar
