// Third-party OpenID providers for sign-in (issue 17, spec 003 US6, FR-005..FR-008): their
// configuration, the discovery document and signing keys fetched over HTTPS, the authorization
// URL, and the code exchange with the ID token checked (api/crypto/oidc.h). The sign-in itself
// (state, cookie binding, accounts, sessions, events) is api/identity's oauth.h.
//
// Configuration file (ledgerd --oauth-providers FILE), JSON:
//   {"providers": {"<name>": {
//      "issuer": "https://accounts.example.com",       exact, as the provider's documents say it
//      "clientId": "...",
//      "clientSecretFile": "/etc/sechex/example.secret", one line, mode 0600 (group/other: refused)
//      "redirectUri": "https://id.example.com/v1/auth/oauth/<name>/callback",
//      "scopes": ["openid", "email", "profile"],        optional; "openid" is always sent
//      "caFile": "/path/ca.pem"                         optional: trust only this CA (tests)
//   }}}
// Names are 1-32 of [a-z0-9-] (they appear in paths and events). The issuer and every endpoint
// the discovery document names must be https URLs; the document's `issuer` must equal the
// configured one exactly (OpenID Connect Discovery §4.3), so a compromised or confused document
// cannot send us to another provider's keys.
//
// Caching: the discovery document and the JWKS are fetched on first use and kept for an hour;
// an ID token whose `kid` is unknown refetches the JWKS at once (the provider rotated); such
// refetches happen at most once a minute per provider, so forged kids cannot make us hammer it. A
// failed refresh keeps using what was fetched before.
//
// Outgoing requests go through api/net with a 10 s limit and a 64 KiB answer cap; a truncated
// answer is refused, never parsed.
//
// Thread-safety: Providers' methods may be called concurrently (one mutex around the cache; no
// fetch happens under it). They block on the network: call them on blocking-pool threads.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "api/crypto/oidc.h"
#include "ledger/clock.h"
#include "ledger/result.h"

namespace sechex::api::oauth {

enum class OAuthErrc {
  unknown_provider = 1,  // no provider of that name is configured
  provider_unavailable,  // discovery, JWKS or token endpoint unreachable or malformed
  code_rejected,         // the token endpoint refused the code (invalid_grant: used, expired,
                         // PKCE verifier mismatch, another client's code)
  no_id_token,           // the token endpoint answered without an id_token
};
const std::error_category& oauth_category() noexcept;
inline std::error_code make_error_code(OAuthErrc e) noexcept {
  return {static_cast<int>(e), oauth_category()};
}
// "unknown_provider", ...; for JoseErrc codes jose::reason_code ("wrong_nonce", ...).
std::string_view reason_code(const std::error_code& ec) noexcept;

struct ProviderConfig {
  std::string name;
  std::string issuer;
  std::string client_id;
  std::string client_secret;
  std::string redirect_uri;
  std::vector<std::string> scopes{"openid", "email", "profile"};
  std::string ca_file;
};

// The providers of a configuration file; a message naming the file, the provider and the field
// for anything wrong (ledgerd prints it and exits 2).
ResultOf<std::vector<ProviderConfig>, std::string> load_provider_configs(const std::string& path);

// What one authorization request carries besides the client's configuration.
struct AuthorizationRequest {
  std::string state;
  std::string nonce;
  std::string code_challenge;  // S256
};

class Providers {
 public:
  virtual ~Providers() = default;
  virtual const ProviderConfig* find(std::string_view name) const = 0;
  // The provider's authorization endpoint with response_type=code, client_id, redirect_uri,
  // scope, state, nonce, code_challenge and code_challenge_method=S256.
  virtual Result<std::string> authorization_url(std::string_view name,
                                                const AuthorizationRequest& request) = 0;
  // Redeems `code` with the PKCE verifier (client_secret_basic) and checks the ID token against
  // the provider's keys, our client id and `nonce` at `now`.
  virtual Result<oidc::IdTokenClaims> redeem(std::string_view name, std::string_view code,
                                             std::string_view verifier, std::string_view nonce,
                                             TimePoint now) = 0;
};

// Providers over HTTPS (api/net).
class HttpProviders final : public Providers {
 public:
  explicit HttpProviders(std::vector<ProviderConfig> configs);
  const ProviderConfig* find(std::string_view name) const override;
  Result<std::string> authorization_url(std::string_view name,
                                        const AuthorizationRequest& request) override;
  Result<oidc::IdTokenClaims> redeem(std::string_view name, std::string_view code,
                                     std::string_view verifier, std::string_view nonce,
                                     TimePoint now) override;

 private:
  struct Metadata {
    std::string authorization_endpoint;
    std::string token_endpoint;
    std::string jwks_uri;
  };
  struct Cached {
    std::optional<Metadata> metadata;
    std::chrono::steady_clock::time_point metadata_at{};
    std::shared_ptr<const oidc::ProviderKeys> keys;
    std::chrono::steady_clock::time_point keys_at{};
    // The last refetch an unknown kid caused (none yet: the epoch), for the once-a-minute cap.
    std::optional<std::chrono::steady_clock::time_point> kid_refresh_at;
  };
  Result<Metadata> metadata(const ProviderConfig& p);
  Result<std::shared_ptr<const oidc::ProviderKeys>> keys(const ProviderConfig& p, bool refresh);

  std::map<std::string, ProviderConfig, std::less<>> configs_;
  std::mutex mu_;
  std::map<std::string, Cached, std::less<>> cache_;
};

}  // namespace sechex::api::oauth

template <>
struct std::is_error_code_enum<sechex::api::oauth::OAuthErrc> : std::true_type {};
