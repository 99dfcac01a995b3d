#include "config/internal/value.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "config/duration.h"
#include "config/internal/strings.h"

namespace curfew::config::internal {
namespace {

// Levenshtein distance, for "did you mean" hints on misspelt keys.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// absl::StrJoin formatter for std::string_view elements (see strings.h).
void append_key(std::string* out, std::string_view key) { out->append(key); }

std::string join_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : absl::StrCat(parent, ".", to_absl(key));
}

}  // namespace

Value Value::root(const YAML::Node& node, const std::string& source) {
  return Value(node, "", node.Mark(), &source, node.IsDefined() && !node.IsNull());
}

void Value::fail(absl::string_view problem) const {
  // yaml-cpp positions are 0-based and are -1 for nodes it synthesised; editors count from 1.
  const int line = std::max(mark_.line, 0) + 1;
  const int column = std::max(mark_.column, 0) + 1;
  throw ConfigError(absl::StrCat(*source_, ":", line, ":", column, ": ", path_,
                                 path_.empty() ? "" : ": ", problem));
}

std::string Value::kind() const {
  if (!present_ || node_.IsNull()) return "nothing";
  if (node_.IsMap()) return "a mapping";
  if (node_.IsSequence()) return "a list";
  return absl::StrCat("\"", node_.Scalar(), "\"");
}

std::string Value::scalar() const {
  if (!present_ || !node_.IsScalar()) fail(absl::StrCat("expected a single value, got ", kind()));
  return node_.Scalar();
}

void Value::expect_keys(std::initializer_list<std::string_view> allowed) const {
  if (!present_ || !node_.IsMap()) {
    fail(absl::StrCat("expected a mapping (key: value pairs), got ", kind()));
  }
  std::vector<std::string> seen;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    const Value key(it->first, path_, it->first.Mark(), source_, true);
    if (!it->first.IsScalar()) key.fail("mapping keys must be plain names");
    const std::string& name = it->first.Scalar();
    const Value located(it->first, join_path(path_, name), it->first.Mark(), source_, true);
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string hint;
      size_t best = 3;  // Further than two edits away is a different word, not a typo.
      for (std::string_view candidate : allowed) {
        if (const size_t distance = edit_distance(name, candidate); distance < best) {
          best = distance;
          hint = absl::StrCat("did you mean \"", to_absl(candidate), "\"? ");
        }
      }
      located.fail(absl::StrCat("unknown key \"", name, "\" (", hint,
                                "allowed: ", absl::StrJoin(allowed, ", ", append_key), ")"));
    }
    // yaml-cpp keeps both copies of a repeated key and lookups see only the first; reject it.
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      located.fail(absl::StrCat("duplicate key \"", name, "\""));
    }
    seen.push_back(name);
  }
}

Value Value::get(std::string_view key) const {
  const std::string path = join_path(path_, key);
  if (present_ && node_.IsMap()) {
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key) {
        // An empty value ("timeout:") has no position of its own worth showing: point at the key.
        const YAML::Mark mark = it->second.IsNull() ? it->first.Mark() : it->second.Mark();
        return Value(it->second, path, mark, source_, true);
      }
    }
  }
  // Absent: point at the mapping that should contain the key.
  return Value(YAML::Node(), path, mark_, source_, false);
}

Value Value::require(std::string_view key, std::string_view why) const {
  Value child = get(key);
  if (!child.present_ || child.node_.IsNull()) {
    child.fail(absl::StrCat("required key missing (", to_absl(why), ")"));
  }
  return child;
}

std::vector<Value> Value::items() const {
  if (!present_ || !node_.IsSequence()) fail(absl::StrCat("expected a list, got ", kind()));
  std::vector<Value> out;
  for (size_t i = 0; i < node_.size(); ++i) {
    const YAML::Node item = node_[i];
    const YAML::Mark mark = item.IsNull() ? mark_ : item.Mark();
    out.push_back(Value(item, absl::StrCat(path_, "[", i, "]"), mark, source_, true));
  }
  return out;
}

std::string Value::as_string() const {
  std::string text = scalar();
  if (text.empty()) fail("must not be empty");
  return text;
}

std::chrono::nanoseconds Value::as_duration(bool positive) const {
  absl::StatusOr<std::chrono::nanoseconds> d = parse_duration(scalar());
  if (!d.ok()) fail(d.status().message());
  if (positive && d->count() == 0) fail("must be greater than 0s");
  return *d;
}

int64_t Value::as_int(int64_t min, int64_t max) const {
  int64_t n;
  if (!absl::SimpleAtoi(scalar(), &n)) fail(absl::StrCat("expected an integer, got ", kind()));
  if (n < min || n > max) fail(absl::StrCat("must be between ", min, " and ", max, ", got ", n));
  return n;
}

double Value::as_number(double min, double max) const {
  double n;
  if (!absl::SimpleAtod(scalar(), &n) || !std::isfinite(n)) {
    fail(absl::StrCat("expected a number, got ", kind()));
  }
  if (n < min || n > max) fail(absl::StrCat("must be between ", min, " and ", max, ", got ", n));
  return n;
}

bool Value::as_bool() const {
  const std::string text = scalar();
  if (text == "true") return true;
  if (text == "false") return false;
  fail(absl::StrCat("expected true or false, got ", kind()));
}

}  // namespace curfew::config::internal
