// The dashboard and the alerting rules as files (000 NFR-06): promtool checks the rules and runs
// their unit tests (ops/prometheus/alerts_test.yml), every alert has a severity, a summary, a
// description and tests where it fires and where it does not, the dashboard is a Grafana 10/11
// model on the ${datasource} and $instance variables, and its PromQL passes promtool. Also the
// reader of tests/monitoring/monitoring.h, which monitoring_metrics_test relies on to find the
// metric names in those expressions. No ledgerd here: monitoring_metrics_test checks the names
// against a running one.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "monitoring/monitoring.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace sechex::testing::monitoring {
namespace {

using json = nlohmann::json;

const std::string kRules = std::string(SECHEX_SOURCE_DIR) + "/ops/prometheus/alerts.yml";
const std::string kRuleTests = std::string(SECHEX_SOURCE_DIR) + "/ops/prometheus/alerts_test.yml";
const std::string kDashboard = std::string(SECHEX_SOURCE_DIR) + "/ops/grafana/sechex-ledger.json";

// promtool with `args`; a test failure when it is missing (Debian's prometheus package, which
// ops/setup installs from ops/apt-packages.txt).
RunResult promtool(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {SECHEX_PROMTOOL};
  argv.insert(argv.end(), args.begin(), args.end());
  if (!std::filesystem::exists(SECHEX_PROMTOOL)) {
    ADD_FAILURE() << "promtool not found (" << SECHEX_PROMTOOL
                  << "): install Debian's prometheus package (ops/setup) and re-run cmake";
    return {};
  }
  return run(argv);
}

json dashboard() {
  auto j = json::parse(read_file(kDashboard), nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << kDashboard << " is not JSON";
  return j.is_discarded() ? json::object() : j;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

std::string trimmed(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

TEST(AlertRules, PassPromtoolCheckRules) {
  const auto r = promtool({"check", "rules", kRules});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("SUCCESS"), std::string::npos) << r.out << r.err;
}

TEST(AlertRules, PassTheirPromtoolUnitTests) {
  const auto r = promtool({"test", "rules", kRuleTests});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("SUCCESS"), std::string::npos) << r.out << r.err;
}

// Each `- alert:` block has labels.severity (critical, warning or info) and both annotations,
// and alerts_test.yml has, for each alert, a case where it fires (exp_alerts with an entry) and
// one where it stays silent (exp_alerts: []), and names no alert that does not exist (promtool
// would pass a silent case of a misspelt name).
TEST(AlertRules, EveryAlertHasSeveritySummaryDescriptionAndFiringAndSilentTests) {
  std::map<std::string, std::string> blocks;  // alert -> its lines
  std::string current;
  for (const auto& line : lines_of(read_file(kRules))) {
    const auto t = trimmed(line);
    if (t.rfind("- alert:", 0) == 0) {
      current = trimmed(t.substr(8));
      EXPECT_EQ(blocks.count(current), 0u) << "alert " << current << " is defined twice";
      blocks[current];
      continue;
    }
    if (t.rfind("- name:", 0) == 0 || t.rfind("- record:", 0) == 0) current.clear();
    if (!current.empty()) blocks[current] += t + "\n";
  }
  ASSERT_FALSE(blocks.empty()) << "no alert in " << kRules;
  for (const auto& [alert, text] : blocks) {
    EXPECT_TRUE(std::regex_search(text, std::regex(R"(\nseverity: (critical|warning|info)\n)")))
        << alert << " has no severity label critical, warning or info:\n"
        << text;
    EXPECT_NE(text.find("\nsummary: "), std::string::npos) << alert << " has no summary";
    EXPECT_NE(text.find("\ndescription: "), std::string::npos) << alert << " has no description";
  }

  std::set<std::string> fires, silent;
  const auto tests = lines_of(read_file(kRuleTests));
  for (std::size_t n = 0; n < tests.size(); ++n) {
    const auto t = trimmed(tests[n]);
    if (t.rfind("alertname:", 0) != 0) continue;
    const auto alert = trimmed(t.substr(10));
    EXPECT_EQ(blocks.count(alert), 1u)
        << "alerts_test.yml tests " << alert << ", which alerts.yml does not define";
    std::size_t k = n + 1;
    while (k < tests.size() && trimmed(tests[k]).rfind("exp_alerts:", 0) != 0) ++k;
    ASSERT_LT(k, tests.size()) << "no exp_alerts after alertname " << alert;
    const auto value = trimmed(trimmed(tests[k]).substr(11));
    if (value == "[]") {
      silent.insert(alert);
    } else if (value.empty() && k + 1 < tests.size() &&
               trimmed(tests[k + 1]).rfind("- exp_labels:", 0) == 0) {
      fires.insert(alert);
    }
  }
  for (const auto& [alert, text] : blocks) {
    EXPECT_EQ(fires.count(alert), 1u) << alert << " has no test where it fires";
    EXPECT_EQ(silent.count(alert), 1u) << alert << " has no test where it stays silent";
  }
}

TEST(AlertRules, EveryRuleExpressionIsReadAndUsesAMetric) {
  std::size_t rules = 0;
  const auto exprs = rule_exprs(read_file(kRules), &rules);
  EXPECT_GT(rules, 0u);
  EXPECT_EQ(exprs.size(), rules) << "an expression of " << kRules << " was not read";
  for (const auto& e : exprs) {
    EXPECT_FALSE(selectors(e.text).empty()) << e.where << ": " << e.text;
  }
}

TEST(Dashboard, IsAGrafanaModelOnTheDatasourceAndInstanceVariables) {
  const auto d = dashboard();
  ASSERT_TRUE(d.is_object());
  // Grafana 10.0 writes schemaVersion 38, 11.x 39 to 41.
  EXPECT_GE(d.value("schemaVersion", 0), 38);
  EXPECT_LE(d.value("schemaVersion", 0), 41);
  EXPECT_FALSE(d.value("uid", "").empty());
  EXPECT_FALSE(d.value("title", "").empty());
  EXPECT_TRUE(d["id"].is_null()) << "an id ties the file to one Grafana's database";

  std::map<std::string, json> vars;
  for (const auto& v : d["templating"]["list"]) vars[v.value("name", "")] = v;
  ASSERT_EQ(vars.count("datasource"), 1u);
  EXPECT_EQ(vars["datasource"]["type"], "datasource");
  EXPECT_EQ(vars["datasource"]["query"], "prometheus");
  ASSERT_EQ(vars.count("instance"), 1u);
  EXPECT_EQ(vars["instance"]["type"], "query");
  EXPECT_EQ(vars["instance"]["datasource"]["uid"], "${datasource}");

  std::set<int> ids;
  std::size_t targets = 0;
  for (const auto& p : d["panels"]) {
    const auto id = p.value("id", 0);
    const auto title = p.value("title", "");
    EXPECT_TRUE(ids.insert(id).second) << "panel id " << id << " twice";
    EXPECT_FALSE(title.empty()) << "panel " << id << " has no title";
    const auto& g = p["gridPos"];
    EXPECT_LE(g.value("x", 0) + g.value("w", 0), 24) << title;
    EXPECT_GT(g.value("h", 0), 0) << title;
    if (p.value("type", "") == "row") continue;
    EXPECT_EQ(p["datasource"]["uid"], "${datasource}") << title;
    EXPECT_EQ(p["datasource"]["type"], "prometheus") << title;
    EXPECT_FALSE(p.value("description", "").empty()) << title << " has no description";
    ASSERT_FALSE(p.value("targets", json::array()).empty()) << title << " has no query";
    for (const auto& t : p["targets"]) {
      ++targets;
      EXPECT_EQ(t["datasource"]["uid"], "${datasource}") << title;
      const auto expr = t.value("expr", "");
      // Every query follows the instance picker.
      EXPECT_NE(expr.find("instance=~\"$instance\""), std::string::npos) << title << ": " << expr;
    }
  }
  EXPECT_GT(targets, 0u);
}

// The dashboard's expressions, its Grafana variables replaced by values, as recording rules
// promtool checks: a PromQL syntax error fails here rather than as a broken panel.
TEST(Dashboard, ExpressionsAreValidPromql) {
  const auto exprs = dashboard_exprs(dashboard());
  ASSERT_FALSE(exprs.empty());
  json rules = json::array();
  for (std::size_t i = 0; i < exprs.size(); ++i) {
    auto text = std::regex_replace(
        exprs[i].text, std::regex(R"(\$\{?(__rate_interval|__interval|__range)\}?)"), "5m");
    text = std::regex_replace(text, std::regex(R"(\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)"), ".*");
    rules.push_back({{"record", "dashboard:expr_" + std::to_string(i)}, {"expr", text}});
  }
  // JSON is YAML: promtool reads the file as it is.
  const json file = {{"groups", json::array({{{"name", "dashboard"}, {"rules", rules}}})}};
  TempDir dir;
  const auto path = dir.sub("dashboard-rules.yml");
  {
    std::ofstream out(path);
    out << file.dump(2);
  }
  const auto r = promtool({"check", "rules", path});
  EXPECT_EQ(r.code, 0) << r.out << r.err << "\n" << file.dump(2);
}

// ---- The reader (monitoring.h) ----

std::set<std::string> names(const std::string& expr) {
  std::set<std::string> out;
  for (const auto& s : selectors(expr)) out.insert(s.name);
  return out;
}

TEST(PromqlReader, FindsMetricNamesAndSkipsFunctionsKeywordsLabelsAndVariables) {
  using S = std::set<std::string>;
  EXPECT_EQ(names("up{job=\"sechex-ledgerd\"} == 0"), S{"up"});
  EXPECT_EQ(names("histogram_quantile(0.99, sum by (le, route) "
                  "(rate(a_seconds_bucket{instance=~\"$instance\",route=\"/v1/x/{id}\"}"
                  "[$__rate_interval])))"),
            S{"a_seconds_bucket"});
  EXPECT_EQ(names("sum without (instance) (rate(x_total[5m] offset 1h)) / on (job) "
                  "group_left (reason) max(y) > bool 1e3 and z unless absent(w{a=\"b\"})"),
            (S{"x_total", "y", "z", "w"}));
  EXPECT_EQ(names("topk(10, sum by(route)(increase(q_total{s=~\"5..\"}[${__range}])))"),
            S{"q_total"});
  EXPECT_EQ(names("count(a) # a comment naming not_a_metric\n+ {__name__=\"b\", c=\"d\"}"),
            (S{"a", "b"}));
  EXPECT_EQ(names("sum(rate(m{l=\"sum by (x) fake{y=\\\"z\\\"}\"}[1m:30s]))"), S{"m"});
  EXPECT_TRUE(names("vector(1) + time()").empty());
}

TEST(PromqlReader, ReadsTheLabelNamesOfMatchers) {
  const auto s = selectors(
      "sum by (outcome) (rate(d_total{instance=~\"$i\", outcome != \"x\","
      " r=~'a|b'}[5m])) + e{}");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].name, "d_total");
  EXPECT_EQ(s[0].labels, (std::set<std::string>{"instance", "outcome", "r"}));
  EXPECT_EQ(s[1].name, "e");
  EXPECT_TRUE(s[1].labels.empty());
}

TEST(RuleFileReader, ReadsPlainQuotedAndBlockExpressions) {
  const std::string yaml = R"(groups:
  - name: g
    rules:
      - alert: A
        expr: a_total > 1
        for: 5m
      - alert: B
        expr: "b{x=\"y\"} > 0"
      - alert: C
        expr: 'c{x=''y''} > 0'
      - alert: D
        expr: |
          sum(d)
            > 0
        labels:
          severity: warning
      - record: e:rate
        expr: >-
          rate(e_total[5m])
      - expr: f
          + g
        record: fg
)";
  std::size_t rules = 0;
  const auto exprs = rule_exprs(yaml, &rules);
  EXPECT_EQ(rules, 6u);
  ASSERT_EQ(exprs.size(), 6u);
  EXPECT_EQ(exprs[0].text, "a_total > 1");
  EXPECT_EQ(exprs[0].where, "alert: A");
  EXPECT_EQ(exprs[1].text, "b{x=\"y\"} > 0");
  EXPECT_EQ(exprs[2].text, "c{x='y'} > 0");
  EXPECT_EQ(exprs[3].text, "sum(d)\n> 0");
  EXPECT_EQ(exprs[4].text, "rate(e_total[5m])");
  EXPECT_EQ(exprs[5].text, "f + g");
}

// What monitoring_metrics_test asserts, on a canned exposition: a renamed metric or label is
// reported, histogram series are found through their family, Prometheus' own series pass.
TEST(ScrapeCheck, ReportsARenamedMetricOrLabel) {
  const auto scrape = Scrape::parse(R"(# HELP a_total A
# TYPE a_total counter
a_total{outcome="delivered"} 1
a_total{outcome="failed"} 0
# TYPE h_seconds histogram
h_seconds_bucket{le="0.1"} 0
h_seconds_bucket{le="+Inf"} 0
h_seconds_sum 0
h_seconds_count 0
# TYPE lazy_total counter
)");
  auto problem = [&](const std::string& expr) {
    std::string all;
    for (const auto& s : selectors(expr)) all += scrape.problem(s);
    return all;
  };
  EXPECT_EQ(problem("sum by (outcome) (rate(a_total{outcome=\"failed\",instance=~\".*\"}[5m]))"),
            "");
  EXPECT_EQ(problem("histogram_quantile(0.9, sum by (le) (rate(h_seconds_bucket[5m])))"), "");
  EXPECT_EQ(problem("h_seconds_sum / h_seconds_count"), "");
  EXPECT_EQ(problem("up == 0 or lazy_total > 0"), "");
  EXPECT_EQ(problem("rate(a_totals[5m])"), "metric a_totals is not exported");
  EXPECT_EQ(problem("a_total{result=\"failed\"}"), "metric a_total has no label result");
  EXPECT_EQ(problem("h_bucket"), "metric h_bucket is not exported");
  EXPECT_NE(problem("lazy_total{reason=\"x\"}"), "");
}

}  // namespace
}  // namespace sechex::testing::monitoring
