#include "config/load.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "config/internal/decode.h"
#include "config/internal/value.h"
#include "yaml-cpp/yaml.h"

namespace curfew::config {

absl::StatusOr<Config> load_config_file(const std::string& path) {
  // A directory opens fine as a stream on Linux and then reads as empty; say what is wrong.
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read config file \"", path, "\": it is a directory"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read config file \"", path, "\": ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read config file \"", path, "\": ", std::strerror(errno)));
  }
  return load_config_string(text.str(), path);
}

absl::StatusOr<Config> load_config_string(std::string_view yaml, std::string source_name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::ParserException& e) {
    // e.what() repeats the position in yaml-cpp's own words; use the bare message instead.
    return absl::InvalidArgumentError(absl::StrCat(
        source_name, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ", e.msg));
  }
  try {
    const internal::Value document = internal::Value::root(root, source_name);
    if (!document.present()) document.fail("the config is empty (at least one listener is needed)");
    Config config = internal::decode_config(document);
    config.source_path = std::move(source_name);
    return config;
  } catch (const internal::ConfigError& e) {
    return absl::InvalidArgumentError(e.what());
  } catch (const YAML::Exception& e) {
    // Decoding only reads nodes it has type-checked, so this is a bug, not a user error.
    return absl::InternalError(absl::StrCat(source_name, ": unexpected YAML error: ", e.what()));
  }
}

}  // namespace curfew::config
