// Value: a YAML node that knows where it came from, for precise config error messages.
//
// Internal to the config library: nothing outside config/ may include this (it exposes yaml-cpp).

#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"
#include "yaml-cpp/yaml.h"

namespace curfew::config::internal {

// ConfigError
//
// Thrown by Value (and the decoders built on it) for the first problem found. Its what() is the
// complete user-facing message, "FILE:LINE:COL: KEY.PATH: problem". Exceptions never escape the
// library: load.cc converts them to absl::InvalidArgumentError. They are used inside because the
// decoders read dozens of nested fields and each read would otherwise need its own status check.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Value
//
// A YAML node together with its key path (e.g. "listeners[0].routes[1].timeout") and source
// position. Accessors either return the decoded value or throw a ConfigError pointing here.
class Value {
 public:
  // Value::root()
  //
  // Wraps the document root. `source` names the file in messages and must outlive every Value
  // derived from this one.
  static Value root(const YAML::Node& node, const std::string& source);

  // Value::path()
  //
  // Returns the key path, e.g. "listeners[0].name"; empty for the root.
  const std::string& path() const { return path_; }

  // Value::present()
  //
  // Returns false if this Value stands for a key that is absent from its mapping.
  bool present() const { return present_; }

  // Value::fail()
  //
  // Throws a ConfigError "FILE:LINE:COL: PATH: problem" located at this value (or, when it is
  // absent or empty, at the key or mapping that should have held it). Takes absl::string_view so
  // that both std::string and absl::Status::message() pass straight through.
  [[noreturn]] void fail(absl::string_view problem) const;

  // Value::expect_keys()
  //
  // Requires a mapping whose keys are all in `allowed`, each at most once. Call it before get():
  // a misspelt optional key would otherwise be silently ignored.
  void expect_keys(std::initializer_list<std::string_view> allowed) const;

  // Value::get()
  //
  // Returns the child at `key`; present() is false if there is none.
  Value get(std::string_view key) const;

  // Value::require()
  //
  // Returns the child at `key`, failing with "required key missing (`why`)" if it is absent or
  // null.
  Value require(std::string_view key, std::string_view why) const;

  // Value::items()
  //
  // Requires a list and returns its elements, with paths "path[0]", "path[1]", ...
  std::vector<Value> items() const;

  // Value::as_string()
  //
  // Requires a non-empty scalar.
  std::string as_string() const;

  // Value::as_duration()
  //
  // Requires a duration such as "250ms" (see parse_duration()); `positive` also rejects zero.
  std::chrono::nanoseconds as_duration(bool positive = false) const;

  // Value::as_int()
  //
  // Requires an integer in [min, max].
  int64_t as_int(int64_t min, int64_t max) const;

  // Value::as_number()
  //
  // Requires a finite number in [min, max].
  double as_number(double min, double max) const;

  // Value::as_bool()
  //
  // Requires `true` or `false`.
  bool as_bool() const;

 private:
  Value(YAML::Node node, std::string path, YAML::Mark mark, const std::string* source, bool present)
      : node_(std::move(node)),
        path_(std::move(path)),
        mark_(mark),
        source_(source),
        present_(present) {}

  // Describes the node's kind for "expected X, got Y" messages.
  std::string kind() const;
  std::string scalar() const;

  YAML::Node node_;
  std::string path_;
  YAML::Mark mark_;
  const std::string* source_;
  bool present_;
};

}  // namespace curfew::config::internal
