// The runtime's clock. Deadlines are steady_clock time points: immune to wall-clock jumps.
#pragma once

#include <chrono>

namespace curfew::rt {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

}  // namespace curfew::rt
