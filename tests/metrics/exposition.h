// A reader of the Prometheus text exposition format (0.0.4), for tests: parses a scrape into
// samples and answers "the value of this series" and "the sum over these series".
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>

namespace curfew::testing {

using Labels = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

class Exposition {
 public:
  // Throws std::runtime_error on a line it cannot parse.
  explicit Exposition(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      if (line[0] == '#') {
        std::istringstream words(line);
        std::string hash, kind, name, type;
        words >> hash >> kind >> name >> type;
        if (kind == "TYPE") types_[name] = type;
        continue;
      }
      samples_.push_back(parse_line(line));
    }
  }

  const std::vector<Sample>& samples() const { return samples_; }

  // The TYPE declared for a family ("counter", "gauge", "histogram"), or "".
  std::string type(const std::string& family) const {
    auto it = types_.find(family);
    return it == types_.end() ? "" : it->second;
  }

  // Sum of the samples called `name` whose labels include every pair of `match`.
  double sum(const std::string& name, const Labels& match = {}) const {
    double total = 0;
    for (const Sample& s : samples_) {
      if (s.name == name && includes(s.labels, match)) total += s.value;
    }
    return total;
  }

  // How many samples called `name` include every pair of `match`.
  size_t count(const std::string& name, const Labels& match = {}) const {
    size_t n = 0;
    for (const Sample& s : samples_) {
      if (s.name == name && includes(s.labels, match)) ++n;
    }
    return n;
  }

  // The value of the one series called `name` with exactly `labels`; nullopt if absent.
  std::optional<double> value(const std::string& name, const Labels& labels = {}) const {
    for (const Sample& s : samples_) {
      if (s.name == name && s.labels == labels) return s.value;
    }
    return std::nullopt;
  }

  // Like value(), but 0 when the series is absent (counters not yet incremented).
  double counter(const std::string& name, const Labels& labels = {}) const {
    return value(name, labels).value_or(0);
  }

 private:
  static bool includes(const Labels& labels, const Labels& match) {
    for (const auto& [k, v] : match) {
      auto it = labels.find(k);
      if (it == labels.end() || it->second != v) return false;
    }
    return true;
  }

  static Sample parse_line(const std::string& line) {
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          throw std::runtime_error("bad labels: " + line);
        }
        std::string key = line.substr(i, eq - i);
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) throw std::runtime_error("unterminated label value: " + line);
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) throw std::runtime_error("unterminated labels: " + line);
      ++i;  // '}'
    }
    while (i < line.size() && line[i] == ' ') ++i;
    const std::string rest = line.substr(i);
    const std::string number = rest.substr(0, rest.find(' '));
    if (number == "+Inf") {
      s.value = INFINITY;
    } else if (number == "-Inf") {
      s.value = -INFINITY;
    } else if (number == "NaN") {
      s.value = NAN;
    } else {
      char* end = nullptr;
      s.value = std::strtod(number.c_str(), &end);
      if (number.empty() || *end != '\0') throw std::runtime_error("bad value: " + line);
    }
    return s;
  }

  std::vector<Sample> samples_;
  std::map<std::string, std::string> types_;
};

// The text exposition of one collectable, as /metrics would serve it.
inline std::string expose(const prometheus::Collectable& c) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, c.Collect());
  return out.str();
}

}  // namespace curfew::testing
