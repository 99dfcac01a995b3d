// Loading curfew's YAML configuration.

#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "config/config.h"

namespace curfew::config {

// load_config_file()
//
// Reads and validates the YAML config at `path`. On success every default is filled in and
// `source_path` is `path`. Every failure is an InvalidArgumentError; problems in the file read
// "FILE:LINE:COL: KEY.PATH: problem", e.g.
//   curfew.yaml:12:18: listeners[0].routes[1].timeout: bad duration "25" (expected a number
//   followed by ms, s or m)
// and an unreadable file is reported with its name and the OS error.
absl::StatusOr<Config> load_config_file(const std::string& path);

// load_config_string()
//
// As load_config_file(), for YAML already in memory; `source_name` stands in for the file name
// in messages and in `source_path`.
absl::StatusOr<Config> load_config_string(std::string_view yaml, std::string source_name);

}  // namespace curfew::config
