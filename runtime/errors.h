// Error values of the runtime: cancellation, timeouts, aggregated failures and fatal stops.
//
// CancelledError and FatalError deliberately do NOT derive from std::exception, just as Python's
// CancelledError and KeyboardInterrupt are BaseExceptions: a `catch (const std::exception&)` in
// user code cannot swallow a cancellation by accident. Only `catch (...)` or a catch of the exact
// type sees them, and such code must rethrow.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace curfew::rt {

// Thrown at a suspension point of a task whose cancellation was requested.
class CancelledError {
 public:
  explicit CancelledError(std::string reason = {}) : reason_(std::move(reason)) {}
  // The reason given to TaskState::cancel(); preserved as it propagates.
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string reason_;
};

// A condition that must stop the program's structure rather than be aggregated (the analogue of
// KeyboardInterrupt / SystemExit): task groups propagate it as itself, never inside an ErrorGroup.
class FatalError {
 public:
  explicit FatalError(std::string what) : what_(std::move(what)) {}
  virtual ~FatalError() = default;
  const char* what() const noexcept { return what_.c_str(); }

 private:
  std::string what_;
};

// Raised by a timeout/deadline scope that expired. cause() is the cancellation that interrupted
// the body (asyncio: `raise TimeoutError from exc_val`).
class TimeoutError : public std::runtime_error {
 public:
  TimeoutError(std::string what, std::exception_ptr cause)
      : std::runtime_error(std::move(what)), cause_(std::move(cause)) {}
  const std::exception_ptr& cause() const noexcept { return cause_; }

 private:
  std::exception_ptr cause_;
};

// One failure inside an ErrorGroup: the name of the task that raised it (empty for the group's
// body) and the error itself.
struct Failure {
  std::string task_name;
  std::exception_ptr error;
};

// Every failure of a task group, like Python's ExceptionGroup. Cancellations caused by the group
// are never listed; nested groups stay nested (an inner group's ErrorGroup is one entry).
class ErrorGroup : public std::exception {
 public:
  explicit ErrorGroup(std::vector<Failure> failures);
  const std::vector<Failure>& failures() const noexcept { return failures_; }
  // "N failures in task group: [child 'a'] what; [body] what; ..."
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  std::vector<Failure> failures_;
  std::string what_;
};

// Text of any error value the runtime deals with, for messages and logs.
std::string describe_error(const std::exception_ptr& error);

// True when `error` holds a CancelledError.
bool is_cancellation(const std::exception_ptr& error) noexcept;

// True when `error` holds a FatalError.
bool is_fatal(const std::exception_ptr& error) noexcept;

}  // namespace curfew::rt
