// The curfew binary as a child process with its admin server on 127.0.0.1:0: finds the port it
// bound (from its log) and scrapes it over HTTP.
#pragma once

#include <httplib.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "curfew_process.h"
#include "exposition.h"

namespace curfew::testing {

// Replaces `path` in one step (a rename), so the config watcher never reads half a file.
inline void replace_file(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = path.string() + ".tmp";
  write_file(tmp, text);
  std::filesystem::rename(tmp, path);
}

class CurfewWithAdmin {
 public:
  // Writes `config_text` to DIR/curfew.yaml and starts curfew on it; check ok() afterwards.
  CurfewWithAdmin(const TempDir& dir, const std::string& config_text)
      : config_(dir.path() / "curfew.yaml") {
    replace_file(config_, config_text);
    process_ = std::make_unique<CurfewProcess>(
        std::vector<std::string>{"--config", config_.string()}, dir.path() / "curfew.log");
    if (!process_->wait_output("admin (/metrics /healthz /readyz) serving")) return;
    std::smatch m;
    const std::string out = process_->output();
    if (std::regex_search(
            out, m,
            std::regex(R"(admin \(/metrics /healthz /readyz\) serving on \S+ \(port (\d+)\))"))) {
      admin_port_ = std::stoi(m[1]);
    }
  }

  bool ok() const { return admin_port_ > 0; }
  int admin_port() const { return admin_port_; }
  CurfewProcess& process() { return *process_; }
  const std::filesystem::path& config_path() const { return config_; }

  // GET `path` on the admin server: the HTTP status, or -1 if the request failed.
  int status(const std::string& path) const {
    auto res = client().Get(path);
    return res ? res->status : -1;
  }

  // GET `path` on the admin server: the whole response, or null if the request failed.
  httplib::Result get(const std::string& path) const { return client().Get(path); }

  // The body of /metrics; nullopt if the request failed.
  std::optional<std::string> metrics_text() const {
    auto res = client().Get("/metrics");
    if (!res || res->status != 200) return std::nullopt;
    return res->body;
  }

  std::optional<Exposition> scrape() const {
    auto text = metrics_text();
    if (!text) return std::nullopt;
    return Exposition(*text);
  }

  // The value of one series (0 when absent), or -1 when the scrape failed.
  double metric(const std::string& name, const Labels& labels = {}) const {
    auto e = scrape();
    return e ? e->counter(name, labels) : -1;
  }

 private:
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", admin_port_);
    c.set_connection_timeout(2);
    c.set_read_timeout(5);
    return c;
  }

  std::filesystem::path config_;
  std::unique_ptr<CurfewProcess> process_;
  int admin_port_ = 0;
};

}  // namespace curfew::testing
