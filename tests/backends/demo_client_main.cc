// curfew-demo-client: shows curfew enforcing deadlines, against the demo backend behind it.
//
//   curfew-demo-client [--target 127.0.0.1:15001]
//
// Exits 0 when every call ended as curfew's bundled config (config/curfew.yaml) says it should.
#include <chrono>
#include <cstdio>
#include <string>

#include <grpcpp/grpcpp.h>

#include "curfew/demo/demo.grpc.pb.h"

namespace {

using namespace std::chrono_literals;
using curfew::demo::Demo;

struct Outcome {
  grpc::Status status;
  std::chrono::milliseconds took;
};

template <class Call>
Outcome timed(Call call) {
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = call();
  return {status, std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)};
}

bool report(const char* what, const Outcome& o, grpc::StatusCode expected) {
  const bool as_expected = o.status.error_code() == expected;
  std::printf("%-58s -> code %2d in %4lld ms  %s\n     %s\n", what, o.status.error_code(),
              static_cast<long long>(o.took.count()),
              as_expected ? "(as expected)" : "(UNEXPECTED)",
              o.status.ok() ? "ok" : o.status.error_message().c_str());
  return as_expected;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target = "127.0.0.1:15001";
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--target") target = argv[++i];
  }
  auto stub = Demo::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  bool all_ok = true;

  all_ok &= report("Echo, no caller deadline (route 'demo': 1s)", timed([&] {
                     grpc::ClientContext ctx;
                     curfew::demo::EchoRequest req;
                     req.set_message("hello through curfew");
                     curfew::demo::EchoReply reply;
                     auto s = stub->Echo(&ctx, req, &reply);
                     if (s.ok())
                       std::printf("     backend saw a budget of %lld ms\n",
                                   static_cast<long long>(reply.budget_ms()));
                     return s;
                   }),
                   grpc::StatusCode::OK);

  all_ok &= report("Slow(1000 ms), no caller deadline (route 'slow': 200ms)", timed([&] {
                     grpc::ClientContext ctx;
                     curfew::demo::SlowRequest req;
                     req.set_delay_ms(1000);
                     curfew::demo::EchoReply reply;
                     return stub->Slow(&ctx, req, &reply);
                   }),
                   grpc::StatusCode::DEADLINE_EXCEEDED);

  all_ok &= report("Slow(1000 ms), caller deadline 100 ms (caller wins)", timed([&] {
                     grpc::ClientContext ctx;
                     ctx.set_deadline(std::chrono::system_clock::now() + 100ms);
                     curfew::demo::SlowRequest req;
                     req.set_delay_ms(1000);
                     curfew::demo::EchoReply reply;
                     return stub->Slow(&ctx, req, &reply);
                   }),
                   grpc::StatusCode::DEADLINE_EXCEEDED);

  all_ok &= report("Slow(50 ms), no caller deadline (fits in 200ms)", timed([&] {
                     grpc::ClientContext ctx;
                     curfew::demo::SlowRequest req;
                     req.set_delay_ms(50);
                     curfew::demo::EchoReply reply;
                     return stub->Slow(&ctx, req, &reply);
                   }),
                   grpc::StatusCode::OK);

  all_ok &= report("Fail(RESOURCE_EXHAUSTED): status passes through untouched", timed([&] {
                     grpc::ClientContext ctx;
                     curfew::demo::FailRequest req;
                     req.set_code(grpc::StatusCode::RESOURCE_EXHAUSTED);
                     req.set_message("quota exceeded \xe2\x98\xba");
                     curfew::demo::EchoReply reply;
                     return stub->Fail(&ctx, req, &reply);
                   }),
                   grpc::StatusCode::RESOURCE_EXHAUSTED);

  std::printf(all_ok ? "\ncurfew enforced every deadline as configured.\n"
                     : "\nSOMETHING DID NOT GO AS EXPECTED.\n");
  return all_ok ? 0 : 1;
}
