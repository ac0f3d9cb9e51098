#include "api/auth/csrf.h"

namespace sechex::api {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "https://Host:port/path" -> "https://host:port": the scheme and authority, lower-cased (an
// origin is compared as a whole: http://site and https://site are different sites); "" when it
// is not an http(s) URL.
std::string origin_of(std::string_view url) {
  const auto sep = url.find("://");
  if (sep == std::string_view::npos) return {};
  auto authority = url.substr(sep + 3);
  authority = authority.substr(0, authority.find('/'));
  if (authority.empty()) return {};
  std::string out(url.substr(0, sep + 3));
  out.append(authority);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out.starts_with("https://") || out.starts_with("http://") ? out : std::string();
}

}  // namespace

namespace {
struct CsrfCategory final : std::error_category {
  const char* name() const noexcept override { return "csrf"; }
  std::string message(int ev) const override {
    return std::string(csrf_reason(std::error_code(ev, *this)));
  }
};
const CsrfCategory kCsrfCategory;
}  // namespace

std::error_code make_error_code(CsrfErrc e) { return {static_cast<int>(e), kCsrfCategory}; }

std::string_view csrf_reason(const std::error_code& ec) {
  if (ec.category() != kCsrfCategory) return "csrf_check_failed";
  switch (static_cast<CsrfErrc>(ec.value())) {
    case CsrfErrc::cross_site:
      return "cross_site";
    case CsrfErrc::missing_csrf_token:
      return "missing_csrf_token";
    case CsrfErrc::invalid_csrf_token:
      return "invalid_csrf_token";
  }
  return "csrf_check_failed";
}

Result<void> check_same_site(const Request& req, std::string_view public_origin) {
  const auto refused = [] { return make_error_code(CsrfErrc::cross_site); };
  // Fetch metadata, when the browser sends it, is the most direct answer.
  if (const auto* site = req.header("sec-fetch-site")) {
    if (*site == "same-origin" || *site == "none") return boost::outcome_v2::success();
    return refused();
  }
  const auto* origin = req.header("origin");
  // Not a browser's cross-origin request (they send Origin).
  if (origin == nullptr) return boost::outcome_v2::success();
  const auto sent = origin_of(trim(*origin));
  if (sent.empty()) return refused();  // "null", or not http(s)
  // This listener's own origin: its scheme and the Host the browser addressed.
  const auto* host = req.header("host");
  if (host != nullptr && sent == origin_of(req.scheme + "://" + std::string(trim(*host)))) {
    return boost::outcome_v2::success();
  }
  if (sent == origin_of(public_origin)) return boost::outcome_v2::success();
  return refused();
}

Result<void> check_csrf(const Request& req, std::string_view session_id, CsrfTokens& tokens,
                        TimePoint now, std::string_view public_origin) {
  SECHEX_TRYV(check_same_site(req, public_origin));
  const auto* token = req.header("x-csrf-token");
  if (token == nullptr || token->empty()) return make_error_code(CsrfErrc::missing_csrf_token);
  // Spent only once every other check passed: a refused request leaves its token usable.
  if (!tokens.spend(*token, session_id, now)) {
    return make_error_code(CsrfErrc::invalid_csrf_token);
  }
  return boost::outcome_v2::success();
}

ApiError csrf_refusal(const std::error_code& ec, std::string_view message) {
  return {403, "csrf_rejected", std::string(message), {{"reason", csrf_reason(ec)}}};
}

bool is_state_changing(std::string_view method) {
  return method != "GET" && method != "HEAD" && method != "OPTIONS";
}

std::optional<std::string> cookie(const Request& req, std::string_view name) {
  const auto* header = req.header("cookie");
  if (header == nullptr) return std::nullopt;
  std::string_view rest(*header);
  while (!rest.empty()) {
    const auto semi = rest.find(';');
    const auto pair = trim(rest.substr(0, semi));
    rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      return std::string(pair.substr(eq + 1));
    }
  }
  return std::nullopt;
}

namespace {
std::string set_cookie(std::string_view name, std::string_view value, std::int64_t max_age) {
  return std::string(name) + "=" + std::string(value) +
         "; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=" + std::to_string(max_age);
}
}  // namespace

std::string access_cookie(std::string_view token, std::int64_t max_age_seconds) {
  return set_cookie(kAccessCookie, token, max_age_seconds);
}
std::string refresh_cookie(std::string_view token, std::int64_t max_age_seconds) {
  return set_cookie(kRefreshCookie, token, max_age_seconds);
}
std::string oauth_cookie(std::string_view binding, std::int64_t max_age_seconds) {
  return set_cookie(kOAuthCookie, binding, max_age_seconds);
}
std::string pre_session_cookie(std::string_view value, std::int64_t max_age_seconds) {
  return set_cookie(kPreSessionCookie, value, max_age_seconds);
}
std::string pre_session_binding(std::string_view cookie_value) {
  return "pre:" + std::string(cookie_value);
}
bool from_browser(const Request& req) {
  return req.header("sec-fetch-site") != nullptr || req.header("sec-fetch-mode") != nullptr ||
         req.header("origin") != nullptr || req.header("cookie") != nullptr;
}
std::string cleared_cookie(std::string_view name) { return set_cookie(name, "", 0); }

}  // namespace sechex::api
