#include "sidecar/internal/retry.h"

#include <algorithm>
#include <cmath>

#include "runtime/sleep.h"

namespace curfew::sidecar {
namespace {

constexpr double kWindowSeconds = 10.0;

bool retryable(const config::Retry& retry, grpc::StatusCode code) {
  return std::find(retry.on.begin(), retry.on.end(), static_cast<int>(code)) != retry.on.end();
}

// The server's pushback: nullopt when absent; a negative duration when it says "do not retry".
std::optional<rt::Duration> pushback(const UpstreamReply& reply) {
  const std::optional<std::string>& value = reply.retry_pushback_ms;
  if (!value) return std::nullopt;
  char* end = nullptr;
  const long long ms = std::strtoll(value->c_str(), &end, 10);
  if (value->empty() || *end != '\0' || ms < 0) return rt::Duration(-1);
  return std::chrono::milliseconds(ms);
}

}  // namespace

void RetryBudget::decay(rt::TimePoint now) noexcept {
  if (last_ != rt::TimePoint{}) {
    const double dt = std::chrono::duration<double>(now - last_).count();
    const double keep = std::exp(-dt / kWindowSeconds);
    calls_ *= keep;
    retries_ *= keep;
  }
  last_ = now;
}

void RetryBudget::record_call(rt::TimePoint now) noexcept {
  decay(now);
  calls_ += 1;
}

bool RetryBudget::try_acquire(rt::TimePoint now) noexcept {
  decay(now);
  if (retries_ + 1 > ratio_ * calls_ + kMinRetries) return false;
  retries_ += 1;
  return true;
}

rt::Task<UpstreamReply> call_with_retries(const config::Route& route, UnaryCaller& upstreams,
                                          const UnaryRequest& request, rt::TimePoint deadline,
                                          RetryBudget& budget, std::minstd_rand& random,
                                          CallReport& report) {
  const config::Retry& retry = *route.retry;
  budget.record_call(rt::Clock::now());
  for (int attempt = 0;; ++attempt) {
    const rt::TimePoint try_deadline = std::min(deadline, rt::Clock::now() + retry.per_try_timeout);
    const size_t index = report.attempts.size();
    report.attempts.push_back(
        {.upstream = &route.upstream,
         .role = attempt == 0 ? UpstreamAttempt::Role::kPrimary : UpstreamAttempt::Role::kRetry});
    UpstreamReply reply = co_await upstreams.call(route.upstream, request, try_deadline);
    const grpc::StatusCode code = reply.status.code();
    UpstreamAttempt& record = report.attempts[index];
    record.code = code;
    // The upstream enforces the per-try deadline curfew propagated, from its own clock reading:
    // its DEADLINE_EXCEEDED may come a little before curfew's own timer (measured on loopback:
    // up to ~0.7 ms). Near the per-try deadline it is that deadline.
    const rt::Duration slack =
        std::max<rt::Duration>(std::chrono::milliseconds(5), retry.per_try_timeout / 10);
    const bool per_try_timeout = code == grpc::StatusCode::DEADLINE_EXCEEDED &&
                                 try_deadline < deadline &&
                                 rt::Clock::now() + slack >= try_deadline;
    record.per_try_timeout = per_try_timeout;
    if (reply.status.ok()) {
      record.won = true;
      co_return reply;
    }
    const bool last = attempt + 1 >= retry.attempts;
    if (last || !(per_try_timeout || retryable(retry, code))) {
      record.won = true;
      co_return reply;
    }
    rt::Duration backoff;
    if (auto server_says = pushback(reply)) {
      if (*server_says < rt::Duration::zero()) {
        record.won = true;
        co_return reply;  // the server asked not to retry
      }
      backoff = *server_says;
    } else {
      const double cap = std::min<double>(
          std::chrono::duration<double>(retry.backoff_max).count(),
          std::chrono::duration<double>(retry.backoff_base).count() * std::ldexp(1.0, attempt));
      std::uniform_real_distribution<double> jitter(0.0, cap);
      backoff =
          std::chrono::duration_cast<rt::Duration>(std::chrono::duration<double>(jitter(random)));
    }
    if (rt::Clock::now() + backoff >= deadline) {
      record.won = true;
      co_return reply;  // no time left for another try
    }
    if (!budget.try_acquire(rt::Clock::now())) {
      report.retry_budget_exhausted = true;
      record.won = true;
      co_return reply;
    }
    ++report.retries;
    co_await rt::sleep(backoff);
  }
}

}  // namespace curfew::sidecar
