// PeakEwma: an endpoint's latency estimate, as Linkerd's balancer keeps it (tower's PeakEwma).
//
// A moving average of observed latencies, weighted by time rather than by count (an observation
// `dt` after the previous one weighs 1 - e^(-dt/decay), so the estimate does not depend on the
// call rate), with two twists:
//  - peak: an observation above the estimate replaces it at once, so a pod that turns slow is
//    avoided from its first slow call on;
//  - decay while unobserved: the estimate falls towards zero as time passes without calls, so an
//    endpoint avoided for being slow is tried again after a while (a slow pod that recovered gets
//    its share back; one still slow jumps back up on that one call).
//
// Loop thread only (no synchronisation); a few doubles, no allocation.
#pragma once

#include <chrono>
#include <cmath>

#include "runtime/clock.h"

namespace curfew::sidecar {

class PeakEwma {
 public:
  // Linkerd's default decay: a slow endpoint's 20 ms estimate falls below a fast one's 0.5 ms
  // after about 37 s without calls.
  static constexpr rt::Duration kDefaultDecay = std::chrono::seconds(10);

  explicit PeakEwma(rt::Duration decay = kDefaultDecay)
      : decay_ns_(std::chrono::duration<double, std::nano>(decay).count()) {}

  // One observed latency (a unary call's duration; a stream's time to the response headers).
  void observe(rt::Duration latency, rt::TimePoint now) noexcept {
    const double observed = std::chrono::duration<double, std::nano>(latency).count();
    const double current = estimate_ns(now);
    if (!measured_ || observed > current) {
      estimate_ = observed;  // peak (or first)
    } else {
      const double dt = std::chrono::duration<double, std::nano>(now - stamp_).count();
      const double keep = std::exp(-dt / decay_ns_);
      estimate_ = current * keep + observed * (1.0 - keep);
    }
    stamp_ = now;
    measured_ = true;
  }

  // The estimate at `now`, in nanoseconds: 0 before the first observation.
  double estimate_ns(rt::TimePoint now) const noexcept {
    if (!measured_) return 0;
    const double dt = std::chrono::duration<double, std::nano>(now - stamp_).count();
    return dt <= 0 ? estimate_ : estimate_ * std::exp(-dt / decay_ns_);
  }

  bool measured() const noexcept { return measured_; }

 private:
  double decay_ns_;
  double estimate_ = 0;
  rt::TimePoint stamp_{};
  bool measured_ = false;
};

}  // namespace curfew::sidecar
