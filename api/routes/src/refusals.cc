// The one place a command's refusal (api/identity/commands.h) becomes API.md's status, code and
// details. Messages are English; i18n.h localises them by code.
#include "api/routes/refusals.h"

#include "identity_support.h"

namespace sechex::api {

using namespace identity_support;

namespace {

// The 423 of every route that checks a password or a code: details.lockedUntil (RFC 3339, null
// while only an admin can unlock), details.needsAdminUnlock, and details.retryAfter with the
// Retry-After header while the lock ends by itself.
ApiError account_locked(const identity::Refusal& r) {
  const bool admin_only = r.locked_until == identity::kNever;
  json details{{"lockedUntil", admin_only ? json(nullptr) : json(format_rfc3339(r.locked_until))},
               {"needsAdminUnlock", admin_only}};
  if (!admin_only && r.retry_after_seconds > 0) details["retryAfter"] = r.retry_after_seconds;
  return retry_later(423, "account_locked",
                     admin_only ? "this account is locked; contact support to unlock it"
                                : "too many failed attempts; this account is locked for a while",
                     admin_only ? 0 : r.retry_after_seconds, details);
}

ApiError link_refused(const identity::Refusal& r) {
  const bool verify = r.link == identity::Link::verify_email;
  const json resend = verify ? json{{"resendUrl", "/v1/auth/verify-email/resend"}} : json::object();
  if (r.why == Refused::link_expired) {
    return {410, "token_expired",
            verify ? "this verification link has expired; request a new one"
                   : "this reset link has expired; request a new one",
            resend};
  }
  return {400, "token_invalid",
          std::string("this ") + (verify ? "verification" : "reset") +
              " link is not valid (already used, or replaced by a newer one); request a new one",
          resend};
}

}  // namespace

ApiError to_api_error(const identity::Refusal& r) {
  switch (r.why) {
    case Refused::not_owner:
      return {
          421,
          "misdirected",
          "this node does not own the account's partition; send it to the owner",
          {{"partition", r.partition.value}, {"owner", r.owner ? json(*r.owner) : json(nullptr)}}};
    case Refused::overloaded:
      return retry_later(503, "overloaded", "too many password checks at once; retry shortly", 1);
    case Refused::unavailable:
      return retry_later(503, "unavailable", "the ledger could not record this; retry shortly", 1);
    case Refused::password_changed:
      return retry_later(503, "unavailable", "the password changed meanwhile; retry", 1);
    case Refused::internal:
      return {500, "internal_error", "the request could not be completed"};
    case Refused::email_taken:
      return {409, "email_taken", "an account with this email already exists"};
    case Refused::invalid_email:
      return {400, "invalid_email", "the email address is not valid",
              json{{"reason", r.email_reason}}};
    case Refused::weak_password:
      return {400,
              "weak_password",
              "the password does not meet the password policy",
              {{"unmet", r.password_check.unmet},
               {"strength", r.password_check.strength},
               {"strengthLabel", r.password_check.strength_label},
               {"policy", policy_json(r.policy)}}};
    case Refused::link_invalid:
    case Refused::link_expired:
      return link_refused(r);
    case Refused::rate_limited:
      return retry_later(429, "rate_limited", "too many attempts; wait before trying again",
                         r.retry_after_seconds, json{{"retryAfter", r.retry_after_seconds}});
    case Refused::account_locked:
      return account_locked(r);
    case Refused::email_not_verified:
      return {403, "email_not_verified", "verify your email address first",
              json{{"resendUrl", "/v1/auth/verify-email/resend"}}};
    case Refused::invalid_credentials:
      return {401, "invalid_credentials", "the email or password is incorrect",
              json{{"remainingAttempts", r.remaining_attempts}}};
    case Refused::wrong_password:
      return {401, "invalid_credentials", "the password is incorrect",
              json{{"remainingAttempts", r.remaining_attempts}}};
    case Refused::invalid_code:
      return {401, "invalid_code", "the code is not valid"};
    case Refused::code_expired:
      return {410, "code_expired", "the code has expired; request a new one"};
    case Refused::invalid_token: {
      ApiError e{401, "invalid_token", "the token is not valid; log in again"};
      e.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
      return e;
    }
    case Refused::no_account:
      return {404, "not_found", "no account for this token"};
    case Refused::not_found:
      return {404, "not_found", "not found"};
    case Refused::reauth_required:
      return {403, "reauth_required",
              "this operation needs a re-authentication within the last 5 minutes",
              json{{"reauthUrl", "/v1/auth/reauth"}}};
    case Refused::not_premium:
      return {403, "not_premium", "exclusive mode needs a premium subscription"};
    case Refused::attestation_failed:
      return {401, "attestation_failed",
              "the device attestation could not be verified; get a new challenge and try again",
              json{{"reason", r.reason}}};
    case Refused::device_unsupported:
      // 000 FR-09: no silent failure; say what is missing and where to read about devices.
      return {400,
              "device_unsupported",
              "this device cannot hold an exclusive-mode key",
              {{"reason", r.reason},
               {"guidance",
                "exclusive mode needs a device with a hardware-backed P-256 (ES256) key and "
                "a biometric or PIN: a recent phone (Secure Enclave, Android Keystore) or a "
                "platform authenticator"},
               {"upgradeUrl", r.url}}};
    case Refused::invalid_role:
      return {400, "invalid_role", "roles are admin and premium, each granted or revoked once",
              json{{"role", r.reason}}};
    case Refused::spoof_attempt: {
      ApiError e{401, "spoof_attempt", "the request's proof of possession does not check out",
                 json{{"reason", r.reason}}};
      e.headers.emplace_back("WWW-Authenticate",
                             "DPoP algs=\"ES256\", error=\"invalid_dpop_proof\"");
      return e;
    }
    case Refused::replay_detected: {
      // RFC 9449 §7.1: a proof refused for any reason says so in the challenge.
      ApiError e{409, "replay_detected", "this proof was already used; sign a new one"};
      e.headers.emplace_back("WWW-Authenticate",
                             "DPoP algs=\"ES256\", error=\"invalid_dpop_proof\"");
      return e;
    }
    case Refused::feature_disabled:
      return {403, "feature_disabled", "this feature is not available for this account yet"};
    case Refused::invalid_flag:
      return {404, "not_found", "no such flag",
              json{{"flag", r.reason},
                   {"known", std::vector<std::string>(identity::kKnownFlags.begin(),
                                                      identity::kKnownFlags.end())}}};
    case Refused::dpop_nonce_required: {
      // RFC 9449 §9: the client signs again with this nonce.
      ApiError e{401, "use_dpop_nonce", "sign the proof again with the nonce in DPoP-Nonce"};
      e.headers.emplace_back("WWW-Authenticate", "DPoP algs=\"ES256\", error=\"use_dpop_nonce\"");
      e.headers.emplace_back("DPoP-Nonce", r.reason);
      return e;
    }
    case Refused::idempotency_key_reused:
      return {
          422, "idempotency_key_reused",
          "this Idempotency-Key was used with another request; use a new key for a new payment"};
    case Refused::invalid_transition:
      return {409, "invalid_transition", "the payment's current status does not allow this change"};
    case Refused::invalid_cursor:
      return {400, "invalid_request", "the cursor is not one this server handed out",
              json{{"reason", "invalid_cursor"}}};
    case Refused::exclusive_locked:
      return {423, "reauth_required",
              "the exclusive session was idle for too long and is locked; activate again",
              json{{"startUrl", "/v1/secure/exclusive/challenge"}}};
    case Refused::unknown_provider:
      return {404, "not_found", "no sign-in provider of that name is configured"};
    case Refused::oauth_state_mismatch:
      // US6-4: a clear error and a way to start again.
      return {400, "state_mismatch",
              "this sign-in could not be matched to a sign-in begun in this browser (it was "
              "begun elsewhere, already used, or is too old); start the sign-in again",
              json{{"reason", r.reason}, {"startUrl", r.url}}};
    case Refused::oauth_failed:
      return {401, "oauth_failed", "the sign-in provider's answer could not be accepted",
              json{{"reason", r.reason}, {"startUrl", r.url}}};
    case Refused::provider_unavailable:
      return retry_later(502, "provider_unavailable",
                         "the sign-in provider could not be reached; retry shortly", 5);
    case Refused::consent_required:
      if (r.url.empty()) {
        return {403, "consent_required",
                "this needs your consent to the processing of your data, which was withdrawn; "
                "give it again with PATCH /v1/me {\"consent\": true}"};
      }
      return {403, "consent_required",
              "no account exists for this address yet; sign in again agreeing to the processing "
              "of your data to create one",
              json{{"startUrl", r.url}}};
    case Refused::provider_email_unverified:
      return {403, "email_not_verified",
              "the sign-in provider has not verified this address, so it cannot be used to "
              "sign in or create an account",
              json{{"reason", "provider_email_unverified"}}};
    case Refused::local_account_unverified:
      return {409, "account_exists",
              "an account with this address exists but its address is not verified; sign in "
              "with its password and verify the address, then sign in with the provider",
              json{{"reason", "local_account_unverified"}}};
    case Refused::last_sign_in_method:
      return {409, "last_sign_in_method",
              "this is the account's only way to sign in; set a password first (POST "
              "/v1/auth/password/forgot)"};
    case Refused::invalid_request:
      return {400, "invalid_request", r.reason};
  }
  return {500, "internal_error", "the request could not be completed"};
}

}  // namespace sechex::api
