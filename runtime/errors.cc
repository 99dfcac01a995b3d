#include "runtime/errors.h"

namespace curfew::rt {

ErrorGroup::ErrorGroup(std::vector<Failure> failures) : failures_(std::move(failures)) {
  what_ = std::to_string(failures_.size()) + (failures_.size() == 1 ? " failure" : " failures") +
          " in task group:";
  for (const Failure& f : failures_) {
    what_ += f.task_name.empty() ? " [body] " : " [task '" + f.task_name + "'] ";
    what_ += describe_error(f.error);
    what_ += ";";
  }
  what_.pop_back();
}

std::string describe_error(const std::exception_ptr& error) {
  if (!error) return "no error";
  try {
    std::rethrow_exception(error);
  } catch (const CancelledError& e) {
    return e.reason().empty() ? "cancelled" : "cancelled: " + e.reason();
  } catch (const FatalError& e) {
    return std::string("fatal: ") + e.what();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
}

bool is_cancellation(const std::exception_ptr& error) noexcept {
  if (!error) return false;
  try {
    std::rethrow_exception(error);
  } catch (const CancelledError&) {
    return true;
  } catch (...) {
    return false;
  }
}

bool is_fatal(const std::exception_ptr& error) noexcept {
  if (!error) return false;
  try {
    std::rethrow_exception(error);
  } catch (const FatalError&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace curfew::rt
