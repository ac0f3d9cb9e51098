// Exclusive mode activation and devices (API.md "Exclusive mode"; specs 000, 001):
//
//   POST   /v1/secure/exclusive/challenge  (Bearer) -> {challenge, expiresIn}
//   POST   /v1/secure/exclusive/start      (Bearer [+ X-Reauth-Token for a new device while
//                                           another is enrolled]) {deviceAttestation,
//                                           clientDataJSON, deviceName?, dpopJwk?} -> 201
//                                           {sessionToken, expiresIn, deviceId}
//   POST   /v1/secure/exclusive/validate   (DPoP) {action, payload?} -> {status: "ok", result:
//                                           {action, recordedAt, receipt: {partition, seq,
//                                           hash}}}
//   POST   /v1/secure/exclusive/end        (DPoP) -> {status: "ended"}
//   GET    /v1/secure/exclusive/status     (Bearer) -> {available, reason?, premium, active,
//                                           deviceId?, expiresAt?, idleLockAt?}
//   GET    /v1/me/devices                  (Bearer) -> {devices: [{deviceId, name, format,
//                                           attestationType, aaguid, createdAt}]}
//   DELETE /v1/me/devices/{id}             (Bearer) -> {status: "removed"}; its sessions end
//
// Refusals come from identity::ExclusiveCommands (exclusive.h) through refusals.h: 403
// not_premium, 401 attestation_failed / 400 device_unsupported with details.reason, 403
// reauth_required, 404 for a device that is not the caller's; on the signed routes 401
// invalid_token / spoof_attempt, 409 replay_detected, 423 reauth_required, 429.
//
// Thread-safety: handlers are thread-safe and blocking (Exec::pool: attestation verification
// is OpenSSL work).
#pragma once

#include "api/identity/exclusive.h"
#include "api/routes/identity_api.h"

namespace sechex::api {

class ExclusiveApi {
 public:
  ExclusiveApi(IdentityDeps deps, IdentityConfig config, identity::ExclusiveCommands& exclusive);
  void add_routes(RouteRegistry& routes);

  Response challenge(const Request& req, const Principal& who);
  Response status(const Request& req, const Principal& who);
  Response start(const Request& req, const Principal& who);
  Response devices(const Request& req, const Principal& who);
  Response remove_device(const Request& req, const Principal& who);
  Response validate(const Request& req, const RouteRegistry::DeviceCredentials& signed_with);
  Response end(const Request& req, const RouteRegistry::DeviceCredentials& signed_with);

 private:
  IdentityDeps d_;
  IdentityConfig config_;
  identity::ExclusiveCommands& exclusive_;
};

}  // namespace sechex::api
