// CSRF protection for browser sessions (API.md "Browser sessions", spec 003 CSRF tokens, 004
// FR-033): a request authenticated by the `__Host-access` cookie that changes state must carry
// `X-CSRF-Token` (from GET /v1/auth/csrf, bound to the session, expiring) AND come from this
// site (Sec-Fetch-Site same-origin/none, or an Origin equal, scheme included, to this listener's
// own origin (its scheme and the request's Host) or to the public URL's). Behind a proxy that
// ends TLS, set --public-url to the https origin browsers use. Bearer requests need neither: a
// browser never attaches that header on its own.
//
// The tokens themselves: csrf_token.h.
//
// Cookies: `__Host-` prefix (Secure, Path=/, no Domain: the browser refuses to let a sibling
// subdomain or plain HTTP page set or shadow them), HttpOnly, SameSite=Lax.
//
// Thread-safety: all functions may be called concurrently (CsrfTokens locks what it spends).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "api/crypto/csrf_token.h"
#include "api/http/api_error.h"
#include "api/http/server.h"
#include "ledger/result.h"

namespace sechex::api {

inline constexpr const char* kAccessCookie = "__Host-access";
inline constexpr const char* kRefreshCookie = "__Host-refresh";
// A browser's pre-session (before sign-up there is no session to bind a CSRF token to): 32
// random bytes, base64url; GET /v1/auth/csrf sets it and binds the token to "pre:" + it.
inline constexpr const char* kPreSessionCookie = "__Host-presession";
// Binds an OAuth sign-in to the browser that began it (api/identity/oauth.h); SameSite=Lax so
// that the provider's top-level redirect back carries it.
inline constexpr const char* kOAuthCookie = "__Host-oauth";
// Why a cookie-authenticated request was refused; csrf_reason() names each the way
// details.reason and the rejection metrics do.
enum class CsrfErrc { cross_site = 1, missing_csrf_token, invalid_csrf_token };
std::error_code make_error_code(CsrfErrc e);
// "cross_site", "missing_csrf_token" or "invalid_csrf_token".
std::string_view csrf_reason(const std::error_code& ec);

// Whether a cookie-authenticated, state-changing request may go on. `public_origin` is e.g.
// "https://id.example.com" (may be empty).
// The token is spent when the check passes (single use, FR-016); a token spent before, expired,
// or issued before this process started is invalid_csrf_token.
Result<void> check_csrf(const Request& req, std::string_view session_id, CsrfTokens& tokens,
                        TimePoint now, std::string_view public_origin);
// Only the site check (login, where no session exists yet): CsrfErrc::cross_site or success.
Result<void> check_same_site(const Request& req, std::string_view public_origin);
// The 403 csrf_rejected answer, details.reason from `ec`.
ApiError csrf_refusal(const std::error_code& ec, std::string_view message);

bool is_state_changing(std::string_view method);
// The value of cookie `name` in the request's Cookie header.
std::optional<std::string> cookie(const Request& req, std::string_view name);
// Set-Cookie values for a token pair, and for clearing both cookies.
std::string access_cookie(std::string_view token, std::int64_t max_age_seconds);
std::string refresh_cookie(std::string_view token, std::int64_t max_age_seconds);
std::string oauth_cookie(std::string_view binding, std::int64_t max_age_seconds);
std::string pre_session_cookie(std::string_view value, std::int64_t max_age_seconds);
// What a CSRF token of a pre-session is bound to.
std::string pre_session_binding(std::string_view cookie_value);
// Whether a request comes from a browser (it sends fetch metadata, an Origin or cookies): API
// clients send none of them, and the sign-up form's token is asked only of browsers.
bool from_browser(const Request& req);
std::string cleared_cookie(std::string_view name);

}  // namespace sechex::api

template <>
struct std::is_error_code_enum<sechex::api::CsrfErrc> : std::true_type {};
