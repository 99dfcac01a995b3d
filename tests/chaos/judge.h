// curfew-chaos: what a call may end with, given its method's route policy and its plan, and the
// check of one finished call against it (invariant 3).
//
// The allowed status codes of a call:
//   DEADLINE_EXCEEDED  always (every call has a deadline: the caller's or the route's, 10 ms on)
//   RESOURCE_EXHAUSTED as curfew's own refusal ("... concurrent calls ..."), from a limit
//   CANCELLED          the caller cancelled; the plan resets the stream; the route reaches the
//                      killable child (killed mid-call)
//   UNAVAILABLE        the route reaches the killable child (down, or killed mid-call)
//   a planned code     of an upstream the route reaches (a retried try's code on retry routes)
//   OK                 when the policy can succeed with the plan (plain/retry: its upstream
//                      answers OK; all: every child; quorum: at least `quorum`; hedge: any)
//   UNIMPLEMENTED      curfew's "no route" for the method without a route
// Never INTERNAL or UNKNOWN: no upstream sends them.
#pragma once

#include <bitset>
#include <string>

#include "caller.h"
#include "payload.h"
#include "routes.h"

namespace curfew::chaos {

constexpr int kOk = 0, kCancelled = 1, kUnknownCode = 2, kDeadline = 4, kExhausted = 8,
              kUnimplemented = 12, kInternal = 13, kUnavailable = 14;

using Codes = std::bitset<17>;

inline bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

// curfew refused the call over a concurrency limit (its message, not an upstream's).
inline bool curfew_rejection(const CallRecord& c) {
  return c.code == kExhausted && starts_with(c.message, "curfew:") &&
         c.message.find("concurrent calls") != std::string::npos;
}

inline bool ok_possible(const CallRecord& c, const Method& m) {
  if (c.plan.reset >= 0) return false;
  int ok = 0;
  for (int u : m.upstreams) ok += c.plan.code_for(u) == kOk;
  switch (m.policy) {
    case Policy::kFanAll:
      return ok == static_cast<int>(m.upstreams.size());
    case Policy::kFanQuorum:
      return ok >= m.quorum;
    case Policy::kFanHedge:
      return ok >= 1;
    default:
      return ok == 1;
  }
}

inline Codes allowed_codes(const CallRecord& c, const Method& m) {
  Codes codes;
  codes.set(kDeadline);
  if (c.cancelled) codes.set(kCancelled);
  if (m.kind == Kind::kUnknown) {
    codes.set(kUnimplemented);
    return codes;
  }
  if (c.plan.reset >= 0) codes.set(kCancelled);
  if (m.uses_child()) codes.set(kUnavailable).set(kCancelled);
  for (int u : m.upstreams) codes.set(c.plan.code_for(u));
  if (m.policy == Policy::kRetry && c.plan.fail_first > 0) codes.set(c.plan.fail_code);
  codes.reset(kOk);
  if (ok_possible(c, m)) codes.set(kOk);
  return codes;
}

// Codes curfew may have counted for a call whose status the caller decided itself (it cancelled,
// or its own deadline passed): curfew may have sent anything the call allowed just before, or
// seen the cancellation, or hit the same deadline, or refused it, or never seen it.
inline Codes codes_curfew_may_count(const CallRecord& c, const Method& m) {
  return allowed_codes(c, m).set(kCancelled).set(kDeadline).set(kExhausted);
}

// The caller decided the status locally, so curfew's count for this call is uncertain.
inline bool status_uncertain(const CallRecord& c) {
  if (c.hung || c.code < 0) return true;
  if (c.cancelled && c.code == kCancelled) return true;
  return c.deadline_ms >= 0 && c.code == kDeadline && !starts_with(c.message, "curfew:");
}

inline std::string codes_text(const Codes& codes) {
  std::string out;
  for (int i = 0; i < 17; ++i) {
    if (codes[i]) out += (out.empty() ? "" : ",") + std::string(code_name(i));
  }
  return out;
}

// A curfew status message names the route; it must be this method's (slug-vN).
inline std::string check_curfew_message(const CallRecord& c, const Method& m) {
  if (!starts_with(c.message, "curfew:")) return "";
  std::string slug = m.slug;
  for (char& ch : slug) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const size_t at = c.message.find("route '");
  if (at != std::string::npos && c.message.compare(at + 7, slug.size() + 2, slug + "-v") != 0) {
    return "curfew's status names another route than " + slug + "-vN";
  }
  if (c.message.find("no route for") != std::string::npos && m.kind != Kind::kUnknown) {
    return "curfew found no route for a routed method";
  }
  const size_t fan = c.message.find("fan-out (");
  if (fan != std::string::npos &&
      (!m.fanout() ||
       c.message.compare(fan + 9, std::string(m.mode_name()).size(), m.mode_name()) != 0)) {
    return "curfew's fan-out status is not this route's mode";
  }
  if (c.message.find("serves unary calls only") != std::string::npos)
    return "a unary call was refused as streaming";
  if (c.message.find("shutting down") != std::string::npos)
    return "\"shutting down\" while serving";
  return "";
}

// The caller's own cancel or deadline may have cut its reading short after the status was in.
inline bool caller_cut(const CallRecord& c) {
  return c.cancelled || (c.deadline_ms >= 0 && c.seconds * 1000 >= c.deadline_ms - 5);
}

// Messages on success: exactly what the plan asked for.
inline std::string check_success(const CallRecord& c, const Method& m) {
  if (caller_cut(c)) return "";
  if (m.fanout() && m.concat) {
    int ok = 0;
    for (int u : m.upstreams) ok += c.plan.code_for(u) == kOk;
    const int low = m.policy == Policy::kFanAll ? static_cast<int>(m.upstreams.size()) : m.quorum;
    if (c.received != 1) return "OK with " + std::to_string(c.received) + " messages, expected 1";
    if (c.copies >= 0 && (c.copies < low || c.copies > ok)) {
      return "OK fan-out concat of " + std::to_string(c.copies) + " responses, expected " +
             std::to_string(low) + ".." + std::to_string(ok);
    }
    return "";
  }
  const int want = m.unary_policy() ? 1 : c.plan.sends_for(m.upstreams[0]);
  if (c.received != want) {
    return "OK with " + std::to_string(c.received) + " messages, the plan sends " +
           std::to_string(want);
  }
  return "";
}

// Messages on failure: none from a unary policy; a prefix of the stream otherwise, and the whole
// planned prefix when the status is the upstream's planned one (passed through as is).
inline std::string check_failure(const CallRecord& c, const Method& m) {
  if (m.kind == Kind::kUnknown || curfew_rejection(c)) {
    return c.received ? "a refused call got " + std::to_string(c.received) + " messages" : "";
  }
  // (A caller whose own cancel or deadline cut the call short may have got the response that
  // came with a status it then did not see.)
  if (m.unary_policy() && c.received && !caller_cut(c)) {
    return "failed unary-policy call got " + std::to_string(c.received) + " messages";
  }
  if (m.fanout()) return "";  // an aggregated status (or a hedge's own answer)
  const int u = m.upstreams[0];
  // Codes curfew never makes up on a single-upstream route: the message must be the upstream's.
  const bool curfew_may_make =
      c.code == kCancelled || c.code == kDeadline || c.code == kExhausted || c.code == kUnavailable;
  const bool upstreams_status = c.message == planned_message(c.code, u);
  if (!curfew_may_make && !upstreams_status)
    return "the upstream's status message was not passed on";
  // The planned status passed through: every message the upstream sent before it must be there,
  // unless the caller's own cancel or deadline cut the reading short.
  if (!m.unary_policy() && upstreams_status && c.code == c.plan.code_for(u) && !caller_cut(c) &&
      c.received != c.plan.sends_for(u)) {
    return "the upstream's " + std::string(code_name(c.code)) + " came after " +
           std::to_string(c.received) + " of its " + std::to_string(c.plan.sends_for(u)) +
           " messages";
  }
  return "";
}

// Empty if the call ended as its route and plan allow; else what is wrong.
inline std::string judge(const CallRecord& c, const Method& m) {
  if (c.hung)
    return "call hung: no status within its deadline + " + std::to_string(kHungSlack.count()) +
           " ms";
  if (!c.bad.empty()) return "bad response: " + c.bad;
  if (c.code == kInternal || c.code == kUnknownCode)
    return std::string("status ") + code_name(c.code);
  if (std::string bad = check_curfew_message(c, m); !bad.empty()) return bad;
  if (curfew_rejection(c)) return check_failure(c, m);
  const Codes allowed = allowed_codes(c, m);
  if (c.code < 0 || c.code > 16 || !allowed[c.code]) {
    return std::string("status ") + code_name(c.code) +
           " not allowed here (allowed: " + codes_text(allowed) + ")";
  }
  return c.code == kOk ? check_success(c, m) : check_failure(c, m);
}

}  // namespace curfew::chaos
