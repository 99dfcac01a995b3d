// Helpers shared by the runtime's per-primitive tests (tests/runtime/<primitive>_test.cc, one
// file per header runtime/<primitive>.h).
//
// The fixture lives in a named namespace, not an anonymous one: tests of the suite `Primitives`
// are spread over several files, and GoogleTest requires every test of a suite to use the very
// same fixture class.
#pragma once

#include <vector>

#include <gtest/gtest.h>

#include "runtime/clock.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "runtime/task.h"

namespace curfew_test {

// Every test must leave no coroutine frame behind.
class Primitives : public ::testing::Test {
 protected:
  void SetUp() override { frames_at_start_ = curfew::rt::live_frames(); }
  void TearDown() override {
    EXPECT_EQ(curfew::rt::live_frames(), frames_at_start_) << "coroutine frames leaked by the test";
  }
  long frames_at_start() const { return frames_at_start_; }

 private:
  long frames_at_start_ = 0;
};

inline curfew::rt::Task<void> nap(curfew::rt::Duration d) { co_await curfew::rt::sleep(d); }

// Sleeps `d`, then appends `id` to `order`.
inline curfew::rt::Task<void> sleep_for_and_record(curfew::rt::Duration d, int id,
                                                   std::vector<int>& order) {
  co_await curfew::rt::sleep(d);
  order.push_back(id);
}

}  // namespace curfew_test
