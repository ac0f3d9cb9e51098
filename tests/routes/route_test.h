// The base of the in-process route tests: one node's stores and authentication as ledgerd's
// serve() wires them (a real LogStore of 4 partitions, KeyStore, ProjectionStore, token key
// ring, verifier and issuer, the Authenticator, the CommandPath (appending through a FaultyLog
// a test can make fail), a Router with its RouteRegistry), all on a ManualClock, and
// dispatch() doing what the server does with a
// request. A fixture calls open_node(), adds its API objects to routes_, and sends requests.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "api/app/commands.h"
#include "api/auth/auth.h"
#include "api/auth/route_registry.h"
#include "api/crypto/jose.h"
#include "api/crypto/token_settings.h"
#include "ledger/clock.h"
#include "ledger/crypto.h"
#include "ledger/key_store.h"
#include "ledger/log_store.h"
#include "projections/store.h"
#include "support/forwarding_log.h"
#include "support/test_util.h"

namespace sechex::api {

// A key of 32 bytes of `fill` (KEK, lookup key).
inline ledger::Kek test_key(char fill) {
  const std::string raw(32, fill);
  return ledger::Kek::from_base64(
             ledger::crypto::base64_encode(
                 ledger::ByteView(reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size())))
      .value();
}

// The node's log as the commands see it: the LogStore, but appends fail while `fail_appends` is
// set (a full disk, a broken volume), so a test can show what a request gets then.
class FaultyLog final : public testing::ForwardingLog {
 public:
  using ForwardingLog::ForwardingLog;
  std::atomic<bool> fail_appends{false};

  Result<ledger::AppendResult> append(ledger::Partition p,
                                      std::span<const ledger::ByteView> events) override {
    if (fail_appends) return ledger::Errc::io_error;
    return ForwardingLog::append(p, events);
  }
};

class RouteTest : public ::testing::Test {
 protected:
  // `on_reject` hears the authenticator's refusal reasons.
  void open_node(std::function<void(std::string_view)> on_reject = {}) {
    signer_ = std::make_unique<ledger::CheckpointSigner>(testing::make_signer());
    ledger::LogOptions lo;
    lo.path = dir_.sub("log");
    lo.partitions = 4;
    lo.create_if_missing = true;
    lo.signer = signer_.get();
    log_ = ledger::LogStore::open(lo).value();
    keys_ = ledger::KeyStore::open(*log_, test_key('k')).value();
    store_ = projections::ProjectionStore::open(dir_.sub("projections"), 4,
                                                projections::default_projections())
                 .value();
    ring_ =
        jose::KeyRing::load_or_create(dir_.sub("jwt"), clock_, settings_.ring_options()).value();
    verifier_ = std::make_unique<jose::TokenVerifier>(*ring_, clock_, settings_.verifier_config());
    issuer_ = std::make_unique<jose::TokenIssuer>(*ring_, clock_, settings_.issuer_config());
    auth_ = std::make_unique<Authenticator>(*verifier_, *store_, clock_, std::move(on_reject));
    faulty_ = std::make_unique<FaultyLog>(*log_);
    commands_ = std::make_unique<CommandPath>(*faulty_, *store_);
    routes_ = std::make_unique<RouteRegistry>(router_, *auth_);
  }

  // What the server does with a request: the router's match, the route's guard (route_access.h)
  // and handler, then the work an answer starts once written (Response::after_write).
  Response dispatch(Request r) {
    const auto m = router_.match(r.method, r.path);
    if (m.handler == nullptr) return json_error(404, "not_found", "no such endpoint");
    r.params = m.params;
    r.route = m.route;
    auto answer = (*m.handler)(r);
    if (answer.after_write) answer.after_write();
    return answer;
  }

  testing::TempDir dir_;
  ManualClock clock_;
  TokenSettings settings_;
  std::unique_ptr<ledger::CheckpointSigner> signer_;
  std::unique_ptr<ledger::LogStore> log_;
  std::unique_ptr<FaultyLog> faulty_;  // what the commands append through
  std::unique_ptr<ledger::KeyStore> keys_;
  std::unique_ptr<projections::ProjectionStore> store_;
  std::unique_ptr<jose::KeyRing> ring_;
  std::unique_ptr<jose::TokenVerifier> verifier_;
  std::unique_ptr<jose::TokenIssuer> issuer_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<CommandPath> commands_;
  Router router_;
  std::unique_ptr<RouteRegistry> routes_;
};

}  // namespace sechex::api
