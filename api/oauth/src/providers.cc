#include "api/oauth/providers.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "api/json/json_input.h"
#include "api/net/http_client.h"
#include "ledger/crypto.h"
#include "ledger/data_dir.h"

namespace sechex::api::oauth {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr auto kCacheFor = std::chrono::hours(1);
constexpr auto kKeyRefreshGap = std::chrono::minutes(1);

struct OAuthCategory final : std::error_category {
  const char* name() const noexcept override { return "sechex.oauth"; }
  std::string message(int ev) const override {
    switch (static_cast<OAuthErrc>(ev)) {
      case OAuthErrc::unknown_provider:
        return "no such sign-in provider";
      case OAuthErrc::provider_unavailable:
        return "the sign-in provider could not be reached or answered something unusable";
      case OAuthErrc::code_rejected:
        return "the sign-in provider refused the authorization code";
      case OAuthErrc::no_id_token:
        return "the sign-in provider answered without an ID token";
    }
    return "oauth error";
  }
};

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  for (const char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

bool https_url(const json& v) {
  return v.is_string() && v.get_ref<const std::string&>().starts_with("https://") &&
         v.get_ref<const std::string&>().size() > 8 &&
         v.get_ref<const std::string&>().size() <= 2048;
}

net::ClientOptions client_options(const ProviderConfig& p) {
  net::ClientOptions o;
  o.timeout = std::chrono::seconds(10);
  o.max_response_bytes = 64 * 1024;
  // The issuer is the operator's choice, not a user's: a provider on the internal network
  // (an on-premises Keycloak, the test provider on loopback) is legitimate.
  o.allow_private_targets = true;
  o.ca_file = p.ca_file;
  o.user_agent = "Sechex-Ledger-OAuth/1";
  return o;
}

// A JSON object from a 200 answer, or provider_unavailable.
Result<json> fetch_json(const std::string& url, const ProviderConfig& p) {
  const auto r = net::get(url, {{"Accept", "application/json"}}, client_options(p));
  // failure() spelled out: json converts from almost anything (jose_internal.h has the same).
  const auto unavailable = [] {
    return boost::outcome_v2::failure(make_error_code(OAuthErrc::provider_unavailable));
  };
  if (r.status != 200 || r.truncated) return unavailable();
  auto parsed = parse_json_input(r.body);
  if (!parsed || !parsed.value().is_object()) return unavailable();
  return std::move(parsed).value();
}

}  // namespace

const std::error_category& oauth_category() noexcept {
  static const OAuthCategory c;
  return c;
}

std::string_view reason_code(const std::error_code& ec) noexcept {
  if (ec.category() == jose::jose_category()) return jose::reason_code(ec);
  if (ec.category() != oauth_category()) return "internal_error";
  switch (static_cast<OAuthErrc>(ec.value())) {
    case OAuthErrc::unknown_provider:
      return "unknown_provider";
    case OAuthErrc::provider_unavailable:
      return "provider_unavailable";
    case OAuthErrc::code_rejected:
      return "invalid_grant";
    case OAuthErrc::no_id_token:
      return "no_id_token";
  }
  return "internal_error";
}

ResultOf<std::vector<ProviderConfig>, std::string> load_provider_configs(const std::string& path) {
  using Out = ResultOf<std::vector<ProviderConfig>, std::string>;
  const auto fail = [&](const std::string& what) -> Out { return path + ": " + what; };
  std::ifstream in(path);
  if (!in) return fail("cannot read the file");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto parsed = parse_json_input(text);
  if (!parsed || !parsed.value().is_object()) return fail("not a JSON object");
  const auto& doc = parsed.value();
  const auto providers = doc.find("providers");
  if (providers == doc.end() || !providers->is_object() || providers->empty()) {
    return fail("needs a non-empty \"providers\" object");
  }
  std::vector<ProviderConfig> out;
  for (const auto& [name, entry] : providers->items()) {
    const auto where = [&](const std::string& what) {
      return fail("provider " + name + ": " + what);
    };
    if (!valid_name(name)) return where("names are 1-32 of a-z, 0-9 and '-'");
    if (!entry.is_object()) return where("not an object");
    ProviderConfig p;
    p.name = name;
    const auto text_field = [&](const char* field, std::string& to) {
      const auto it = entry.find(field);
      if (it == entry.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
        return false;
      }
      to = it->get<std::string>();
      return true;
    };
    if (!text_field("issuer", p.issuer) || !https_url(json(p.issuer))) {
      return where("\"issuer\" must be an https URL");
    }
    if (!text_field("clientId", p.client_id)) return where("\"clientId\" is required");
    if (!text_field("redirectUri", p.redirect_uri) ||
        !(p.redirect_uri.starts_with("https://") || p.redirect_uri.starts_with("http://"))) {
      return where("\"redirectUri\" must be the http(s) URL of /v1/auth/oauth/" + name +
                   "/callback as the provider has it registered");
    }
    text_field("caFile", p.ca_file);
    if (const auto s = entry.find("scopes"); s != entry.end()) {
      if (!s->is_array()) return where("\"scopes\" must be an array of strings");
      p.scopes.clear();
      for (const auto& v : *s) {
        if (!v.is_string() || v.get_ref<const std::string&>().empty() ||
            v.get_ref<const std::string&>().find_first_of(" \t\r\n") != std::string::npos) {
          return where("\"scopes\" must be an array of single words");
        }
        p.scopes.push_back(v.get<std::string>());
      }
    }
    if (std::find(p.scopes.begin(), p.scopes.end(), "openid") == p.scopes.end()) {
      p.scopes.insert(p.scopes.begin(), "openid");
    }
    std::string secret_file;
    if (!text_field("clientSecretFile", secret_file)) {
      return where("\"clientSecretFile\" is required");
    }
    auto secret = ledger::read_secret_file(secret_file);
    if (!secret) return where(secret.error);
    p.client_secret = std::move(secret.secret);
    out.push_back(std::move(p));
  }
  return out;
}

HttpProviders::HttpProviders(std::vector<ProviderConfig> configs) {
  for (auto& c : configs) {
    auto name = c.name;
    configs_.emplace(std::move(name), std::move(c));
  }
}

const ProviderConfig* HttpProviders::find(std::string_view name) const {
  const auto it = configs_.find(name);
  return it == configs_.end() ? nullptr : &it->second;
}

Result<HttpProviders::Metadata> HttpProviders::metadata(const ProviderConfig& p) {
  {
    std::lock_guard lock(mu_);
    auto& c = cache_[p.name];
    if (c.metadata && Clock::now() - c.metadata_at < kCacheFor) return *c.metadata;
  }
  auto doc = fetch_json(p.issuer + "/.well-known/openid-configuration", p);
  if (doc) {
    const auto& d = doc.value();
    const auto issuer = d.find("issuer");
    Metadata m;
    const auto endpoint = [&](const char* name, std::string& to) {
      const auto it = d.find(name);
      if (it == d.end() || !https_url(*it)) return false;
      to = it->get<std::string>();
      return true;
    };
    if (issuer != d.end() && issuer->is_string() &&
        issuer->get_ref<const std::string&>() == p.issuer &&
        endpoint("authorization_endpoint", m.authorization_endpoint) &&
        endpoint("token_endpoint", m.token_endpoint) && endpoint("jwks_uri", m.jwks_uri)) {
      std::lock_guard lock(mu_);
      auto& c = cache_[p.name];
      c.metadata = m;
      c.metadata_at = Clock::now();
      return m;
    }
  }
  std::lock_guard lock(mu_);
  if (auto& c = cache_[p.name]; c.metadata) return *c.metadata;  // stale beats nothing
  return OAuthErrc::provider_unavailable;
}

Result<std::shared_ptr<const oidc::ProviderKeys>> HttpProviders::keys(const ProviderConfig& p,
                                                                      bool refresh) {
  {
    std::lock_guard lock(mu_);
    auto& c = cache_[p.name];
    const auto now = Clock::now();
    if (refresh) {
      if (c.keys && c.kid_refresh_at && now - *c.kid_refresh_at < kKeyRefreshGap) return c.keys;
      c.kid_refresh_at = now;
    } else if (c.keys && now - c.keys_at < kCacheFor) {
      return c.keys;
    }
  }
  SECHEX_TRY(const auto m, metadata(p));
  auto doc = fetch_json(m.jwks_uri, p);
  if (doc) {
    auto parsed = oidc::ProviderKeys::from_jwks(doc.value().dump());
    if (parsed) {
      auto shared = std::make_shared<const oidc::ProviderKeys>(std::move(parsed).value());
      std::lock_guard lock(mu_);
      auto& c = cache_[p.name];
      c.keys = shared;
      c.keys_at = Clock::now();
      return shared;
    }
  }
  std::lock_guard lock(mu_);
  if (auto& c = cache_[p.name]; c.keys) return c.keys;
  return OAuthErrc::provider_unavailable;
}

Result<std::string> HttpProviders::authorization_url(std::string_view name,
                                                     const AuthorizationRequest& request) {
  const auto* p = find(name);
  if (p == nullptr) return OAuthErrc::unknown_provider;
  SECHEX_TRY(const auto m, metadata(*p));
  std::string scope;
  for (const auto& s : p->scopes) scope += (scope.empty() ? "" : " ") + s;
  const auto query = net::form_encode({{"response_type", "code"},
                                       {"client_id", p->client_id},
                                       {"redirect_uri", p->redirect_uri},
                                       {"scope", scope},
                                       {"state", request.state},
                                       {"nonce", request.nonce},
                                       {"code_challenge", request.code_challenge},
                                       {"code_challenge_method", "S256"}});
  const char sep = m.authorization_endpoint.find('?') == std::string::npos ? '?' : '&';
  return m.authorization_endpoint + sep + query;
}

Result<oidc::IdTokenClaims> HttpProviders::redeem(std::string_view name, std::string_view code,
                                                  std::string_view verifier, std::string_view nonce,
                                                  TimePoint now) {
  const auto* p = find(name);
  if (p == nullptr) return OAuthErrc::unknown_provider;
  SECHEX_TRY(const auto m, metadata(*p));
  // RFC 6749 §2.3.1: client id and secret are form-encoded before they are joined.
  const auto pair = net::percent_encode(p->client_id) + ":" + net::percent_encode(p->client_secret);
  const auto credentials = ledger::crypto::base64_encode(
      ledger::ByteView(reinterpret_cast<const std::uint8_t*>(pair.data()), pair.size()));
  const auto body = net::form_encode({{"grant_type", "authorization_code"},
                                      {"code", std::string(code)},
                                      {"redirect_uri", p->redirect_uri},
                                      {"code_verifier", std::string(verifier)}});
  const auto r = net::post(m.token_endpoint,
                           {{"Authorization", "Basic " + credentials},
                            {"Content-Type", "application/x-www-form-urlencoded"},
                            {"Accept", "application/json"}},
                           body, client_options(*p));
  if (r.truncated || r.status == 0 || r.status >= 500) return OAuthErrc::provider_unavailable;
  auto parsed = parse_json_input(r.body);
  if (!parsed || !parsed.value().is_object()) return OAuthErrc::provider_unavailable;
  const auto& answer = parsed.value();
  if (r.status != 200) {
    // RFC 6749 §5.2: invalid_grant is the code's fault (used, expired, PKCE mismatch); any other
    // error is ours or the provider's configuration.
    const auto error = answer.find("error");
    if (error != answer.end() && error->is_string() &&
        error->get_ref<const std::string&>() == "invalid_grant") {
      return OAuthErrc::code_rejected;
    }
    return OAuthErrc::provider_unavailable;
  }
  const auto id_token = answer.find("id_token");
  if (id_token == answer.end() || !id_token->is_string()) return OAuthErrc::no_id_token;
  oidc::IdTokenExpectations expect;
  expect.issuer = p->issuer;
  expect.client_id = p->client_id;
  expect.nonce = std::string(nonce);
  expect.now_micros = micros_of(now);
  SECHEX_TRY(auto key_set, keys(*p, false));
  auto claims = oidc::verify_id_token(id_token->get_ref<const std::string&>(), *key_set, expect);
  if (!claims && claims.error() == jose::JoseErrc::unknown_kid) {
    SECHEX_TRY(key_set, keys(*p, true));
    claims = oidc::verify_id_token(id_token->get_ref<const std::string&>(), *key_set, expect);
  }
  return claims;
}

}  // namespace sechex::api::oauth
