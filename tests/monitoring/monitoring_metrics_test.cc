// Every metric the Grafana dashboard (ops/grafana/sechex-ledger.json) and the alerting rules
// (ops/prometheus/alerts.yml) query is one a real ledgerd exports, with the labels their
// matchers use: a metric or label renamed in the code fails here, not as an empty panel or an
// alert that can never fire. ledgerd runs on a temp data dir (support/ledgerd_fixture.h); two
// requests create the series that only exist once something happened (a route's requests, an
// authentication refusal), then /metrics is scraped once.
#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "monitoring/monitoring.h"
#include "support/ledgerd_fixture.h"
#include "support/temp_dir.h"

namespace sechex::testing::monitoring {
namespace {

namespace http = boost::beast::http;
using json = nlohmann::json;

class MonitoringMetrics : public LedgerdHttpTest {
 protected:
  // Requests that create the lazily labelled series (a route's requests and latencies, an
  // authentication refusal by reason), then the scrape. The other families are created with
  // their series at start-up (zero until something happens).
  Scrape exercised_scrape() {
    EXPECT_EQ(call(http::verb::get, "/v1/me").status, 401u);
    const auto failed = login("nobody@example.com", "Wr0ng-passw0rd!");
    EXPECT_EQ(failed.status, 401u) << failed.body;
    return Scrape::parse(metrics());
  }

  static std::vector<Expr> all_exprs() {
    const auto source = std::string(SECHEX_SOURCE_DIR);
    auto exprs =
        dashboard_exprs(json::parse(read_file(source + "/ops/grafana/sechex-ledger.json")));
    const auto rules = rule_exprs(read_file(source + "/ops/prometheus/alerts.yml"));
    EXPECT_FALSE(exprs.empty());
    EXPECT_FALSE(rules.empty());
    exprs.insert(exprs.end(), rules.begin(), rules.end());
    return exprs;
  }
};

TEST_F(MonitoringMetrics, EveryMetricAndLabelOfTheDashboardAndTheAlertsIsExported) {
  start();
  const auto scrape = exercised_scrape();
  ASSERT_GT(scrape.samples.count("sechex_http_requests_total"), 0u) << metrics();

  std::set<std::string> used;
  for (const auto& e : all_exprs()) {
    const auto sels = selectors(e.text);
    EXPECT_FALSE(sels.empty()) << e.where << " uses no metric: " << e.text;
    for (const auto& s : sels) {
      used.insert(s.name);
      const auto problem = scrape.problem(s);
      EXPECT_EQ(problem, "") << e.where << ": " << e.text;
    }
  }
  // The reader found the families the dashboard is about (a reader that found nothing would
  // pass the loop above).
  for (const std::string name :
       {"sechex_http_requests_total", "sechex_exclusive_activations_total",
        "sechex_exclusive_refusals_total", "sechex_exclusive_proof_check_seconds_bucket",
        "sechex_command_append_seconds_bucket", "sechex_projection_lag_records",
        "sechex_webhook_deliveries_total", "sechex_mail_delivery_failures_total"}) {
    EXPECT_EQ(used.count(name), 1u) << name << " is no longer queried";
  }
  // And a renamed metric would be caught by this very scrape.
  EXPECT_NE(scrape.problem({"sechex_webhook_delivery_total", {}}), "");
  EXPECT_NE(scrape.problem({"sechex_webhook_deliveries_total", {"result"}}), "");
}

}  // namespace
}  // namespace sechex::testing::monitoring
