// main() of the runtime suites: runs every test on the poller CURFEW_TEST_POLLER names
// ("completion-queue", the default, or "epoll"). CTest registers each suite once per poller, so
// the runtime's semantics are proven on both while the data path moves onto epoll.
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <gtest/gtest.h>

#include "runtime/process.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const char* poller = std::getenv("CURFEW_TEST_POLLER");
  if (poller != nullptr && std::string_view(poller) == "epoll") {
    curfew::rt::set_default_poller(curfew::rt::PollerKind::kEpoll);
  } else if (poller != nullptr && std::string_view(poller) != "completion-queue") {
    std::fprintf(stderr, "CURFEW_TEST_POLLER must be completion-queue or epoll, not %s\n", poller);
    return 2;
  }
  return RUN_ALL_TESTS();
}
