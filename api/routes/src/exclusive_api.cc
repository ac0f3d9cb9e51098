#include "api/routes/exclusive_api.h"

#include "identity_support.h"

namespace sechex::api {

using namespace identity_support;

namespace {

// A string member, or nullopt when absent; a member of another type is a 400.
ApiResult<std::optional<std::string>> optional_string(const json& body, const char* name,
                                                      std::size_t max_bytes) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::optional<std::string>{};
  if (!it->is_string() || it->get_ref<const std::string&>().size() > max_bytes) {
    return boost::outcome_v2::failure(ApiError{400, "invalid_request",
                                               std::string(name) + " must be a string of at most " +
                                                   std::to_string(max_bytes) + " bytes"});
  }
  return std::optional<std::string>(it->get<std::string>());
}

}  // namespace

ExclusiveApi::ExclusiveApi(IdentityDeps deps, IdentityConfig config,
                           identity::ExclusiveCommands& exclusive)
    : d_(std::move(deps)), config_(std::move(config)), exclusive_(exclusive) {}

void ExclusiveApi::add_routes(RouteRegistry& routes) {
  using W = const Principal&;
  routes.guarded(
      "POST", "/v1/secure/exclusive/challenge",
      [this](const Request& r, W w) { return challenge(r, w); }, Exec::pool);
  routes.guarded(
      "POST", "/v1/secure/exclusive/start", [this](const Request& r, W w) { return start(r, w); },
      Exec::pool);
  routes.guarded(
      "GET", "/v1/secure/exclusive/status", [this](const Request& r, W w) { return status(r, w); },
      Exec::read);
  using D = const RouteRegistry::DeviceCredentials&;
  routes.device_signed(
      "POST", "/v1/secure/exclusive/validate",
      [this](const Request& r, D d) { return validate(r, d); }, Exec::pool);
  routes.device_signed(
      "POST", "/v1/secure/exclusive/end", [this](const Request& r, D d) { return end(r, d); },
      Exec::pool);
  routes.guarded(
      "GET", "/v1/me/devices", [this](const Request& r, W w) { return devices(r, w); }, Exec::read);
  routes.guarded(
      "DELETE", "/v1/me/devices/{id}",
      [this](const Request& r, W w) { return remove_device(r, w); }, Exec::pool);
}

Response ExclusiveApi::challenge(const Request& req, const Principal& who) {
  SECHEX_TRY(const auto issued,
             answered(exclusive_.challenge(caller_of(d_, config_, req), UserId(who.subject))));
  auto r = json_ok(
      json{{"challenge", issued.challenge}, {"expiresIn", issued.expires_in_seconds}}.dump());
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

Response ExclusiveApi::status(const Request&, const Principal& who) {
  SECHEX_TRY(const auto s, answered(exclusive_.status(UserId(who.subject), d_.clock.now())));
  json out{{"available", s.available}, {"premium", s.premium}, {"active", s.session.has_value()}};
  if (!s.available) out["reason"] = s.reason;
  if (s.session) {
    out["deviceId"] = s.session->device_id;
    out["expiresAt"] = format_rfc3339(s.session->expires_at);
    out["idleLockAt"] =
        format_rfc3339(std::min(s.idle_lock_at, time_from_micros(s.session->expires_at)));
  }
  auto r = json_ok(out.dump());
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

Response ExclusiveApi::start(const Request& req, const Principal& who) {
  // A real Android Keystore chain is 3-4 KB of DER, so the attestation object's base64url text
  // outgrows the API's usual 4 KiB strings: allow what the attestation parser itself allows.
  static constexpr JsonLimits kStartLimits{2, (webauthn::kMaxAttestationObject + 2) / 3 * 4, 100};
  SECHEX_TRY(const auto body, read_body(req, kStartLimits));
  const auto attestation = body.find("deviceAttestation");
  const auto client_data = body.find("clientDataJSON");
  if (attestation == body.end() || !attestation->is_string() || client_data == body.end() ||
      !client_data->is_string()) {
    return ApiError{400, "invalid_request",
                    "deviceAttestation and clientDataJSON (base64url strings) are required"};
  }
  SECHEX_TRY(auto name, optional_string(body, "deviceName", 100));
  identity::StartRequest start{attestation->get_ref<const std::string&>(),
                               client_data->get_ref<const std::string&>(), std::move(name),
                               std::nullopt};
  if (const auto jwk = body.find("dpopJwk"); jwk != body.end() && !jwk->is_null()) {
    if (!jwk->is_object()) {
      return ApiError{400, "invalid_request", "dpopJwk must be a public JWK object"};
    }
    start.dpop_jwk = *jwk;
  }
  const auto* presented = req.header("x-reauth-token");
  SECHEX_TRY(const auto started,
             answered(exclusive_.start(
                 caller_of(d_, config_, req), UserId(who.subject), SessionId(who.session),
                 identity::ReauthToken(presented != nullptr ? std::string_view(*presented)
                                                            : std::string_view()),
                 start)));
  auto r = json_ok(json{{"sessionToken", started.session_token.token},
                        {"expiresIn", started.expires_in_seconds},
                        {"deviceId", started.device_id}}
                       .dump(),
                   201);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

Response ExclusiveApi::validate(const Request& req,
                                const RouteRegistry::DeviceCredentials& signed_with) {
  const identity::SignedRequest request{signed_with.token, signed_with.proof, req.method, req.path};
  // 000 FR-05: a body the route cannot take is refused after the proof is checked, so the
  // refusal is chained like any other (and a bad proof answers as a spoof first).
  const auto refuse = [&](ApiError problem) -> Response {
    const auto refused =
        exclusive_.refuse_request(caller_of(d_, config_, req), request, "", problem.message);
    return refused.why == identity::Refused::invalid_request ? std::move(problem)
                                                             : to_api_error(refused);
  };
  auto body = read_body(req);
  if (!body) return refuse(body.error());
  const auto action = body.value().find("action");
  if (action == body.value().end() || !action->is_string() ||
      action->get_ref<const std::string&>().empty() ||
      action->get_ref<const std::string&>().size() > 100) {
    return refuse({400, "invalid_request", "action must be a string of 1 to 100 bytes"});
  }
  const auto payload = body.value().find("payload");
  const std::string payload_text = payload == body.value().end() ? "" : payload->dump();
  SECHEX_TRY(const auto done,
             answered(exclusive_.validate(caller_of(d_, config_, req), request,
                                          action->get_ref<const std::string&>(), payload_text)));
  auto r = json_ok(
      json{{"status", "ok"},
           {"result",
            {{"action", done.action},
             {"recordedAt", format_rfc3339(done.recorded_at)},
             {"receipt",
              {{"partition", done.position.partition.value},
               {"seq", done.position.seq.value},
               {"hash", ledger::to_hex(ledger::ByteView(done.hash.data(), done.hash.size()))}}}}}}
          .dump());
  // RFC 9449 §8.2: the nonce for the next proof, so a client need not be refused to learn it.
  if (auto nonce = exclusive_.next_nonce(d_.clock.now())) {
    r.headers.emplace_back("DPoP-Nonce", std::move(*nonce));
  }
  return r;
}

Response ExclusiveApi::end(const Request& req,
                           const RouteRegistry::DeviceCredentials& signed_with) {
  SECHEX_TRYV(answered(exclusive_.end(
      caller_of(d_, config_, req), {signed_with.token, signed_with.proof, req.method, req.path})));
  return json_ok(json{{"status", "ended"}}.dump());
}

Response ExclusiveApi::devices(const Request&, const Principal& who) {
  SECHEX_TRY(const auto list, answered(exclusive_.devices(UserId(who.subject))));
  json out = json::array();
  for (const auto& d : list) {
    out.push_back(json{{"deviceId", d.row.id},
                       {"name", d.name ? json(*d.name) : json(nullptr)},
                       {"format", d.row.format},
                       {"attestationType", d.row.attestation_type},
                       {"aaguid", d.row.aaguid_hex},
                       {"createdAt", format_rfc3339(d.row.created_at)}});
  }
  return json_ok(json{{"devices", out}}.dump());
}

Response ExclusiveApi::remove_device(const Request& req, const Principal& who) {
  SECHEX_TRYV(answered(exclusive_.remove_device(caller_of(d_, config_, req), UserId(who.subject),
                                                req.params.at("id"))));
  return json_ok(json{{"status", "removed"}}.dump());
}

}  // namespace sechex::api
