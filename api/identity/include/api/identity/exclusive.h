// Exclusive mode activation (specs 000, 001; API.md "Exclusive mode"): a premium user gets a
// single-use challenge, proves a hardware key with a WebAuthn attestation made over it and a
// user-verification gesture, and receives a 30-minute session token bound to that key by
// cnf.jkt. Devices are enrolled by their first activation and removed by their owner.
//
//   challenge  ExclusiveChallengeIssued: 32 random bytes, base64url, 5 minutes, bound to the
//              user; its keyed hash is the lookup key and the bytes are sealed under the user's
//              key (a browser's WebAuthn challenge is SHA-256(challenge || jkt of dpopJwk)).
//   start      in this order: premium; the request's encodings; a new device while another is
//              enrolled needs a step-up grant (reauth_required before the challenge is spent);
//              then on the user's partition: the outstanding challenge, check_registration
//              (type, challenge, origin, RP, UP, UV, ES256 key) and the attestation statement
//              (webauthn.h verify_attestation with the configured roots). A refusal after the
//              challenge is found spends it (ExclusiveRequestRejected names its hash) and says
//              why in `reason`; success records ExclusiveActivated (device id, key thumbprint,
//              sealed key and name, format, aaguid, chain fingerprint) and issues the token.
//
// Refusals (commands.h): not_premium; attestation_failed (reason: webauthn.h reason_code) or
// device_unsupported (reason, and `url` for the upgrade guidance); reauth_required; not_found
// for another user's or an unknown device; unavailable / not_owner as every command.
//
// Lifecycle and thread-safety: as IdentityCommands, whose step-up grants it checks; both, the
// trust store and the clock must outlive it. Calls may come from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/crypto/dpop.h"
#include "api/crypto/webauthn.h"
#include "api/identity/commands.h"
#include "projections/exclusive.h"

namespace sechex::api::identity {

struct ExclusiveConfig {
  std::string origin;  // the server's origin (scheme://host[:port] of --public-url)
  std::string rp_id;   // --rp-id (default: the host of --public-url)
  const webauthn::TrustStore* roots = nullptr;  // --attestation-roots; none: every chain fails
  bool allow_self_attestation = false;          // --allow-self-attestation (development)
  // --app-attest-app-id (and --app-attest-allow-development): native iOS apps activate with
  // App Attest (fmt apple-appattest), chained to Apple's App Attestation root given in
  // --attestation-roots; none: App Attest answers device_unsupported.
  std::optional<webauthn::AppAttestApp> app_attest;
  std::optional<std::int64_t> verify_at;  // tests only: pinned certificate time (Unix s)
  Micros challenge_ttl = std::chrono::minutes{5};
  Micros session_ttl = std::chrono::minutes{30};
  Micros idle = std::chrono::minutes{30};  // --exclusive-idle: no validated request -> locked
  // --exclusive-rate: validations per user per second. It also bounds the replay cache: at most
  // rate x 300 proofs of a user are remembered (30,000 at 100/s; 000 FR-03).
  std::uint32_t rate_per_second = 100;
  // The URL proofs name is public_url + path (never built from the request's Host).
  std::string public_url;
  std::string upgrade_url;  // details.upgradeUrl of device_unsupported
  // --dpop-nonce: proofs must carry a server nonce (RFC 9449 §9); none: nonces are not used.
  std::shared_ptr<const dpop::NonceSource> nonces;

  // Metrics (000 NFR-06), each optional; called on the request's thread after the decision.
  // `stage` is "activation" or "request"; `reason` the refusal's code (commands.h to_string),
  // or for a failed attestation its webauthn.h reason code: a bounded set, fit for a label.
  std::function<void()> on_activated;
  std::function<void(std::string_view stage, std::string_view reason)> on_refused;
  // The token and proof checks of one signed request whose proof passed (000 NFR-02: < 5 ms).
  std::function<void(std::chrono::steady_clock::duration)> on_proof_checked;
};

// What the client sends to start (API.md): the attestation object and clientDataJSON, both
// base64url, an optional device name, and a browser's DPoP public key (a JWK) when the
// attested credential does not sign the proofs itself.
struct StartRequest {
  std::string_view attestation;  // base64url
  std::string_view client_data;  // base64url
  std::optional<std::string> device_name;
  std::optional<nlohmann::json> dpop_jwk;
};

// A request of an exclusive session as it arrived: its session token (Authorization: DPoP or
// Bearer), its DPoP header (exactly one, else empty), its method and path.
struct SignedRequest {
  std::string_view token;
  std::string_view proof;
  std::string_view method;
  std::string_view path;
};

class ExclusiveCommands {
 public:
  ExclusiveCommands(CommandDeps deps, const IdentityCommands& identity,
                    const jose::TokenVerifier& verifier, ExclusiveConfig config);

  struct Challenge {
    std::string challenge;  // base64url of 32 random bytes
    std::int64_t expires_in_seconds = 0;
  };
  Outcome<Challenge> challenge(const Caller& c, const UserId& user);

  struct Started {
    jose::IssuedToken session_token;  // cnf.jkt = the device key's thumbprint
    std::string device_id;
    std::int64_t expires_in_seconds = 0;
  };
  Outcome<Started> start(const Caller& c, const UserId& user, const SessionId& session,
                         ReauthToken reauth, const StartRequest& request);

  // The user's enrolled devices, oldest first, names opened.
  struct Device {
    projections::DeviceRow row;
    std::optional<std::string> name;
  };
  Outcome<std::vector<Device>> devices(const UserId& user) const;
  // ExclusiveDeviceRemoved: the device's sessions end at once.
  Outcome<void> remove_device(const Caller& c, const UserId& user, std::string_view device_id);

  // What the toggle and its countdown show (GET /v1/secure/exclusive/status): whether the user
  // may start (premium; the exclusive_mode flag is enabled for everyone until an admin sets
  // it), and the newest active session: its device, token expiry and idle lock time.
  struct Status {
    bool available = false;
    std::string reason;  // "not_premium" or "feature_disabled" when not available
    bool premium = false;
    std::optional<projections::ExclusiveSessionRow> session;
    TimePoint idle_lock_at;  // session only
  };
  Outcome<Status> status(const UserId& user, TimePoint now) const;

  // ---- Every request signed (000 FR-02, FR-03, FR-05; 001 /validate, /end) ----
  // The token must verify (signature, expiry) and carry cnf.jkt (else invalid_token, not
  // chained: it names nobody); the proof must pass dpop::verify_proof against it (else
  // spoof_attempt with the reason); with server nonces (--dpop-nonce) it must then carry a
  // current one (else dpop_nonce_required, RFC 9449 §9's round trip). Then on the user's partition:
  // the session known, not ended or expired (else invalid_token) nor locked (else
  // exclusive_locked), not idle for `idle` (else ExclusiveLocked and exclusive_locked), at most
  // `rate_per_second` requests in the last second, the refused ones included (else rate_limited
  // with retry_after_seconds), the proof not accepted within 5 minutes (else replay_detected;
  // replay_cache.h), the account still premium with consent and the exclusive_mode flag still on
  // (else not_premium, consent_required, feature_disabled). Success is ExclusiveActionValidated
  // with the device, the proof's jti, hash and replay key.
  //
  // Every refusal of a request whose token verified is chained (ExclusiveRequestRejected with
  // the reason, jti, device, action and proof hash) while the user is under the rate; beyond
  // it one record a second, reason "rate_limited", stands for that second's refusals, so no
  // client can grow the log by more than rate + 1 records a second per user. A failed
  // projection read is answered (unavailable), not chained; a failed append refuses the request
  // (unavailable, 503) before anything is served or remembered.
  struct Validated {
    std::string action;
    TimePoint recorded_at;
    ledger::Position position;
    ledger::Hash hash{};
  };
  Outcome<Validated> validate(const Caller& c, const SignedRequest& request,
                              std::string_view action, std::string_view payload_json);
  // ExclusiveEnded with the proof's jti, hash and replay key: the token stops working at once.
  // The same checks as validate but idleness and the rate (a locked session can be ended); a
  // replayed /end is replay_detected, an ended or expired session invalid_token, both chained.
  Outcome<void> end(const Caller& c, const SignedRequest& request);
  // A signed request the route cannot take (its body is not what the route reads): the proof's
  // refusal if it does not check out, else invalid_request with `problem`, chained as
  // "invalid_request" like every refusal.
  Refusal refuse_request(const Caller& c, const SignedRequest& request, std::string_view action,
                         std::string_view problem);
  // With server nonces, the nonce answers hand out (DPoP-Nonce) so the next proof carries it.
  std::optional<std::string> next_nonce(TimePoint now) const;

 private:
  // The account row of an active premium user the exclusive_mode flag matches (its roles go
  // into the session token): no_account, not_premium or feature_disabled otherwise.
  Outcome<projections::UserRow> require_allowed(const UserId& user) const;
  struct Proven {
    jose::AccessClaims claims;
    std::string jti;
  };
  Outcome<Started> start_checked(const Caller& c, const UserId& user, const SessionId& session,
                                 ReauthToken reauth, const StartRequest& request);
  Outcome<Validated> validate_checked(const Caller& c, const SignedRequest& request,
                                      std::string_view action, std::string_view payload_json);
  void report_refusal(std::string_view stage, const Refusal& r) const;
  // The token and proof checks that need no projection; a spoof or a missing nonce is chained
  // before refusing, naming `action`.
  Outcome<Proven> prove(const Caller& c, const SignedRequest& request, std::string_view action);
  // Chains the refusal of a request of claims.sub on its partition (see validate); not_owner
  // when another node owns it (which answers and records it), success otherwise, recorded or not.
  Outcome<void> record_refusal(const Caller& c, const jose::AccessClaims& claims,
                               const SignedRequest& request, std::string_view action,
                               std::string_view reason, std::string_view jti);

  CommandDeps d_;
  const IdentityCommands& identity_;
  const jose::TokenVerifier& verifier_;
  ExclusiveConfig exclusive_;
  CommandConfig config_;
};

}  // namespace sechex::api::identity
