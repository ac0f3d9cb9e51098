#include "identity_support.h"

#include <memory>

namespace sechex::api::identity_support {

ApiResult<json> read_body(const Request& req, const JsonLimits& limits) {
  SECHEX_TRYV(require_json(req));
  auto parsed = parse_json_input(req.body, limits);
  if (!parsed) {
    return boost::outcome_v2::failure(
        invalid_request(parsed.error().reason, "the request body is not acceptable JSON"));
  }
  if (!parsed.value().is_object()) {
    return boost::outcome_v2::failure(invalid_request("not_an_object", "send a JSON object"));
  }
  return std::move(parsed).value();
}

std::optional<std::string> string_field(const json& body, const char* name) {
  const auto it = body.find(name);
  if (it == body.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

bool true_field(const json& body, const char* name) {
  const auto it = body.find(name);
  return it != body.end() && it->is_boolean() && it->get<bool>();
}

ApiError missing(const char* field) {
  return invalid_request("missing_field", std::string("`") + field + "` is required",
                         json{{"field", field}});
}

ApiResult<std::string> required_string(const json& body, const char* name) {
  auto value = string_field(body, name);
  if (!value) return boost::outcome_v2::failure(missing(name));
  return std::move(*value);
}

ApiError retry_later(unsigned status, std::string_view code, std::string_view message,
                     std::int64_t seconds, json details) {
  return {status, std::string(code), std::string(message), std::move(details), seconds};
}

identity::Caller caller_of(const IdentityDeps& deps, const IdentityConfig& config,
                           const Request& req) {
  identity::Caller c;
  c.request_id = req.request_id;
  c.ip = config.proxies.client_ip(req.peer, req.header("x-forwarded-for"));
  c.ip_hash = deps.lookup.ip(client_key(c.ip));
  if (const auto* ua = req.header("user-agent")) c.user_agent = *ua;
  const auto* al = req.header("accept-language");
  c.locale = std::string(negotiate_language(al != nullptr ? *al : std::string_view()));
  c.now = deps.clock.now();
  return c;
}

Response token_pair(const identity::SignedIn& in, const identity::Limits& limits, unsigned status) {
  const auto ttl = identity::whole_seconds(limits.access_token_ttl);
  auto r = json_ok(json{{"accessToken", in.access.token},
                        {"refreshToken", in.refresh_token},
                        {"tokenType", "Bearer"},
                        {"expiresIn", ttl}}
                       .dump(),
                   status);
  r.headers.emplace_back("Set-Cookie", access_cookie(in.access.token, ttl));
  r.headers.emplace_back(
      "Set-Cookie",
      refresh_cookie(in.refresh_token, identity::whole_seconds(limits.refresh_token_ttl)));
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

json policy_json(const identity::PasswordPolicy& p) {
  return {{"level", identity::to_string(p.level)}, {"minLength", p.min_length},
          {"requireUpper", p.require_upper},       {"requireLower", p.require_lower},
          {"requireDigit", p.require_digit},       {"requireSpecial", p.require_special}};
}

json profile_json(const UserId& user, const identity::Profile& p) {
  return json{{"userId", user.str()},
              {"email", p.email ? json(*p.email) : json(nullptr)},
              {"emailVerified", p.row.email_verified},
              {"displayName", p.display_name ? json(*p.display_name) : json(nullptr)},
              {"locale", p.row.locale.empty() ? json(nullptr) : json(p.row.locale)},
              {"status", p.row.status},
              {"roles", p.row.roles},
              {"registeredAt", p.row.registered_at},
              {"consent", {{"version", p.row.consent_version}}}};
}

Response accept_then(IdentityDeps& deps, std::optional<ledger::Partition> p, std::string key,
                     std::function<void()> work) {
  const auto& ownership = deps.identity.ownership();
  if (p && !ownership.owns(*p)) return to_api_error(identity::Refusal::misdirected(*p, ownership));
  auto ticket = deps.deferred.reserve(std::chrono::seconds(1));
  if (!ticket) return retry_later(503, "overloaded", "too many requests at once; retry shortly", 1);
  auto r = json_ok(json{{"status", "accepted"}}.dump(), 202);
  r.after_write = [ticket = std::make_shared<WorkQueue::Ticket>(std::move(*ticket)), &deps,
                   key = std::move(key), work = std::move(work)]() mutable {
    if (!ticket->submit(key, std::move(work)) && deps.log) {
      deps.log("work answered 202 was dropped: the server is stopping");
    }
  };
  return r;
}

Response accept_for_address(IdentityDeps& deps, const std::string& email,
                            std::function<void(const std::optional<UserId>&)> work) {
  auto& identity = deps.identity;
  const auto as_user = [](const std::optional<std::string>& user) {
    return user ? std::optional<UserId>(UserId(*user)) : std::nullopt;
  };
  if (identity.ownership().owns_all()) {
    return accept_then(deps, std::nullopt, identity.address_key(email),
                       [&identity, email, as_user, work = std::move(work)] {
                         work(as_user(identity.address_subject(email).user));
                       });
  }
  auto subject = identity.address_subject(email);
  return accept_then(deps, identity.partition_of(subject.id), subject.email_hash,
                     [user = as_user(subject.user), work = std::move(work)] { work(user); });
}

ApiResult<void> admit_client(IdentityDeps& deps, const identity::Caller& caller,
                             RequestLimiter& limiter, const char* scope) {
  const auto v = limiter.check(caller.ip_hash, caller.now);
  if (v.allowed) return pass();
  const auto seconds = identity::retry_after_seconds(v.retry_at, caller.now);
  if (v.first_refusal) deps.identity.record_client_limited(caller, scope, seconds);
  return retry_later(429, "rate_limited", "too many requests from this address; retry later",
                     seconds, json{{"retryAfter", seconds}});
}

Response request_link(IdentityDeps& deps, const IdentityConfig& config, const Request& req,
                      RequestLimiter& limiter, identity::Link link) {
  SECHEX_TRY(const auto body, read_body(req));
  SECHEX_TRY(const auto email, required_string(body, "email"));
  const auto caller = caller_of(deps, config, req);
  SECHEX_TRYV(admit_client(deps, caller, limiter,
                           link == identity::Link::verify_email
                               ? projections::kScopeVerifyRequestIp
                               : projections::kScopeResetRequestIp));
  return accept_for_address(
      deps, email, [&identity = deps.identity, caller, link](const std::optional<UserId>& user) {
        if (user) identity.mail_link(caller, *user, link);  // else nobody
      });
}

}  // namespace sechex::api::identity_support
