// curfew and the real Prometheus tools (Debian's prometheus package):
//   - `promtool check metrics` accepts a live scrape of the curfew binary;
//   - a Prometheus server started here scrapes curfew on 127.0.0.1 every second, and its HTTP API
//     gives back exactly the numbers the test caused (and every sample curfew exposes), evaluates
//     the alert rules of deploy/prometheus without error and runs every dashboard query.
#include <httplib.h>

#include <chrono>
#include <cmath>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "child_process.h"
#include "curfew/demo/demo.grpc.pb.h"
#include "curfew_admin_process.h"
#include "dashboard.h"
#include "demo_backend.h"
#include "grpc/testing/test.grpc.pb.h"

namespace curfew::testing {
namespace {

using namespace std::chrono_literals;

const std::string kDeploy = std::string(CURFEW_SOURCE_DIR) + "/deploy/prometheus";

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return pred();
}

std::string curfew_config(int listen_port, int backend_port) {
  return R"(
admin: {address: 127.0.0.1:0}
listeners:
  - name: inbound
    address: 127.0.0.1:)" +
         std::to_string(listen_port) + R"(
    routes:
      - {name: slow, match: {method: /curfew.demo.Demo/Slow}, upstream: demo, timeout: 200ms}
      - {name: guarded, match: {method: /curfew.demo.Demo/Stream}, upstream: demo, min_budget: 300ms}
      - {name: demo, match: {service: curfew.demo.Demo}, upstream: demo, timeout: 5s}
upstreams:
  - {name: demo, endpoints: [127.0.0.1:)" +
         std::to_string(backend_port) + "]}\n";
}

// The numbers the traffic below causes.
constexpr int kEchoes = 6, kNotFound = 2, kRouteTimeouts = 2, kFastFails = 2, kUnmatched = 3;
constexpr int kCalls = kEchoes + kNotFound + kRouteTimeouts + kFastFails + kUnmatched;

class WithCurfew : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = DemoBackend::Start("127.0.0.1:0");
    ASSERT_NE(backend_, nullptr);
    port_ = free_port();
    curfew_ = std::make_unique<CurfewWithAdmin>(dir_, curfew_config(port_, backend_->port()));
    ASSERT_TRUE(curfew_->ok()) << curfew_->process().output();
    ASSERT_TRUE(curfew_->process().wait_listening(port_)) << curfew_->process().output();
  }

  // Successes, errors, route timeouts, min_budget fast-fails, unknown methods.
  void send_traffic() {
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                       grpc::InsecureChannelCredentials());
    auto demo = demo::Demo::NewStub(channel);
    auto other = grpc::testing::TestService::NewStub(channel);
    for (int i = 0; i < kEchoes; ++i) {
      grpc::ClientContext ctx;
      demo::EchoRequest request;
      demo::EchoReply reply;
      EXPECT_TRUE(demo->Echo(&ctx, request, &reply).ok());
    }
    for (int i = 0; i < kNotFound; ++i) {
      grpc::ClientContext ctx;
      demo::FailRequest request;
      request.set_code(grpc::StatusCode::NOT_FOUND);
      demo::EchoReply reply;
      EXPECT_EQ(demo->Fail(&ctx, request, &reply).error_code(), grpc::StatusCode::NOT_FOUND);
    }
    for (int i = 0; i < kRouteTimeouts; ++i) {
      grpc::ClientContext ctx;
      demo::SlowRequest request;
      request.set_delay_ms(5000);
      demo::EchoReply reply;
      EXPECT_EQ(demo->Slow(&ctx, request, &reply).error_code(),
                grpc::StatusCode::DEADLINE_EXCEEDED);
    }
    for (int i = 0; i < kFastFails; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 100ms);
      demo::EchoRequest request;
      auto reader = demo->Stream(&ctx, request);
      demo::EchoReply reply;
      while (reader->Read(&reply)) {
      }
      EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    }
    for (int i = 0; i < kUnmatched; ++i) {
      grpc::ClientContext ctx;
      grpc::testing::Empty request, reply;
      EXPECT_EQ(other->EmptyCall(&ctx, request, &reply).error_code(),
                grpc::StatusCode::UNIMPLEMENTED);
    }
  }

  // Waits until curfew has reported every call (a report lands just after the caller's status).
  bool all_reported() {
    return eventually(
        [&] {
          auto e = curfew_->scrape();
          return e && e->sum("curfew_requests_total") == kCalls;
        },
        10s);
  }

  TempDir dir_;
  std::unique_ptr<DemoBackend> backend_;
  int port_ = 0;
  std::unique_ptr<CurfewWithAdmin> curfew_;
};

// ---- promtool check metrics -------------------------------------------------------------------

TEST_F(WithCurfew, PromtoolCheckMetricsAcceptsALiveScrape) {
  send_traffic();
  ASSERT_TRUE(all_reported());
  auto text = curfew_->metrics_text();
  ASSERT_TRUE(text);
  // Every family has samples worth linting: per-call series exist now.
  Exposition e(*text);
  ASSERT_GT(e.count("curfew_requests_total"), 0u);
  ASSERT_GT(e.count("curfew_timeouts_total"), 0u);
  ASSERT_GT(e.count("curfew_request_duration_seconds_bucket"), 0u);

  const auto scrape_file = dir_.path() / "scrape.txt";
  write_file(scrape_file, *text);
  CommandResult r = run_command({PROMTOOL, "check", "metrics"}, dir_, scrape_file);
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n--- scrape:\n" << *text;
  EXPECT_EQ(r.output, "") << "promtool reports lint problems";
}

TEST(Promtool, CheckMetricsWouldCatchAProblem) {
  // The check above is meaningful: promtool does reject a badly named counter.
  TempDir dir;
  const auto bad = dir.path() / "bad.txt";
  write_file(bad, "# HELP curfew_bad Bad.\n# TYPE curfew_bad counter\ncurfew_bad 1\n");
  CommandResult r = run_command({PROMTOOL, "check", "metrics"}, dir, bad);
  EXPECT_NE(r.exit_code, 0) << r.output;
}

// ---- a real Prometheus server -----------------------------------------------------------------

// Prometheus on 127.0.0.1:<free port>, storage in a temp dir, scraping `targets` every second
// and evaluating curfew's alert rules every second.
class Prometheus {
 public:
  Prometheus(const TempDir& dir, int curfew_admin_port) : port_(free_port()) {
    const auto config = dir.path() / "prometheus.yml";
    write_file(config, R"(global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - )" + kDeploy + R"(/curfew-alerts.yaml
scrape_configs:
  - job_name: curfew
    static_configs:
      - targets: ["127.0.0.1:)" +
                           std::to_string(curfew_admin_port) + R"("]
)");
    process_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{PROMETHEUS, "--config.file=" + config.string(),
                                 "--storage.tsdb.path=" + (dir.path() / "data").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                 "--log.level=warn"},
        dir.path() / "prometheus.log");
  }

  // Waits (bounded) until the server answers /-/ready.
  bool wait_ready(std::chrono::milliseconds limit = 60s) {
    return eventually(
        [&] {
          auto res = client().Get("/-/ready");
          return res && res->status == 200;
        },
        limit);
  }

  // GET /api/v1/query?query=`expr`: the body, or nullopt on a transport error.
  std::optional<std::string> query_raw(const std::string& expr) {
    auto res = client().Get("/api/v1/query", httplib::Params{{"query", expr}}, httplib::Headers{});
    if (!res) return std::nullopt;
    return res->body;
  }

  // The value of an instant query returning one sample; nullopt if none (or an error).
  std::optional<double> query(const std::string& expr) {
    auto body = query_raw(expr);
    if (!body || body->find("\"status\":\"success\"") == std::string::npos) return std::nullopt;
    std::smatch m;
    static const std::regex kValue(R"re("value":\[[0-9.e+]+,"([^"]+)"\])re");
    std::vector<double> values;
    for (auto it = std::sregex_iterator(body->begin(), body->end(), kValue);
         it != std::sregex_iterator(); ++it) {
      values.push_back(std::stod((*it)[1]));
    }
    if (values.size() != 1) return std::nullopt;
    return values[0];
  }

  std::optional<std::string> get(const std::string& path) {
    auto res = client().Get(path);
    if (!res || res->status != 200) return std::nullopt;
    return res->body;
  }

  std::string output() const { return process_->output(); }

 private:
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(2);
    c.set_read_timeout(10);
    return c;
  }

  int port_;
  std::unique_ptr<ChildProcess> process_;
};

// A PromQL selector for exactly this series.
std::string selector(const Sample& s) {
  std::string out = s.name + "{";
  bool first = true;
  for (const auto& [k, v] : s.labels) {
    if (!first) out += ",";
    first = false;
    out += k + "=\"";
    for (char c : v) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += "\"";
  }
  return out + "}";
}

bool same_number(double a, double b) {
  if (a == b) return true;
  return std::fabs(a - b) <= 1e-9 * std::max(std::fabs(a), std::fabs(b));
}

TEST_F(WithCurfew, PrometheusScrapesAndFindsTheSameNumbers) {
  send_traffic();
  curfew_->process().signal(SIGHUP);  // one successful reload
  ASSERT_TRUE(eventually(
      [&] {
        return curfew_->metric("curfew_config_reloads_total", {{"result", "ok"}}) == 1;
      },
      10s))
      << curfew_->process().output();
  ASSERT_TRUE(all_reported());

  // What curfew itself says, first: exactly what the traffic caused.
  auto direct = curfew_->scrape();
  ASSERT_TRUE(direct);
  const std::pair<std::string, double> expected[] = {
      {"sum(curfew_requests_total)", kCalls},
      {R"(sum(curfew_requests_total{route="demo",grpc_code="OK"}))", kEchoes},
      {R"(sum(curfew_requests_total{route="demo",grpc_code="NOT_FOUND"}))", kNotFound},
      {R"(sum(curfew_requests_total{route="unmatched",grpc_code="UNIMPLEMENTED"}))", kUnmatched},
      {R"(sum(curfew_timeouts_total{route="slow",cause="route"}))", kRouteTimeouts},
      {R"(sum(curfew_timeouts_total{route="guarded",cause="budget"}))", kFastFails},
      {"sum(curfew_timeouts_total)", kRouteTimeouts + kFastFails},
      {R"(sum(curfew_cancellations_total{route="slow",cause="deadline"}))", kRouteTimeouts},
      {"sum(curfew_cancellations_total)", kRouteTimeouts},
      {"sum(curfew_upstream_requests_total)", kEchoes + kNotFound + kRouteTimeouts},
      {"sum(curfew_request_duration_seconds_count)", kCalls},
      {"sum(curfew_deadline_budget_seconds_count)", kEchoes + kNotFound + kRouteTimeouts},
      {"sum(curfew_inflight_requests)", 0},
      {R"(sum(curfew_config_reloads_total{result="ok"}))", 1},
      {R"(sum(curfew_config_reloads_total{result="error"}))", 0},
      {"sum(curfew_ready)", 1},
      {"count(curfew_build_info)", 1},
  };
  auto direct_value = [&](const std::string& expr) -> double {
    // The direct scrape answers the same simple sums/counts the test asks Prometheus.
    std::smatch m;
    static const std::regex kExpr(R"re((sum|count)\((\w+)(?:\{(.*)\})?\))re");
    EXPECT_TRUE(std::regex_match(expr, m, kExpr)) << expr;
    Labels labels;
    const std::string matchers = m[3];
    static const std::regex kMatcher(R"re((\w+)="([^"]*)")re");
    for (auto it = std::sregex_iterator(matchers.begin(), matchers.end(), kMatcher);
         it != std::sregex_iterator(); ++it) {
      labels[(*it)[1]] = (*it)[2];
    }
    return m[1] == "sum" ? direct->sum(m[2], labels)
                         : static_cast<double>(direct->count(m[2], labels));
  };
  for (const auto& [expr, value] : expected) {
    EXPECT_EQ(direct_value(expr), value) << "curfew's own /metrics: " << expr;
  }

  // Prometheus scrapes curfew; once its latest scrape has everything, it must agree.
  Prometheus prometheus(dir_, curfew_->admin_port());
  ASSERT_TRUE(prometheus.wait_ready()) << prometheus.output();
  ASSERT_TRUE(eventually([&] { return prometheus.query(R"(up{job="curfew"})") == 1.0; }, 30s))
      << prometheus.query_raw(R"(up{job="curfew"})").value_or("(no answer)") << "\n"
      << prometheus.output();
  ASSERT_TRUE(
      eventually([&] { return prometheus.query("sum(curfew_requests_total)") == kCalls; }, 30s))
      << prometheus.query_raw("sum(curfew_requests_total)").value_or("(no answer)");
  for (const auto& [expr, value] : expected) {
    EXPECT_EQ(prometheus.query(expr), value)
        << expr << " -> " << prometheus.query_raw(expr).value_or("");
  }

  // And every sample curfew exposes, series by series (nothing moves any more).
  int compared = 0;
  for (const Sample& s : direct->samples()) {
    if (s.name == "process_start_time_seconds") continue;  // a float timestamp: compared below
    const auto got = prometheus.query(selector(s));
    ASSERT_TRUE(got) << selector(s) << " -> " << prometheus.query_raw(selector(s)).value_or("");
    EXPECT_TRUE(same_number(*got, s.value))
        << selector(s) << ": prometheus " << *got << ", curfew " << s.value;
    ++compared;
  }
  EXPECT_GT(compared, 100);
  EXPECT_TRUE(same_number(*prometheus.query("process_start_time_seconds"),
                          *direct->value("process_start_time_seconds")));
}

// Every expression the Grafana dashboard runs, with its variables set to "all".
std::vector<std::string> dashboard_queries() {
  std::string error;
  auto dashboard = load_dashboard(kDeploy + "/curfew-dashboard.json", &error);
  EXPECT_TRUE(dashboard) << error;
  std::vector<std::string> exprs;
  if (!dashboard) return exprs;
  for (const auto& panel : dashboard->panels) {
    for (const auto& query : panel.queries) {
      std::string expr = query.expr;
      for (const auto& [var, value] :
           {std::pair<std::string, std::string>{"$__rate_interval", "1m"},
            {"$__interval", "15s"},
            {"$job", ".*"},
            {"$listener", ".*"},
            {"$route", ".*"}}) {
        for (size_t at; (at = expr.find(var)) != std::string::npos;)
          expr.replace(at, var.size(), value);
      }
      exprs.push_back(expr);
    }
  }
  return exprs;
}

TEST_F(WithCurfew, PrometheusEvaluatesTheAlertRulesAndTheDashboardQueries) {
  send_traffic();
  ASSERT_TRUE(all_reported());
  Prometheus prometheus(dir_, curfew_->admin_port());
  ASSERT_TRUE(prometheus.wait_ready()) << prometheus.output();
  ASSERT_TRUE(
      eventually([&] { return prometheus.query("sum(curfew_requests_total)") == kCalls; }, 30s));

  // Each rule evaluated at least once, none with an error.
  std::string rules;
  ASSERT_TRUE(eventually(
      [&] {
        auto body = prometheus.get("/api/v1/rules");
        if (!body) return false;
        rules = *body;
        return rules.find("\"health\":\"unknown\"") == std::string::npos &&
               rules.find("\"health\":\"ok\"") != std::string::npos;
      },
      30s))
      << rules;
  EXPECT_EQ(rules.find("\"health\":\"err\""), std::string::npos) << rules;
  for (const char* alert :
       {"CurfewHighTimeoutRatio", "CurfewHighFanoutFailureRatio", "CurfewCancellationStorm",
        "CurfewRejectingCalls", "CurfewConfigReloadFailing", "CurfewNotReady"}) {
    EXPECT_NE(rules.find(std::string("\"name\":\"") + alert + "\""), std::string::npos) << alert;
  }

  // The dashboard's queries are valid PromQL over curfew's metrics.
  const auto exprs = dashboard_queries();
  ASSERT_GE(exprs.size(), 10u);
  for (const std::string& expr : exprs) {
    auto body = prometheus.query_raw(expr);
    ASSERT_TRUE(body) << expr;
    EXPECT_NE(body->find("\"status\":\"success\""), std::string::npos) << expr << "\n" << *body;
  }
  // The in-flight panel's query sees curfew's series.
  EXPECT_EQ(prometheus.query(R"(sum(curfew_inflight_requests{job=~".*"}))"), 0.0);
}

}  // namespace
}  // namespace curfew::testing
