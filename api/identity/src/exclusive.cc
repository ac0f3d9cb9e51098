#include "api/identity/exclusive.h"

#include <algorithm>

#include "api/crypto/dpop.h"
#include "command_context.h"
#include "ledger/crypto.h"
#include "projections/rate_limits.h"
#include "projections/replay_cache.h"
#include "projections/users.h"

namespace sechex::api::identity {

using namespace detail;

namespace {

constexpr const char* kChallengePurpose = "exclusive_challenge";

// The WebAuthn challenge a client must have signed over: the challenge itself, or for a
// browser with a DPoP key, SHA-256(challenge bytes || the key's RFC 7638 thumbprint as text).
std::string expected_challenge(const ledger::Bytes& raw, const std::optional<std::string>& jkt) {
  if (!jkt) return jose::base64url_encode(ledger::ByteView(raw));
  ledger::Bytes input(raw);
  input.insert(input.end(), jkt->begin(), jkt->end());
  const auto h = ledger::crypto::sha256(input);
  return jose::base64url_encode(ledger::ByteView(h.data(), h.size()));
}

std::string sha256_text(std::string_view data) {
  const auto h = ledger::crypto::sha256(view_of(data));
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

// 000 FR-05: a refused signed request, with what is known of it.
struct Rejection {
  std::string_view session{};
  std::string_view reason{};  // "<refusal>[:<detail>]"
  std::string_view jti{};
  std::string_view device{};
  std::string_view action{};
  std::string_view proof{};           // as sent; recorded as its SHA-256
  std::string_view challenge_hash{};  // a refused activation: the challenge it used up
};

Result<ledger::Bytes> rejected_event(Context& x, const std::string& user, const Rejection& r) {
  return x.event(user, Actor::self(), [&](ledger::EventBuilder& b) {
    auto& f = b.fbb();
    return b.finish(schema::CreateExclusiveRequestRejected(
        f, f.CreateString(std::string(r.session)), f.CreateString(std::string(r.reason)),
        f.CreateString(std::string(r.jti)),
        r.challenge_hash.empty() ? FbBytes(0) : bytes(f, r.challenge_hash),
        f.CreateString(std::string(r.device)), f.CreateString(std::string(r.action)),
        r.proof.empty() ? FbBytes(0) : bytes(f, sha256_text(r.proof))));
  });
}

Refusal refusal_of(const std::error_code& ec, const ExclusiveConfig& config) {
  Refusal r(webauthn::device_unsupported(ec) ? Refused::device_unsupported
                                             : Refused::attestation_failed);
  r.reason = std::string(webauthn::reason_code(ec));
  if (r.why == Refused::device_unsupported) r.url = config.upgrade_url;
  return r;
}

// What start learns before it takes the partition: the parsed data, the key that will sign the
// proofs and the statement's verdict (it needs no projection, so no lock is held for it).
struct Presented {
  webauthn::ClientData client;
  webauthn::AttestationObject object;
  jose::EcPublicKey signing_key;
  std::string jkt;
  std::optional<std::string> dpop_jkt;  // set when a browser's DPoP key signs the proofs
  Result<webauthn::Attested> statement = webauthn::Attested{};
};

Outcome<Presented> read_request(const StartRequest& req, const ExclusiveConfig& config,
                                TimePoint now) {
  ledger::Bytes attestation, client_data;
  if (!jose::base64url_decode(req.attestation, attestation) ||
      !jose::base64url_decode(req.client_data, client_data)) {
    Refusal r(Refused::attestation_failed);
    r.reason = "bad_encoding";
    return r;
  }
  auto client = webauthn::parse_client_data(
      std::string_view(reinterpret_cast<const char*>(client_data.data()), client_data.size()));
  if (!client) return refusal_of(client.error(), config);
  auto object = webauthn::parse_attestation_object(attestation);
  if (!object) return refusal_of(object.error(), config);
  const auto& credential = object.value().parsed.credential;
  if (!credential || !credential->key.es256) {
    return refusal_of(webauthn::AttestationErrc::key_unsupported, config);
  }
  std::optional<jose::EcPublicKey> dpop;
  if (req.dpop_jwk) {
    auto key = jose::EcPublicKey::from_jwk(*req.dpop_jwk);
    if (!key) {
      Refusal r(Refused::attestation_failed);
      r.reason = "bad_dpop_jwk";
      return r;
    }
    dpop = std::move(key).value();
  }
  const auto signing_key = dpop ? *dpop : *credential->key.es256;
  const auto hash = ledger::crypto::sha256(client_data);
  webauthn::AttestationPolicy policy{
      config.roots, config.allow_self_attestation,
      config.verify_at
          ? config.verify_at
          : std::optional<std::int64_t>(
                std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()),
      config.app_attest};
  Presented out{std::move(client).value(),
                std::move(object).value(),
                signing_key,
                signing_key.thumbprint(),
                std::nullopt,
                webauthn::Attested{}};
  if (dpop) out.dpop_jkt = out.jkt;
  out.statement =
      webauthn::verify_attestation(out.object, ledger::ByteView(hash.data(), hash.size()), policy);
  return out;
}

}  // namespace

ExclusiveCommands::ExclusiveCommands(CommandDeps deps, const IdentityCommands& identity,
                                     const jose::TokenVerifier& verifier, ExclusiveConfig config)
    : d_(std::move(deps)),
      identity_(identity),
      verifier_(verifier),
      exclusive_(std::move(config)) {}

Outcome<projections::UserRow> ExclusiveCommands::require_allowed(const UserId& user) const {
  auto row = account_of(d_.commands.projections(), user.str());
  if (!row || !row->active()) return Refused::no_account;
  if (!row->has_role("premium")) return Refused::not_premium;
  // Consent withdrawn (PATCH /v1/me): device-bound processing stops too (004 FR-036).
  if (row->consent_version.empty()) return Refused::consent_required;
  SECHEX_TRY(const bool on, identity_.flag_on_for(kExclusiveModeFlag, *row));
  if (!on) return Refused::feature_disabled;
  return std::move(*row);
}

Outcome<ExclusiveCommands::Challenge> ExclusiveCommands::challenge(const Caller& c,
                                                                   const UserId& user) {
  Context x(d_, config_, c);
  SECHEX_TRYV(require_allowed(user));
  auto raw = ledger::crypto::random_bytes(32);
  if (!raw) return Refused::internal;
  const auto text = jose::base64url_encode(ledger::ByteView(raw.value()));
  const auto hash = d_.lookup.token(kChallengePurpose, text);
  const auto expires_at = micros_of(c.now + exclusive_.challenge_ttl);
  SECHEX_TRYV(x.run(x.partition_of(user.str()), [&]() -> Result<Events> {
    SECHEX_TRY(auto issued, x.event(user.str(), Actor::self(),
                                    [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
                                      SECHEX_TRY(auto sealed, b.seal("challenge", text));
                                      auto& f = b.fbb();
                                      return b.finish(schema::CreateExclusiveChallengeIssued(
                                          f, bytes(f, hash), expires_at, sealed));
                                    }));
    Events out;
    out.push_back(std::move(issued));
    return out;
  }));
  return Challenge{text, whole_seconds(exclusive_.challenge_ttl)};
}

void ExclusiveCommands::report_refusal(std::string_view stage, const Refusal& r) const {
  if (!exclusive_.on_refused) return;
  const bool attestation =
      r.why == Refused::attestation_failed || r.why == Refused::device_unsupported;
  exclusive_.on_refused(
      stage, attestation && !r.reason.empty() ? std::string_view(r.reason) : to_string(r.why));
}

Outcome<ExclusiveCommands::Started> ExclusiveCommands::start(const Caller& c, const UserId& user,
                                                             const SessionId& session,
                                                             ReauthToken reauth,
                                                             const StartRequest& request) {
  auto out = start_checked(c, user, session, reauth, request);
  if (!out) {
    report_refusal("activation", out.error());
  } else if (exclusive_.on_activated) {
    exclusive_.on_activated();
  }
  return out;
}

Outcome<ExclusiveCommands::Started> ExclusiveCommands::start_checked(const Caller& c,
                                                                     const UserId& user,
                                                                     const SessionId& session,
                                                                     ReauthToken reauth,
                                                                     const StartRequest& request) {
  Context x(d_, config_, c);
  SECHEX_TRY(const auto account, require_allowed(user));
  SECHEX_TRY(auto p, read_request(request, exclusive_, c.now));
  const auto& id = user.str();
  auto& store = x.store();
  auto fresh_device_id = random_token(16);
  auto session_id = random_token(16);
  if (!fresh_device_id || !session_id) return Refused::internal;
  const auto xs = "xs_" + session_id.value();
  const auto expires_at = c.now + exclusive_.session_ttl;

  std::optional<Refusal> refused;
  bool mailed = false;
  std::string device;
  SECHEX_TRYV(x.run(x.partition_of(id), [&]() -> Result<Events> {
    refused.reset();
    mailed = false;
    // The enrolled devices are read on the partition, so a removal racing this activation is
    // seen: the key of a removed device is a new device again (step-up, mail). A new device
    // while another is enrolled needs a step-up, asked before the challenge is spent.
    SECHEX_TRY(const auto enrolled, projections::active_devices(store, id));
    const auto same = std::find_if(enrolled.begin(), enrolled.end(),
                                   [&](const auto& d) { return d.thumbprint == p.jkt; });
    const bool new_device = same == enrolled.end();
    if (new_device && !enrolled.empty() &&
        !identity_.reauth_granted(user, session, reauth, c.now)) {
      refused = Refused::reauth_required;
      return Events{};
    }
    device = new_device ? "dev_" + fresh_device_id.value() : same->id;
    SECHEX_TRY(auto challenge, projections::live_challenge(store, id, c.now));
    if (!challenge) {
      refused = refusal_of(webauthn::AttestationErrc::wrong_challenge, exclusive_);
      return Events{};  // nothing outstanding to spend
    }
    SECHEX_TRY(auto raw_text, x.open_sealed(id, challenge->sealed, "challenge"));
    ledger::Bytes raw;
    if (!jose::base64url_decode(raw_text, raw)) return ledger::Errc::corruption;
    const auto expected = expected_challenge(raw, p.dpop_jkt);
    auto checked = webauthn::check_registration(
        p.client, p.object.parsed,
        {expected, exclusive_.origin, exclusive_.rp_id, p.object.fmt == "apple-appattest"});
    std::error_code failure = checked ? std::error_code() : checked.error();
    if (!failure && !p.statement) failure = p.statement.error();
    const std::string hash(challenge->hash.begin(), challenge->hash.end());
    Events out;
    if (failure) {
      refused = refusal_of(failure, exclusive_);
      const auto reason = std::string(to_string(refused->why)) + ":" + refused->reason;
      SECHEX_TRY(
          auto rejected,
          rejected_event(x, id, {.reason = reason, .action = "activate", .challenge_hash = hash}));
      out.push_back(std::move(rejected));
      return out;
    }
    const auto& attested = p.statement.value();
    const auto& aaguid = p.object.parsed.credential->aaguid;
    SECHEX_TRY(auto activated,
               x.event(id, Actor::self(), [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
                 const auto point = p.signing_key.sec1();
                 SECHEX_TRY(auto key,
                            b.seal("device_key",
                                   std::string_view(reinterpret_cast<const char*>(point.data()),
                                                    point.size())));
                 flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> name = 0;
                 if (request.device_name) {
                   SECHEX_TRY(name, b.seal("device_name", *request.device_name));
                 }
                 auto& f = b.fbb();
                 return b.finish(schema::CreateExclusiveActivated(
                     f, f.CreateString(xs), f.CreateString(p.jkt), name,
                     f.CreateString(p.object.fmt), micros_of(expires_at), f.CreateString(device),
                     key, f.CreateVector(aaguid.data(), aaguid.size()),
                     f.CreateString(attested.chain_fingerprint), bytes(f, hash),
                     f.CreateString(attested.type)));
               }));
    out.push_back(std::move(activated));
    // API.md: a device added while another is enrolled is told to the owner.
    if (new_device && !enrolled.empty()) {
      SECHEX_TRY(auto address, x.open_sealed(id, account.email, "email"));
      SECHEX_TRYV(x.queue_mail(out, id, kMailExclusiveNewDevice, address, ""));
      mailed = true;
    }
    return out;
  }));
  if (refused) return *refused;
  if (mailed && d_.mail_queued) d_.mail_queued();
  // The roles of the row the command read (no second read).
  auto token =
      d_.issuer.issue({id, xs, account.roles, false, p.jkt},
                      std::chrono::duration_cast<std::chrono::seconds>(exclusive_.session_ttl));
  if (!token) return Refused::internal;
  return Started{std::move(token).value(), device, whole_seconds(exclusive_.session_ttl)};
}

Outcome<std::vector<ExclusiveCommands::Device>> ExclusiveCommands::devices(
    const UserId& user) const {
  auto rows = projections::active_devices(d_.commands.projections(), user.str());
  if (!rows) return Refused::unavailable;
  std::vector<Device> out;
  for (auto& row : rows.value()) {
    Device d{std::move(row), std::nullopt};
    if (!d.row.name.empty()) {
      auto plain =
          d_.keys.open_field(user.str(), d.row.name.event_id, "device_name", d.row.name.sealed);
      if (plain) d.name = std::string(plain.value().begin(), plain.value().end());
    }
    out.push_back(std::move(d));
  }
  return out;
}

Outcome<void> ExclusiveCommands::remove_device(const Caller& c, const UserId& user,
                                               std::string_view device_id) {
  Context x(d_, config_, c);
  const auto& id = user.str();
  bool found = false;
  SECHEX_TRYV(x.run(x.partition_of(id), [&]() -> Result<Events> {
    SECHEX_TRY(auto row, projections::device_row(x.store(), id, device_id));
    found = row && row->active;
    if (!found) return Events{};
    SECHEX_TRY(auto removed, x.event(id, Actor::self(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateExclusiveDeviceRemoved(
          f, f.CreateString(std::string(device_id)), f.CreateString("owner")));
    }));
    Events out;
    out.push_back(std::move(removed));
    return out;
  }));
  if (!found) return Refused::not_found;
  return boost::outcome_v2::success();
}

Outcome<ExclusiveCommands::Status> ExclusiveCommands::status(const UserId& user,
                                                             TimePoint now) const {
  const auto& store = d_.commands.projections();
  const auto row = account_of(store, user.str());
  if (!row || !row->active()) return Refused::no_account;
  Status out;
  out.premium = row->has_role("premium");
  SECHEX_TRY(const bool flag_on, identity_.flag_on_for(kExclusiveModeFlag, *row));
  out.available = out.premium && flag_on;
  if (!out.premium) {
    out.reason = "not_premium";
  } else if (!flag_on) {
    out.reason = "feature_disabled";
  }
  auto sessions = projections::active_exclusive_sessions(store, user.str(), now);
  if (!sessions) return Refused::unavailable;
  for (auto& s : sessions.value()) {
    // A session idle past the window is locked at its next request: not active any more.
    const auto lock_at = time_from_micros(s.last_validated) + exclusive_.idle;
    if (now >= lock_at) continue;
    out.idle_lock_at = lock_at;
    out.session = std::move(s);
    break;  // newest first
  }
  return out;
}

// ---- Every request signed ----

namespace {

// The user's signed requests, accepted and refused, in the last second.
Result<projections::RateWindow> user_window(Context& x, const std::string& user,
                                            std::uint32_t rate) {
  return projections::rate_window(x.store(), projections::kScopeExclusiveUser, user, x.now,
                                  std::chrono::seconds{1}, rate);
}

// 000 FR-05: every refusal of a request whose token verified is chained, with why. Refusals
// count in the user's rate, so while the user is under it each is recorded; beyond it, one
// record a second (reason "rate_limited") stands for all of that second's, so whatever a client
// sends, the log grows by at most rate + 1 records a second per user.
Result<void> chain_refusal(Context& x, const std::string& user,
                           const projections::RateWindow& window, std::uint32_t rate, Rejection r,
                           Events& out) {
  if (window.count >= rate) {
    SECHEX_TRY(const auto recorded,
               projections::rate_count(x.store(), projections::kScopeExclusiveOverRate, user, x.now,
                                       std::chrono::seconds{1}));
    if (recorded > 0) return boost::outcome_v2::success();
    r.reason = projections::kExclusiveOverRate;
  }
  SECHEX_TRY(auto e, rejected_event(x, user, r));
  out.push_back(std::move(e));
  return boost::outcome_v2::success();
}

// The device of a request's session, "" when it has none (a view into `session`).
std::string_view device_of(const std::optional<projections::ExclusiveSessionRow>& session) {
  return session ? std::string_view(session->device_id) : std::string_view();
}

// How a signed request's command refuses on the user's partition: `reject(why, reason)` sets
// the answer and chains the rejection `base` with that reason (chain_refusal), returning the
// events to append. Everything captured must outlive the command.
auto rejecter(Context& x, const std::string& user, const projections::RateWindow& window,
              std::uint32_t rate, Rejection base, std::optional<Refusal>& refused, Events& out) {
  return [&x, &user, &window, rate, base, &refused, &out](
             Refusal why, std::string_view reason) -> Result<Events> {
    refused = std::move(why);
    auto r = base;
    r.reason = reason;
    SECHEX_TRYV(chain_refusal(x, user, window, rate, r, out));
    return std::move(out);
  };
}

// Where a session stands for a request at `now`: the reason to refuse it, or "" when active.
std::string_view session_refusal(const std::optional<projections::ExclusiveSessionRow>& session,
                                 const std::string& user, TimePoint now) {
  if (!session || session->user != user) return "invalid_token:unknown_session";
  if (session->state == "ended") return "invalid_token:session_ended";
  if (micros_of(now) >= session->expires_at) return "invalid_token:session_expired";
  if (session->state == "locked") return "exclusive_locked";
  return "";
}

}  // namespace

Outcome<void> ExclusiveCommands::record_refusal(const Caller& c, const jose::AccessClaims& claims,
                                                const SignedRequest& request,
                                                std::string_view action, std::string_view reason,
                                                std::string_view jti) {
  Context x(d_, config_, c);
  const auto& user = claims.sub;
  const auto p = x.partition_of(user);
  auto ran = d_.commands.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(const auto window, user_window(x, user, exclusive_.rate_per_second));
    SECHEX_TRY(auto session, projections::exclusive_session(x.store(), claims.sid));
    Events out;
    SECHEX_TRYV(chain_refusal(x, user, window, exclusive_.rate_per_second,
                              {claims.sid, reason, jti, device_of(session), action, request.proof},
                              out));
    return out;
  });
  // Another node owns the user: it answers (421), and records the refusal there. Any other
  // failure to record still refuses the request.
  if (!ran && ran.error() == OwnershipErrc::not_owner) return x.failed(ran.error(), p);
  return boost::outcome_v2::success();
}

Outcome<ExclusiveCommands::Proven> ExclusiveCommands::prove(const Caller& c,
                                                            const SignedRequest& request,
                                                            std::string_view action) {
  // A token that does not verify names nobody: refused, not chained (there is no user to chain
  // it to, and recording it would let anyone write to the log).
  auto verified = verifier_.verify(request.token);
  if (!verified || verified.value().claims.cnf_jkt.empty()) return Refused::invalid_token;
  auto claims = std::move(verified).value().claims;
  const auto htu = dpop::normalize_htu(exclusive_.public_url + std::string(request.path));
  const auto now_s =
      std::chrono::duration_cast<std::chrono::seconds>(c.now.time_since_epoch()).count();
  auto proof =
      request.proof.empty()
          ? Result<dpop::VerifiedProof>(dpop::DpopErrc::malformed)
          : dpop::verify_proof(request.proof, {request.method, htu ? std::string_view(*htu) : "",
                                               request.token, claims.cnf_jkt, now_s});
  Refusal r;
  std::string reason;
  std::string jti;
  if (proof) {
    const auto& nonce = proof.value().nonce;
    if (!exclusive_.nonces || (nonce && exclusive_.nonces->valid(*nonce, now_s))) {
      return Proven{std::move(claims), std::move(proof).value().jti};
    }
    // RFC 9449 §9: the protocol's round trip, chained like any refusal (its jti is not spent).
    r = Refusal(Refused::dpop_nonce_required);
    r.reason = exclusive_.nonces->current(now_s);
    reason = "dpop_nonce_required";
    jti = proof.value().jti;
  } else {
    r = Refusal(Refused::spoof_attempt);
    r.reason =
        request.proof.empty() ? "missing_proof" : std::string(dpop::reason_code(proof.error()));
    reason = "spoof_attempt:" + r.reason;
  }
  SECHEX_TRYV(record_refusal(c, claims, request, action, reason, jti));
  return r;
}

Refusal ExclusiveCommands::refuse_request(const Caller& c, const SignedRequest& request,
                                          std::string_view action, std::string_view problem) {
  auto proven = prove(c, request, action);
  if (!proven) return proven.error();
  Refusal r(Refused::invalid_request);
  r.reason = std::string(problem);
  auto recorded = record_refusal(c, proven.value().claims, request, action, "invalid_request",
                                 proven.value().jti);
  return recorded ? r : recorded.error();
}

Outcome<ExclusiveCommands::Validated> ExclusiveCommands::validate(const Caller& c,
                                                                  const SignedRequest& request,
                                                                  std::string_view action,
                                                                  std::string_view payload_json) {
  auto out = validate_checked(c, request, action, payload_json);
  if (!out) report_refusal("request", out.error());
  return out;
}

Outcome<ExclusiveCommands::Validated> ExclusiveCommands::validate_checked(
    const Caller& c, const SignedRequest& request, std::string_view action,
    std::string_view payload_json) {
  const auto checking = std::chrono::steady_clock::now();
  auto proven_or = prove(c, request, action);
  if (proven_or && exclusive_.on_proof_checked) {
    exclusive_.on_proof_checked(std::chrono::steady_clock::now() - checking);
  }
  SECHEX_TRY(auto proven, std::move(proven_or));
  Context x(d_, config_, c);
  const auto& user = proven.claims.sub;
  const auto& sid = proven.claims.sid;
  const auto rate = exclusive_.rate_per_second;
  const auto key = projections::replay_key(proven.claims.cnf_jkt, proven.jti);
  auto& store = x.store();
  std::optional<Refusal> refused;
  const auto p = x.partition_of(user);
  auto ran = d_.commands.run(p, [&]() -> Result<Events> {
    refused.reset();
    SECHEX_TRY(auto session, projections::exclusive_session(store, sid));
    SECHEX_TRY(const auto window, user_window(x, user, rate));
    Events out;
    const auto reject =
        rejecter(x, user, window, rate,
                 {sid, "", proven.jti, device_of(session), action, request.proof}, refused, out);
    if (const auto why = session_refusal(session, user, c.now); !why.empty()) {
      return reject(why == "exclusive_locked" ? Refused::exclusive_locked : Refused::invalid_token,
                    why);
    }
    if (c.now - time_from_micros(session->last_validated) >= exclusive_.idle) {
      refused = Refused::exclusive_locked;
      SECHEX_TRY(auto locked, x.event(user, Actor::system(), [&](ledger::EventBuilder& b) {
        auto& f = b.fbb();
        return b.finish(
            schema::CreateExclusiveLocked(f, f.CreateString(sid), f.CreateString("idle")));
      }));
      out.push_back(std::move(locked));
      return out;
    }
    // The rate before the replay cache: a replay counts in it like any refusal.
    if (window.count >= rate) {
      Refusal r(Refused::rate_limited);
      r.retry_after_seconds = retry_after_seconds(window.below_limit_at, c.now);
      return reject(r, projections::kExclusiveOverRate);
    }
    SECHEX_TRY(auto seen, projections::seen_proof(store, key, micros_of(c.now)));
    if (seen) return reject(Refused::replay_detected, "replay_detected");
    // The role and the flag are read on every request: a revocation refuses the next one. A
    // failed read is no decision about the user: answered, not chained.
    auto allowed = require_allowed(UserId(user));
    if (!allowed) {
      const auto why = allowed.error();
      if (why.why == Refused::unavailable || why.why == Refused::internal) {
        refused = why;
        return out;
      }
      return reject(why, to_string(why.why));
    }
    const auto payload_hash = ledger::crypto::sha256(view_of(payload_json));
    SECHEX_TRY(auto validated, x.event(user, Actor::self(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateExclusiveActionValidated(
          f, f.CreateString(sid), f.CreateString(std::string(action)), f.CreateString(proven.jti),
          f.CreateVector(payload_hash.data(), payload_hash.size()), bytes(f, key),
          f.CreateString(session->device_id), bytes(f, sha256_text(request.proof))));
    }));
    out.push_back(std::move(validated));
    return out;
  });
  if (!ran) return x.failed(ran.error(), p);
  if (refused) return *refused;
  if (ran.value().empty()) return Refused::internal;
  const auto& record = ran.value().back();
  return Validated{std::string(action), c.now, record.position, record.hash};
}

std::optional<std::string> ExclusiveCommands::next_nonce(TimePoint now) const {
  if (!exclusive_.nonces) return std::nullopt;
  return exclusive_.nonces->current(
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
}

Outcome<void> ExclusiveCommands::end(const Caller& c, const SignedRequest& request) {
  SECHEX_TRY(auto proven, prove(c, request, "end"));
  Context x(d_, config_, c);
  const auto& user = proven.claims.sub;
  const auto& sid = proven.claims.sid;
  const auto rate = exclusive_.rate_per_second;
  const auto key = projections::replay_key(proven.claims.cnf_jkt, proven.jti);
  std::optional<Refusal> refused;
  const auto p = x.partition_of(user);
  auto ran = d_.commands.run(p, [&]() -> Result<Events> {
    refused.reset();
    SECHEX_TRY(auto session, projections::exclusive_session(x.store(), sid));
    SECHEX_TRY(const auto window, user_window(x, user, rate));
    Events out;
    const auto reject =
        rejecter(x, user, window, rate,
                 {sid, "", proven.jti, device_of(session), "end", request.proof}, refused, out);
    // A replayed /end is a replay, even once the session it ended is over.
    SECHEX_TRY(auto seen, projections::seen_proof(x.store(), key, micros_of(c.now)));
    if (seen && session && session->user == user) {
      return reject(Refused::replay_detected, "replay_detected");
    }
    // A locked session can still be ended (the user leaves exclusive mode on that device).
    if (const auto why = session_refusal(session, user, c.now);
        !why.empty() && why != "exclusive_locked") {
      return reject(Refused::invalid_token, why);
    }
    SECHEX_TRY(auto ended, x.event(user, Actor::self(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateExclusiveEnded(
          f, f.CreateString(sid), f.CreateString("user"), f.CreateString(proven.jti), bytes(f, key),
          f.CreateString(session->device_id), bytes(f, sha256_text(request.proof))));
    }));
    out.push_back(std::move(ended));
    return out;
  });
  if (!ran) return x.failed(ran.error(), p);
  if (refused) return *refused;
  return boost::outcome_v2::success();
}

}  // namespace sechex::api::identity
