#include "demo_service.h"

#include <algorithm>
#include <utility>

#include "sleep_unless_cancelled.h"

namespace curfew::testing {
namespace {

using curfew::demo::EchoReply;
using grpc::Status;
using grpc::StatusCode;

// Stamps a reply with what every Demo reply carries: the request's text and the budget.
void StartReply(const grpc::ServerContext& ctx, const std::string& message, EchoReply* reply) {
  reply->set_message(message);
  const auto budget = RemainingBudget(ctx);
  reply->set_budget_ms(budget ? budget->count() : -1);
}

}  // namespace

std::optional<std::chrono::milliseconds> RemainingBudget(const grpc::ServerContext& ctx) {
  // gRPC reports "no deadline" (no grpc-timeout header) as the largest time_point.
  const auto deadline = ctx.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                               std::chrono::system_clock::now());
}

void DemoObservations::RecordArrival(const grpc::ServerContext& ctx) {
  calls_started.fetch_add(1);
  std::multimap<std::string, std::string> metadata;
  for (const auto& [key, value] : ctx.client_metadata()) {
    metadata.emplace(std::string(key.data(), key.size()), std::string(value.data(), value.size()));
  }
  const auto budget = RemainingBudget(ctx);
  std::lock_guard lock(mu_);
  last_seen_budget_ = budget;
  last_metadata_ = std::move(metadata);
}

std::optional<std::chrono::milliseconds> DemoObservations::last_seen_budget() const {
  std::lock_guard lock(mu_);
  return last_seen_budget_;
}

std::multimap<std::string, std::string> DemoObservations::last_metadata() const {
  std::lock_guard lock(mu_);
  return last_metadata_;
}

Status DemoService::Echo(grpc::ServerContext* ctx, const curfew::demo::EchoRequest* request,
                         EchoReply* reply) {
  observations_->RecordArrival(*ctx);
  StartReply(*ctx, request->message(), reply);
  return Status::OK;
}

Status DemoService::Slow(grpc::ServerContext* ctx, const curfew::demo::SlowRequest* request,
                         EchoReply* reply) {
  observations_->RecordArrival(*ctx);
  StartReply(*ctx, request->message(), reply);
  // Polling IsCancelled() while sleeping is what lets tests see that a proxy's deadline
  // enforcement actually reached the backend, within a few milliseconds.
  const auto delay = std::chrono::milliseconds(std::max(0, request->delay_ms()));
  if (!SleepUnlessCancelled(ctx, delay)) {
    observations_->slow_calls_cancelled.fetch_add(1);
    reply->set_cancelled(true);
    return Status(StatusCode::CANCELLED, "Slow was cancelled before its delay elapsed");
  }
  observations_->slow_calls_completed.fetch_add(1);
  return Status::OK;
}

Status DemoService::Fail(grpc::ServerContext* ctx, const curfew::demo::FailRequest* request,
                         EchoReply* reply) {
  observations_->RecordArrival(*ctx);
  StartReply(*ctx, request->message(), reply);
  // Passed through unvalidated: codes outside 0..16 are useful for testing how a proxy copes.
  return Status(static_cast<StatusCode>(request->code()), request->message());
}

Status DemoService::Stream(grpc::ServerContext* ctx, const curfew::demo::EchoRequest* request,
                           grpc::ServerWriter<EchoReply>* writer) {
  observations_->RecordArrival(*ctx);
  if (request->count() < 0 || request->interval_ms() < 0) {
    return Status(StatusCode::INVALID_ARGUMENT, "count and interval_ms must not be negative");
  }
  for (int i = 0; i < request->count(); ++i) {
    if (i > 0 && !SleepUnlessCancelled(ctx, std::chrono::milliseconds(request->interval_ms()))) {
      return Status(StatusCode::CANCELLED, "Stream was cancelled");
    }
    EchoReply reply;
    StartReply(*ctx, request->message(), &reply);
    reply.set_index(i);
    if (!writer->Write(reply)) return Status(StatusCode::CANCELLED, "Stream's client went away");
  }
  return Status::OK;
}

}  // namespace curfew::testing
