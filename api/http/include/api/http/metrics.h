// Prometheus metrics for ledgerd (prometheus-cpp core, text exposition at GET /metrics).
//
// HTTP metrics are labelled by route pattern, never by raw path, so label cardinality stays
// bounded whatever clients send. Requests the server refused before a handler answered them are
// also counted by reason in sechex_http_rejected_total, and so are requests a handler refused
// because they were sent to the wrong node ("misdirected": another node owns the partition) (every
// known reason is exported from the start, at 0, so that rate() works from the first scrape).
// Components that keep their own counters (the ledger) are mirrored into the registry by
// `on_scrape` callbacks right before serialisation.
//
// Thread-safety: all methods are thread-safe (prometheus-cpp metrics are atomic; callbacks
// are guarded by a mutex and run one scrape at a time).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "api/http/server.h"

namespace sechex::api {

class Metrics {
 public:
  Metrics();
  prometheus::Registry& registry() { return *registry_; }
  // Records one finished request; hand this to HttpServer.
  RequestObserver observer();
  void on_scrape(std::function<void()> refresh);
  // Counts a request a handler refused for a routing reason ("misdirected") in
  // sechex_http_rejected_total.
  void count_rejected(std::string_view reason);
  // Runs the refresh callbacks, then serialises every family in the text format.
  std::string scrape();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* latency_;
  prometheus::Family<prometheus::Counter>* rejected_;
  // Family::Add hashes a label map under the family's mutex: too slow for every request, so the
  // handles of each (method, route, status) are looked up once and kept here.
  struct Handles {
    prometheus::Counter* requests;
    prometheus::Histogram* latency;
  };
  Handles handles(std::string_view method, std::string_view route, unsigned status);
  std::shared_mutex handles_mu_;
  std::unordered_map<std::string, Handles> handles_;
  std::mutex scrape_mu_;
  std::vector<std::function<void()>> refreshers_;
};

// GET /healthz (liveness) and GET /readyz (`ready()`).
void add_health_routes(Router& router, std::function<bool()> ready);
// GET /metrics. ledgerd serves it on a listener of its own (--metrics-listen, loopback by
// default), not beside the API: its counters tell, e.g., why each forged token failed, which
// the API's 401 deliberately does not.
void add_metrics_route(Router& router, Metrics& metrics);
// Both, on one router (tests, tools).
void add_health_and_metrics_routes(Router& router, Metrics& metrics, std::function<bool()> ready);

}  // namespace sechex::api
