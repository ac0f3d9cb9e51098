#include "api/http/metrics.h"

#include <prometheus/text_serializer.h>

namespace sechex::api {

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("sechex_http_requests_total")
                   .Help("HTTP requests by method, route pattern and status code")
                   .Register(*registry_);
  latency_ = &prometheus::BuildHistogram()
                  .Name("sechex_http_request_duration_seconds")
                  .Help("Time from a parsed request to its response being written")
                  .Register(*registry_);
  rejected_ = &prometheus::BuildCounter()
                   .Name("sechex_http_rejected_total")
                   .Help(
                       "HTTP requests refused before reaching a handler, or sent to a node "
                       "that does not own their partition (misdirected), by reason")
                   .Register(*registry_);
  for (const char* reason : {"payload_too_large", "headers_too_large", "malformed_http",
                             "overloaded", "timeout", "misdirected"}) {
    rejected_->Add({{"reason", reason}});
  }
}

Metrics::Handles Metrics::handles(std::string_view method, std::string_view route,
                                  unsigned status) {
  std::string key;
  key.reserve(method.size() + route.size() + 8);
  key.append(method).push_back('\0');
  key.append(route).push_back('\0');
  key.append(std::to_string(status));
  {
    std::shared_lock lock(handles_mu_);
    const auto it = handles_.find(key);
    if (it != handles_.end()) return it->second;
  }
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
  // Labels are bounded (known methods, route patterns, status codes), so the map is too.
  const Handles h{
      &requests_->Add({{"method", std::string(method)},
                       {"route", std::string(route)},
                       {"status", std::to_string(status)}}),
      &latency_->Add({{"route", std::string(route)}, {"status", std::to_string(status)}},
                     kBuckets)};
  std::unique_lock lock(handles_mu_);
  return handles_.emplace(std::move(key), h).first->second;
}

RequestObserver Metrics::observer() {
  return [this](const RequestLog& log) {
    const auto h = handles(log.method, log.route, log.status);
    h.requests->Increment();
    h.latency->Observe(std::chrono::duration<double>(log.elapsed).count());
    if (!log.reject_reason.empty()) {
      rejected_->Add({{"reason", std::string(log.reject_reason)}}).Increment();
    }
  };
}

void Metrics::count_rejected(std::string_view reason) {
  rejected_->Add({{"reason", std::string(reason)}}).Increment();
}

void Metrics::on_scrape(std::function<void()> refresh) {
  std::lock_guard lock(scrape_mu_);
  refreshers_.push_back(std::move(refresh));
}

std::string Metrics::scrape() {
  std::lock_guard lock(scrape_mu_);
  for (auto& r : refreshers_) r();
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

void add_health_routes(Router& router, std::function<bool()> ready) {
  router.add("GET", "/healthz", [](const Request&) { return json_ok(R"({"status":"ok"})"); });
  router.add("GET", "/readyz", [ready = std::move(ready)](const Request&) {
    if (ready && !ready()) {
      auto r = json_error(503, "not_ready", "projections are catching up with the log");
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    return json_ok(R"({"status":"ready"})");
  });
}

void add_metrics_route(Router& router, Metrics& metrics) {
  router.add("GET", "/metrics", [&metrics](const Request&) {
    Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics.scrape();
    return r;
  });
}

void add_health_and_metrics_routes(Router& router, Metrics& metrics, std::function<bool()> ready) {
  add_health_routes(router, std::move(ready));
  add_metrics_route(router, metrics);
}

}  // namespace sechex::api
