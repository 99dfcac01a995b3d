// curfew: a gRPC sidecar that enforces deadlines and propagates cancellation.
//
//   curfew --config FILE         serve until SIGTERM/SIGINT; SIGHUP or a change of FILE reloads
//   curfew --check-config FILE   validate, print the effective routes, exit 0 (valid) or 1
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>

#include "app/config_watch.h"
#include "config/config.h"
#include "config/load.h"
#include "metrics/admin_server.h"
#include "metrics/call_metrics.h"
#include "metrics/connection_metrics.h"
#include "metrics/endpoint_metrics.h"
#include "metrics/server_metrics.h"
#include "metrics/upstreams_json.h"
#include "runtime/process.h"
#include "sidecar/log.h"
#include "sidecar/sidecar.h"

#if CURFEW_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

namespace {

// The allocator this binary runs on (CURFEW_JEMALLOC in CMakeLists.txt), with its version.
std::string allocator_name() {
#if CURFEW_JEMALLOC
  const char* version = nullptr;
  size_t size = sizeof version;
  if (mallctl("version", &version, &size, nullptr, 0) == 0 && version != nullptr)
    return std::string("jemalloc ") + version;
  return "jemalloc";
#else
  return "glibc";
#endif
}

using curfew::sidecar::log;
using curfew::sidecar::LogLevel;

constexpr char kUsage[] =
    "usage: curfew --config FILE [--log-level debug|info|warning|error]\n"
    "       curfew --check-config FILE\n"
    "       curfew --help | --version\n"
    "\n"
    "  --config FILE        serve the listeners of FILE until SIGTERM or SIGINT (graceful drain);\n"
    "                       SIGHUP, or a change of FILE on disk, reloads it (an invalid file\n"
    "                       keeps the current configuration serving)\n"
    "  --check-config FILE  validate FILE, print its effective routes, exit 0 if valid, 1 if not\n"
    "  --log-level LEVEL    default: info\n";

int check_config(const std::string& path) {
  auto config = curfew::config::load_config_file(path);
  if (!config.ok()) {
    std::cerr << "curfew: invalid configuration: " << config.status().message() << "\n";
    return 1;
  }
  std::cout << curfew::config::describe(*config);
  return 0;
}

// Applies the file at `path` if it is valid; counts the outcome in curfew_config_reloads_total.
void reload(curfew::sidecar::Sidecar& sidecar, curfew::metrics::ServerMetrics& metrics,
            const std::string& path, const std::string& admin_address, const char* why) {
  auto refuse = [&](auto reason) {  // reason: a status message
    metrics.reload_failed();
    log(LogLevel::kError,
        std::string("reload (") + why +
            ") refused, the previous configuration keeps serving: " + std::string(reason));
  };
  auto config = curfew::config::load_config_file(path);
  if (!config.ok()) return refuse(config.status().message());
  const bool admin_moved = config->admin.address != admin_address;
  const int workers_before = sidecar.config()->worker_threads;
  const bool workers_changed = config->worker_threads != workers_before;
  if (auto status = sidecar.reload(*std::move(config)); !status.ok())
    return refuse(status.message());
  metrics.reload_succeeded();
  log(LogLevel::kInfo, std::string("configuration reloaded (") + why + ") from " + path);
  if (admin_moved) {
    log(LogLevel::kWarning, "admin.address changed; the admin server stays on " + admin_address +
                                " until curfew restarts");
  }
  if (workers_changed) {
    log(LogLevel::kWarning,
        "workers changed; the listeners keep " +
            (workers_before == 0 ? std::string("one worker per CPU the container may use")
                                 : std::to_string(workers_before) + " workers") +
            " until curfew restarts");
  }
}

int serve(const std::string& path) {
  // Signals are taken synchronously by this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto config = curfew::config::load_config_file(path);
  if (!config.ok()) {
    std::cerr << "curfew: invalid configuration: " << config.status().message() << "\n";
    return 1;
  }
  // Declared in this order so that they go in reverse: the admin server (which scrapes the
  // metrics and asks the sidecar whether it is ready), then the sidecar (whose loop threads
  // report to the call and connection metrics), then the metrics.
  curfew::metrics::ServerMetrics server_metrics(CURFEW_VERSION);
  curfew::metrics::CallMetrics call_metrics;
  curfew::metrics::ConnectionMetrics connection_metrics;
  const std::string admin_address = config->admin.address;
  auto sidecar =
      curfew::sidecar::Sidecar::start(*std::move(config), &call_metrics, &connection_metrics);
  if (!sidecar.ok()) {
    std::cerr << "curfew: cannot start: " << sidecar.status().message() << "\n";
    return 1;
  }
  for (const auto& l : (*sidecar)->config()->listeners) {
    log(LogLevel::kInfo, "listener '" + l.name + "' serving on " + l.address + " (port " +
                             std::to_string((*sidecar)->port(l.name)) + ")");
  }
  // Ready: the configuration is loaded (the sidecar exists) and SIGTERM has not come.
  std::atomic<bool> draining{false};
  auto ready = [&draining, s = sidecar->get()] {
    return !draining.load(std::memory_order_relaxed) && s->ready();
  };
  server_metrics.set_readiness(ready);
  curfew::metrics::EndpointMetrics endpoint_metrics(
      [s = sidecar->get()] { return s->upstream_reports(); });
  auto admin = curfew::metrics::AdminServer::start(
      {.address = admin_address,
       .collectables = {&server_metrics, &call_metrics, &connection_metrics, &endpoint_metrics},
       .ready = ready,
       .upstreams = [s = sidecar->get()] {
         return curfew::metrics::upstreams_json(s->upstream_reports());
       }});
  if (!admin.ok()) {
    std::cerr << "curfew: cannot start: " << admin.status().message() << "\n";
    return 1;
  }
  log(LogLevel::kInfo, "admin (/metrics /healthz /readyz) serving on " + admin_address + " (port " +
                           std::to_string((*admin)->port()) + ")");
  log(LogLevel::kInfo, "ready");

  curfew::sidecar::ConfigWatch watch(path);
  for (;;) {
    timespec poll{0, 500 * 1000 * 1000};
    const int sig = sigtimedwait(&signals, nullptr, &poll);
    if (sig == SIGTERM || sig == SIGINT) {
      log(LogLevel::kInfo, std::string("received ") + strsignal(sig) + ": draining");
      draining = true;  // /readyz answers 503 from now on; /metrics keeps serving during the drain
      (*sidecar)->drain();
      (*admin)->stop();
      log(LogLevel::kInfo, "drained, exiting");
      return 0;
    }
    if (sig == SIGHUP) {
      reload(**sidecar, server_metrics, path, admin_address, "SIGHUP");
    } else if (watch.changed()) {
      reload(**sidecar, server_metrics, path, admin_address, "file changed");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  curfew::rt::disable_abseil_deadlock_detection();  // runtime/process.h says why
  std::optional<std::string> config_path, check_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) -> std::optional<std::string> {
      if (i + 1 >= argc) {
        std::cerr << "curfew: " << flag << " needs a value\n" << kUsage;
        return std::nullopt;
      }
      return std::string(argv[++i]);
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "--version") {
      std::cout << "curfew " CURFEW_VERSION "\nallocator: " << allocator_name() << "\n";
      return 0;
    } else if (arg == "--config") {
      config_path = value("--config");
      if (!config_path) return 2;
    } else if (arg == "--check-config") {
      check_path = value("--check-config");
      if (!check_path) return 2;
    } else if (arg == "--log-level") {
      auto level_text = value("--log-level");
      LogLevel level;
      if (!level_text || !curfew::sidecar::parse_log_level(*level_text, &level)) {
        std::cerr << "curfew: --log-level must be debug, info, warning or error\n";
        return 2;
      }
      curfew::sidecar::set_log_level(level);
    } else {
      std::cerr << "curfew: unknown argument '" << arg << "'\n" << kUsage;
      return 2;
    }
  }
  if (check_path) return check_config(*check_path);
  if (config_path) return serve(*config_path);
  std::cerr << kUsage;
  return 2;
}
