// What tests/monitoring reads: the PromQL expressions of the Grafana dashboard
// (ops/grafana/sechex-ledger.json) and of the alerting rules (ops/prometheus/alerts.yml), the
// metric selectors inside them, and a Prometheus text exposition (ledgerd's /metrics), so a test
// can tell which metric or label an expression uses that ledgerd does not export.
//
// The PromQL reader is a tokenizer, not a parser: it skips strings, comments, ranges ([5m]),
// Grafana variables ($instance, ${x}, $__rate_interval), numbers and durations, function and
// aggregation names, keywords, and the label lists of by/without/on/ignoring/group_left/
// group_right; every other identifier is a metric name, with the label names of its {matchers}.
// promtool (check rules) validates the same expressions' syntax, so the tokenizer may assume it.
#pragma once

#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace sechex::testing::monitoring {

// One vector selector: a metric name and the label names its matchers use.
struct Selector {
  std::string name;
  std::set<std::string> labels;
};

// An expression and where it was found ("dashboard panel 7 \"Logins /s\" A", "alert X").
struct Expr {
  std::string where;
  std::string text;
};

namespace detail {

inline bool ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_' || c == ':';
}
inline bool ident_char(char c) {
  return ident_start(c) || std::isdigit(static_cast<unsigned char>(c)) != 0;
}

// Past the string literal starting at s[i] (", ' or `).
inline std::size_t skip_string(std::string_view s, std::size_t i) {
  const char q = s[i++];
  while (i < s.size() && s[i] != q) i += (s[i] == '\\' && q != '`') ? 2 : 1;
  return std::min(i + 1, s.size());
}

// Past the bracketed group opening at s[i] ('(' or '['), strings inside skipped.
inline std::size_t skip_group(std::string_view s, std::size_t i) {
  const char open = s[i];
  const char close = open == '(' ? ')' : ']';
  int depth = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '"' || c == '\'' || c == '`') {
      i = skip_string(s, i);
      continue;
    }
    if (c == open) ++depth;
    if (c == close && --depth == 0) return i + 1;
    ++i;
  }
  return i;
}

inline std::size_t skip_space(std::string_view s, std::size_t i) {
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])) != 0) ++i;
  return i;
}

// The label matchers {a="x", b=~"y"} opening at s[i]: their label names into `labels`, a
// __name__="m" into `name`. Returns the position past '}'.
inline std::size_t read_matchers(std::string_view s, std::size_t i, std::set<std::string>& labels,
                                 std::string& name) {
  ++i;  // '{'
  while (i < s.size() && s[i] != '}') {
    i = skip_space(s, i);
    if (i < s.size() && ident_start(s[i])) {
      const auto start = i;
      while (i < s.size() && ident_char(s[i])) ++i;
      const std::string label(s.substr(start, i - start));
      i = skip_space(s, i);
      const bool equals = i + 1 < s.size() && s[i] == '=' && s[i + 1] != '~';
      while (i < s.size() && (s[i] == '=' || s[i] == '!' || s[i] == '~')) ++i;
      i = skip_space(s, i);
      if (i < s.size() && (s[i] == '"' || s[i] == '\'' || s[i] == '`')) {
        const auto end = skip_string(s, i);
        if (label == "__name__" && equals && end - i >= 2) {
          name = std::string(s.substr(i + 1, end - i - 2));
        } else if (label != "__name__") {
          labels.insert(label);
        }
        i = end;
      }
      continue;
    }
    if (i < s.size() && (s[i] == '"' || s[i] == '\'' || s[i] == '`')) {
      i = skip_string(s, i);
      continue;
    }
    if (i < s.size() && s[i] != '}') ++i;
  }
  return std::min(i + 1, s.size());
}

}  // namespace detail

// The vector selectors of one PromQL expression, in order.
inline std::vector<Selector> selectors(std::string_view s) {
  using namespace detail;
  static const std::set<std::string> kLabelLists = {"by",       "without",    "on",
                                                    "ignoring", "group_left", "group_right"};
  static const std::set<std::string> kKeywords = {"and",    "or",  "unless", "bool",
                                                  "offset", "inf", "nan",    "atan2"};
  static const std::set<std::string> kAggregations = {
      "sum",    "min",   "max",          "avg",     "group", "stddev",
      "stdvar", "count", "count_values", "bottomk", "topk",  "quantile"};
  std::vector<Selector> out;
  std::size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c)) != 0) {
      ++i;
    } else if (c == '"' || c == '\'' || c == '`') {
      i = skip_string(s, i);
    } else if (c == '#') {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (c == '[') {
      i = skip_group(s, i);
    } else if (c == '$') {  // a Grafana variable
      ++i;
      if (i < s.size() && s[i] == '{') {
        while (i < s.size() && s[i] != '}') ++i;
        ++i;
      } else {
        while (i < s.size() && ident_char(s[i])) ++i;
      }
    } else if (std::isdigit(static_cast<unsigned char>(c)) != 0 ||
               (c == '.' && i + 1 < s.size() &&
                std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      // A number or a duration (1.5, 1e3, 0x1f, 5m, 1h30m).
      while (i < s.size() && (ident_char(s[i]) || s[i] == '.')) ++i;
    } else if (c == '{') {  // a selector without a name: {__name__="m"}
      Selector sel;
      i = read_matchers(s, i, sel.labels, sel.name);
      if (!sel.name.empty()) out.push_back(std::move(sel));
    } else if (ident_start(c)) {
      const auto start = i;
      while (i < s.size() && ident_char(s[i])) ++i;
      std::string word(s.substr(start, i - start));
      std::string lower = word;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      const auto next = skip_space(s, i);
      if (kLabelLists.count(lower) != 0) {
        if (next < s.size() && s[next] == '(') i = skip_group(s, next);
        continue;
      }
      if (kKeywords.count(lower) != 0) continue;
      if (next < s.size() && s[next] == '(') continue;  // a function or an aggregation
      if (kAggregations.count(lower) != 0 && next < s.size() && ident_start(s[next])) {
        continue;  // sum by (x) (...), sum without (x) (...)
      }
      Selector sel{std::move(word), {}};
      if (next < s.size() && s[next] == '{') {
        std::string ignored;
        i = read_matchers(s, next, sel.labels, ignored);
      }
      out.push_back(std::move(sel));
    } else {
      ++i;
    }
  }
  return out;
}

// Every target expression of a Grafana dashboard (panels, panels in rows) and of its query
// variables.
inline std::vector<Expr> dashboard_exprs(const nlohmann::json& dashboard) {
  std::vector<Expr> out;
  std::vector<const nlohmann::json*> panels;
  // The arrays under `key`, by reference (value() would copy them, and the pointers kept below
  // would dangle).
  static const nlohmann::json kNone = nlohmann::json::array();
  auto list = [](const nlohmann::json& j, const char* key) -> const nlohmann::json& {
    return j.is_object() && j.contains(key) && j[key].is_array() ? j[key] : kNone;
  };
  for (const auto& p : list(dashboard, "panels")) {
    panels.push_back(&p);
    for (const auto& inner : list(p, "panels")) panels.push_back(&inner);
  }
  for (const auto* p : panels) {
    for (const auto& t : list(*p, "targets")) {
      if (!t.contains("expr")) continue;
      out.push_back({"dashboard panel " + std::to_string(p->value("id", 0)) + " \"" +
                         p->value("title", "") + "\" " + t.value("refId", ""),
                     t["expr"].get<std::string>()});
    }
  }
  const auto& templating =
      dashboard.is_object() && dashboard.contains("templating") ? dashboard["templating"] : kNone;
  for (const auto& v : list(templating, "list")) {
    if (v.value("type", "") != "query") continue;
    const auto q = v.value("query", nlohmann::json());
    const std::string text = q.is_string()   ? q.get<std::string>()
                             : q.is_object() ? q.value("query", "")
                                             : "";
    // label_values(metric{...}, label) and query_result(expr): the metric part is PromQL.
    auto inner = text;
    for (const std::string fn : {"label_values(", "query_result("}) {
      if (inner.rfind(fn, 0) == 0 && inner.ends_with(')')) {
        inner = inner.substr(fn.size(), inner.size() - fn.size() - 1);
        if (fn == "label_values(") {
          const auto comma = inner.rfind(',');
          if (comma != std::string::npos) inner = inner.substr(0, comma);
        }
      }
    }
    out.push_back({"dashboard variable " + v.value("name", ""), inner});
  }
  return out;
}

// The `expr:` values of a Prometheus rule file (alerts and recording rules): plain, quoted,
// and block (| or >) scalars, the style ops/prometheus/alerts.yml is written in. `rules` is set
// to the number of `alert:` and `record:` keys, so a caller can check every rule's
// expression was found.
inline std::vector<Expr> rule_exprs(const std::string& yaml, std::size_t* rules = nullptr) {
  std::vector<std::string> lines;
  {
    std::istringstream in(yaml);
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
  }
  auto indent = [](const std::string& l) { return l.find_first_not_of(' '); };
  auto blank = [&](const std::string& l) { return indent(l) == std::string::npos; };
  std::vector<Expr> out;
  std::string rule = "?";
  std::size_t count = 0;
  for (std::size_t n = 0; n < lines.size(); ++n) {
    const auto& l = lines[n];
    if (blank(l)) continue;
    auto at = indent(l);
    auto rest = l.substr(at);
    if (rest.rfind("- ", 0) == 0) {  // a list item's first key
      rest = rest.substr(2);
      at += 2;  // the item's other keys are indented as deep as this one
    }
    for (const std::string key : {"alert:", "record:"}) {
      if (rest.rfind(key, 0) == 0) {
        const auto name = rest.find_first_not_of(' ', key.size());
        rule = key + " " + (name == std::string::npos ? "" : rest.substr(name));
        ++count;
      }
    }
    if (rest.rfind("expr:", 0) != 0) continue;
    auto value = rest.substr(5);
    value.erase(0, value.find_first_not_of(' '));
    std::string text;
    // The lines below that are indented deeper than the key belong to the value.
    auto continuation = [&](bool keep_newlines) {
      std::string joined;
      while (n + 1 < lines.size() && (blank(lines[n + 1]) || indent(lines[n + 1]) > at)) {
        ++n;
        if (!joined.empty()) joined += keep_newlines ? "\n" : " ";
        if (!blank(lines[n])) joined += lines[n].substr(indent(lines[n]));
      }
      return joined;
    };
    if (!value.empty() && (value[0] == '|' || value[0] == '>')) {
      text = continuation(value[0] == '|');
    } else if (!value.empty() && value[0] == '"') {
      for (std::size_t k = 1; k < value.size() && value[k] != '"'; ++k) {
        if (value[k] == '\\' && k + 1 < value.size()) ++k;
        text += value[k];
      }
    } else if (!value.empty() && value[0] == '\'') {
      for (std::size_t k = 1; k < value.size(); ++k) {
        if (value[k] == '\'' && k + 1 < value.size() && value[k + 1] == '\'') {
          text += '\'';
          ++k;
        } else if (value[k] == '\'') {
          break;
        } else {
          text += value[k];
        }
      }
    } else {
      text = value;
      const auto more = continuation(false);
      if (!more.empty()) text += " " + more;
    }
    out.push_back({rule, text});
  }
  if (rules != nullptr) *rules = count;
  return out;
}

// A Prometheus text exposition: the sample names, the label names seen on each, and each
// family's TYPE.
struct Scrape {
  std::map<std::string, std::set<std::string>> samples;  // sample name -> label names
  std::map<std::string, std::string> types;              // family name -> counter, histogram...

  static Scrape parse(const std::string& text) {
    Scrape s;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("# TYPE ", 0) == 0) {
        std::istringstream words(line.substr(7));
        std::string name, type;
        words >> name >> type;
        s.types[name] = type;
        continue;
      }
      if (line.empty() || line[0] == '#') continue;
      std::size_t i = 0;
      while (i < line.size() && detail::ident_char(line[i])) ++i;
      auto& labels = s.samples[line.substr(0, i)];
      if (i < line.size() && line[i] == '{') {
        std::string ignored;
        detail::read_matchers(line, i, labels, ignored);
      }
    }
    return s;
  }

  // Synthetic series Prometheus adds to every scrape.
  static bool synthetic(const std::string& name) {
    return name == "up" || name.rfind("scrape_", 0) == 0;
  }

  // Whether `name` is exported: as a sample, as a family declared with no sample yet, or as
  // the _bucket/_sum/_count series of a histogram (or _sum/_count of a summary).
  bool has(const std::string& name) const {
    if (samples.count(name) != 0 || types.count(name) != 0) return true;
    for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
      if (name.size() > suffix.size() && name.ends_with(suffix)) {
        const auto it = types.find(name.substr(0, name.size() - suffix.size()));
        if (it != types.end() &&
            (it->second == "histogram" || (it->second == "summary" && suffix != "_bucket"))) {
          return true;
        }
      }
    }
    return false;
  }

  // What is wrong with one selector against this scrape ("" when nothing): a metric not
  // exported, or a matcher on a label none of its series carries (instance and job are
  // Prometheus' own target labels).
  std::string problem(const Selector& sel) const {
    if (synthetic(sel.name)) return "";
    if (!has(sel.name)) return "metric " + sel.name + " is not exported";
    const auto it = samples.find(sel.name);
    for (const auto& label : sel.labels) {
      if (label == "instance" || label == "job") continue;
      if (it == samples.end()) {
        return "metric " + sel.name + " has no series in the scrape to check label " + label +
               " against (drive a request that creates one)";
      }
      if (it->second.count(label) == 0) {
        return "metric " + sel.name + " has no label " + label;
      }
    }
    return "";
  }
};

}  // namespace sechex::testing::monitoring
