// aggregate_failure() (sidecar/internal/fanout_status.h): the one status a caller gets when a
// fan-out fails. The contract, as read from the header and the code:
//   code    = the code of the failed child with the lowest finish_order (not the first in
//   configured
//             order); DEADLINE_EXCEEDED when no child failed;
//   message = "curfew: fan-out (MODE) on route 'R' failed: K of N upstreams failed" followed, for
//             each failed child in configured order, by ": " (first) or "; " (others) and
//             "UPSTREAM: CODE_NAME: child message";
//   grpc-status-details-bin = google.rpc.Status{code, message, details: one google.rpc.ErrorInfo
//             per child (every outcome), in configured order, domain "curfew.fanout", reason = the
//             child's code name (CANCELLED for cancelled and not-started children), metadata
//             upstream / outcome / route, plus message for failed (its status message) and
//             cancelled (the cancel reason) children}.
#include "sidecar/internal/fanout_status.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace curfew::sidecar {
namespace {

using Outcome = ChildResult::Outcome;
using Metadata = std::map<std::string, std::string>;

config::Route route_named(const std::string& name) {
  config::Route route;
  route.name = name;
  return route;
}

ChildResult failed(std::string upstream, grpc::StatusCode code, std::string message, int order) {
  return {.upstream = std::move(upstream),
          .outcome = Outcome::kFailed,
          .status = CallStatus(code, std::move(message)),
          .finish_order = order};
}
ChildResult succeeded(std::string upstream, int order) {
  return {.upstream = std::move(upstream),
          .outcome = Outcome::kSucceeded,
          .status = CallStatus(),
          .finish_order = order};
}
ChildResult cancelled(std::string upstream, std::string reason) {
  return {.upstream = std::move(upstream),
          .outcome = Outcome::kCancelled,
          .cancel_reason = std::move(reason)};
}
ChildResult not_started(std::string upstream) {
  return {.upstream = std::move(upstream), .outcome = Outcome::kNotStarted};
}

struct Info {
  std::string reason;
  std::string domain;
  Metadata metadata;
};

// Parses grpc-status-details-bin; every detail must be an ErrorInfo.
google::rpc::Status parse_details(const CallStatus& status, std::vector<Info>* infos) {
  google::rpc::Status details;
  EXPECT_TRUE(details.ParseFromString(status.details())) << "not a google.rpc.Status";
  for (const auto& any : details.details()) {
    google::rpc::ErrorInfo info;
    EXPECT_TRUE(any.Is<google::rpc::ErrorInfo>()) << any.type_url();
    EXPECT_TRUE(any.UnpackTo(&info));
    infos->push_back(
        {info.reason(), info.domain(), Metadata(info.metadata().begin(), info.metadata().end())});
  }
  return details;
}

TEST(OutcomeName, Names) {
  EXPECT_STREQ(outcome_name(Outcome::kSucceeded), "succeeded");
  EXPECT_STREQ(outcome_name(Outcome::kFailed), "failed");
  EXPECT_STREQ(outcome_name(Outcome::kCancelled), "cancelled");
  EXPECT_STREQ(outcome_name(Outcome::kNotStarted), "not_started");
}

// Scatter-gather: one child fails, one had succeeded, the third is cancelled because of it.
TEST(AggregateFailure, OneFailedChildOfAll) {
  const CallStatus status =
      aggregate_failure(route_named("search"), "all",
                        {succeeded("shard-a", 0),
                         failed("shard-b", grpc::StatusCode::UNAVAILABLE, "connection refused", 1),
                         cancelled("shard-c", "sibling failed")});

  EXPECT_EQ(status.code(), grpc::StatusCode::UNAVAILABLE);
  const std::string message =
      "curfew: fan-out (all) on route 'search' failed: 1 of 3 upstreams failed: "
      "shard-b: UNAVAILABLE: connection refused";
  EXPECT_EQ(status.message(), message);

  std::vector<Info> infos;
  const google::rpc::Status details = parse_details(status, &infos);
  EXPECT_EQ(details.code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(details.message(), message);
  ASSERT_EQ(infos.size(), 3u);

  EXPECT_EQ(infos[0].reason, "OK");
  EXPECT_EQ(infos[0].domain, "curfew.fanout");
  EXPECT_EQ(infos[0].metadata,
            (Metadata{{"upstream", "shard-a"}, {"outcome", "succeeded"}, {"route", "search"}}));

  EXPECT_EQ(infos[1].reason, "UNAVAILABLE");
  EXPECT_EQ(infos[1].domain, "curfew.fanout");
  EXPECT_EQ(infos[1].metadata, (Metadata{{"upstream", "shard-b"},
                                         {"outcome", "failed"},
                                         {"route", "search"},
                                         {"message", "connection refused"}}));

  EXPECT_EQ(infos[2].reason, "CANCELLED");
  EXPECT_EQ(infos[2].domain, "curfew.fanout");
  EXPECT_EQ(infos[2].metadata, (Metadata{{"upstream", "shard-c"},
                                         {"outcome", "cancelled"},
                                         {"route", "search"},
                                         {"message", "sibling failed"}}));
}

// The code is the one of the child that failed first in time (lowest finish_order); the message
// and the details list children in configured order regardless.
TEST(AggregateFailure, CodeOfFirstFailureInTimeListedInConfiguredOrder) {
  const CallStatus status =
      aggregate_failure(route_named("quotes"), "quorum",
                        {failed("q1", grpc::StatusCode::INTERNAL, "boom", 2),
                         failed("q2", grpc::StatusCode::UNAVAILABLE, "down", 1),
                         failed("q3", grpc::StatusCode::RESOURCE_EXHAUSTED, "busy", 0)});

  EXPECT_EQ(status.code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << "q3 finished first";
  const std::string message =
      "curfew: fan-out (quorum) on route 'quotes' failed: 3 of 3 upstreams failed: "
      "q1: INTERNAL: boom; q2: UNAVAILABLE: down; q3: RESOURCE_EXHAUSTED: busy";
  EXPECT_EQ(status.message(), message);

  std::vector<Info> infos;
  const google::rpc::Status details = parse_details(status, &infos);
  EXPECT_EQ(details.code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(details.message(), message);
  ASSERT_EQ(infos.size(), 3u);
  EXPECT_EQ(infos[0].metadata.at("upstream"), "q1");
  EXPECT_EQ(infos[0].reason, "INTERNAL");
  EXPECT_EQ(infos[0].metadata.at("message"), "boom");
  EXPECT_EQ(infos[1].metadata.at("upstream"), "q2");
  EXPECT_EQ(infos[1].reason, "UNAVAILABLE");
  EXPECT_EQ(infos[1].metadata.at("message"), "down");
  EXPECT_EQ(infos[2].metadata.at("upstream"), "q3");
  EXPECT_EQ(infos[2].reason, "RESOURCE_EXHAUSTED");
  EXPECT_EQ(infos[2].metadata.at("message"), "busy");
}

// Successes and cancellations count towards N but not K, and are not in the message.
TEST(AggregateFailure, QuorumMissedWithSuccessesAndCancellations) {
  const CallStatus status = aggregate_failure(
      route_named("quotes"), "quorum",
      {succeeded("q1", 0), failed("q2", grpc::StatusCode::PERMISSION_DENIED, "nope", 2),
       failed("q3", grpc::StatusCode::NOT_FOUND, "gone", 1), cancelled("q4", "quorum impossible"),
       not_started("q5")});

  EXPECT_EQ(status.code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.message(),
            "curfew: fan-out (quorum) on route 'quotes' failed: 2 of 5 upstreams failed: "
            "q2: PERMISSION_DENIED: nope; q3: NOT_FOUND: gone");
  std::vector<Info> infos;
  parse_details(status, &infos);
  ASSERT_EQ(infos.size(), 5u);
  const std::vector<std::string> reasons = {"OK", "PERMISSION_DENIED", "NOT_FOUND", "CANCELLED",
                                            "CANCELLED"};
  const std::vector<std::string> outcomes = {"succeeded", "failed", "failed", "cancelled",
                                             "not_started"};
  for (size_t i = 0; i < infos.size(); ++i) {
    EXPECT_EQ(infos[i].reason, reasons[i]) << i;
    EXPECT_EQ(infos[i].domain, "curfew.fanout") << i;
    EXPECT_EQ(infos[i].metadata.at("upstream"), "q" + std::to_string(i + 1)) << i;
    EXPECT_EQ(infos[i].metadata.at("outcome"), outcomes[i]) << i;
    EXPECT_EQ(infos[i].metadata.at("route"), "quotes") << i;
  }
  EXPECT_EQ(infos[0].metadata.count("message"), 0u) << "a success has no message";
  EXPECT_EQ(infos[3].metadata.at("message"), "quorum impossible");
  EXPECT_EQ(infos[4].metadata,
            (Metadata{{"upstream", "q5"}, {"outcome", "not_started"}, {"route", "quotes"}}))
      << "a child that never started has no message";
}

// Nobody failed before the deadline: DEADLINE_EXCEEDED, no per-child list in the message.
TEST(AggregateFailure, NoFailureMeansDeadlineExceeded) {
  const CallStatus status =
      aggregate_failure(route_named("pricing"), "hedge",
                        {cancelled("pricing-a", "deadline"), not_started("pricing-b")});

  EXPECT_EQ(status.code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  const std::string message =
      "curfew: fan-out (hedge) on route 'pricing' failed: 0 of 2 upstreams failed";
  EXPECT_EQ(status.message(), message);
  std::vector<Info> infos;
  const google::rpc::Status details = parse_details(status, &infos);
  EXPECT_EQ(details.code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(details.message(), message);
  ASSERT_EQ(infos.size(), 2u);
  EXPECT_EQ(infos[0].reason, "CANCELLED");
  EXPECT_EQ(infos[0].metadata, (Metadata{{"upstream", "pricing-a"},
                                         {"outcome", "cancelled"},
                                         {"route", "pricing"},
                                         {"message", "deadline"}}));
  EXPECT_EQ(infos[1].reason, "CANCELLED");
  EXPECT_EQ(
      infos[1].metadata,
      (Metadata{{"upstream", "pricing-b"}, {"outcome", "not_started"}, {"route", "pricing"}}));
}

// A child failing with DEADLINE_EXCEEDED itself is a failure like any other.
TEST(AggregateFailure, ChildDeadlineExceededIsAFailure) {
  const CallStatus status = aggregate_failure(
      route_named("search"), "all",
      {failed("shard-a", grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded", 0),
       cancelled("shard-b", "sibling failed")});
  EXPECT_EQ(status.code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(status.message(),
            "curfew: fan-out (all) on route 'search' failed: 1 of 2 upstreams failed: "
            "shard-a: DEADLINE_EXCEEDED: Deadline Exceeded");
}

// A failed child with an empty message still gets its "UPSTREAM: CODE: " entry.
TEST(AggregateFailure, EmptyChildMessage) {
  const CallStatus status = aggregate_failure(
      route_named("search"), "all", {failed("shard-a", grpc::StatusCode::UNKNOWN, "", 0)});
  EXPECT_EQ(status.code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(status.message(),
            "curfew: fan-out (all) on route 'search' failed: 1 of 1 upstreams failed: "
            "shard-a: UNKNOWN: ");
  std::vector<Info> infos;
  parse_details(status, &infos);
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].metadata.at("message"), "");
}

// The failed child chosen for the code is found regardless of where it sits in the vector.
TEST(AggregateFailure, FirstFailureCanBeLastConfigured) {
  const CallStatus status =
      aggregate_failure(route_named("r"), "all",
                        {failed("a", grpc::StatusCode::ABORTED, "x", 5), succeeded("b", 0),
                         failed("c", grpc::StatusCode::DATA_LOSS, "y", 1)});
  EXPECT_EQ(status.code(), grpc::StatusCode::DATA_LOSS);
}

TEST(AggregateFailure, NoChildren) {
  const CallStatus status = aggregate_failure(route_named("empty"), "all", {});
  EXPECT_EQ(status.code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(status.message(),
            "curfew: fan-out (all) on route 'empty' failed: 0 of 0 upstreams failed");
  std::vector<Info> infos;
  const google::rpc::Status details = parse_details(status, &infos);
  EXPECT_EQ(details.code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(infos.empty());
}

}  // namespace
}  // namespace curfew::sidecar
