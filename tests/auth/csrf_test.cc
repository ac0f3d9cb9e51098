// CSRF for browser sessions (003 CSRF tokens, 004 FR-033, API.md "Browser sessions"): tokens
// bound to one session and expiring, fetch-metadata and Origin checks, __Host- cookies.
#include "api/auth/csrf.h"

#include <gtest/gtest.h>

#include "ledger/crypto.h"

namespace sechex::api {
namespace {

constexpr TimePoint kNow = time_from_micros(1'767'225'600'000'000);

ledger::Kek key(std::uint8_t fill) {
  return ledger::Kek::from_base64(ledger::crypto::base64_encode(ledger::Bytes(32, fill))).value();
}

// The verdicts as details.reason names them ("" = accepted).
std::string reason_of(const Result<void>& r) {
  return r ? "" : std::string(csrf_reason(r.error()));
}
std::string csrf_refusal(const Request& req, std::string_view session, CsrfTokens& tokens,
                         TimePoint now, std::string_view origin) {
  return reason_of(check_csrf(req, session, tokens, now, origin));
}
std::string cross_site_refusal(const Request& req, std::string_view origin) {
  return reason_of(check_same_site(req, origin));
}

Request post_from(std::map<std::string, std::string> headers) {
  Request r;
  r.method = "POST";
  r.path = "/v1/auth/logout";
  r.headers = std::move(headers);
  return r;
}

TEST(CsrfTokens, ATokenIsBoundToItsSessionAndExpiresAfterTwoHours) {
  const LookupHasher lookup(key(1));
  const CsrfTokens tokens(lookup);
  const auto t = tokens.issue("session-a", kNow).value();
  EXPECT_TRUE(tokens.valid(t, "session-a", kNow));
  EXPECT_TRUE(tokens.valid(t, "session-a", kNow + kCsrfTokenLifetime - Micros{1}));
  EXPECT_FALSE(tokens.valid(t, "session-a", kNow + kCsrfTokenLifetime));
  EXPECT_FALSE(tokens.valid(t, "session-b", kNow)) << "bound to the session";
  const LookupHasher other_key(key(2));
  EXPECT_FALSE(CsrfTokens(other_key).valid(t, "session-a", kNow)) << "keyed";
  // Altered expiry (a forger extending the token) or tag, garbage, empty: all refused.
  std::string altered = t;
  altered[3] = altered[3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(tokens.valid(altered, "session-a", kNow));
  altered = t;
  altered.back() = altered.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(tokens.valid(altered, "session-a", kNow));
  for (const auto* bad : {"", "!!!", "AAAA", "a.b.c"}) EXPECT_FALSE(tokens.valid(bad, "s", kNow));
  EXPECT_FALSE(tokens.valid(std::string(10000, 'A'), "session-a", kNow));
  EXPECT_FALSE(tokens.valid(t, "", kNow));
  EXPECT_NE(tokens.issue("session-a", kNow).value(), t) << "every token is new";
}

// 003 FR-016, US7-4: a token is spent by its first use; a page making parallel requests holds
// one token per request, each accepted once, in any order.
TEST(CsrfTokens, EachTokenIsAcceptedOnceFR016) {
  const LookupHasher lookup(key(1));
  CsrfTokens tokens(lookup);
  const auto a = tokens.issue("s", kNow).value();
  const auto b = tokens.issue("s", kNow).value();
  EXPECT_FALSE(tokens.spend(a, "other", kNow)) << "a refused use does not spend it";
  EXPECT_TRUE(tokens.spend(b, "s", kNow));
  EXPECT_TRUE(tokens.spend(a, "s", kNow));
  EXPECT_FALSE(tokens.spend(a, "s", kNow));
  EXPECT_FALSE(tokens.spend(b, "s", kNow + std::chrono::minutes(1)));
  EXPECT_EQ(tokens.spent_count(), 2u);
  // Spent entries are forgotten once their tokens have expired anyway.
  const auto c = tokens.issue("s", kNow + kCsrfTokenLifetime).value();
  EXPECT_TRUE(tokens.spend(c, "s", kNow + kCsrfTokenLifetime));
  EXPECT_EQ(tokens.spent_count(), 1u);
}

// The spent set lives in memory: tokens issued before the process started are refused, so a
// restart forgets nothing that could be replayed.
TEST(CsrfTokens, TokensIssuedBeforeAStartAreRefused) {
  const LookupHasher lookup(key(1));
  const auto before = CsrfTokens(lookup).issue("s", kNow).value();
  CsrfTokens restarted(lookup, kNow + std::chrono::seconds(1));
  EXPECT_FALSE(restarted.valid(before, "s", kNow + std::chrono::seconds(2)));
  EXPECT_FALSE(restarted.spend(before, "s", kNow + std::chrono::seconds(2)));
  const auto after = restarted.issue("s", kNow + std::chrono::seconds(2)).value();
  EXPECT_TRUE(restarted.spend(after, "s", kNow + std::chrono::seconds(2)));
}

// Bounded memory: when the spent set is full the oldest entry goes, and with it every token
// issued no later than that one, so an evicted token cannot be replayed.
TEST(CsrfTokens, AFullSpentSetRefusesWhatItForgetsRatherThanAllowingReplays) {
  const LookupHasher lookup(key(1));
  CsrfTokens tokens(lookup, TimePoint{}, 2);
  const auto t0 = tokens.issue("s", kNow).value();
  const auto unused = tokens.issue("s", kNow).value();
  const auto t1 = tokens.issue("s", kNow + Micros{10}).value();
  const auto t2 = tokens.issue("s", kNow + Micros{20}).value();
  const auto t3 = tokens.issue("s", kNow + Micros{30}).value();
  ASSERT_TRUE(tokens.spend(t0, "s", kNow + Micros{40}));
  ASSERT_TRUE(tokens.spend(t1, "s", kNow + Micros{40}));
  ASSERT_TRUE(tokens.spend(t2, "s", kNow + Micros{40}));  // evicts t0
  EXPECT_EQ(tokens.spent_count(), 2u);
  EXPECT_FALSE(tokens.spend(t0, "s", kNow + Micros{40})) << "evicted, still not replayable";
  EXPECT_FALSE(tokens.valid(unused, "s", kNow + Micros{40})) << "issued with it: refused too";
  EXPECT_TRUE(tokens.spend(t3, "s", kNow + Micros{40}));
}

TEST(Csrf, StateChangesNeedThisSitesTokenAndOrigin) {
  const LookupHasher lookup(key(1));
  CsrfTokens tokens(lookup);
  const auto t = tokens.issue("s1", kNow).value();
  const std::string site = "https://id.example.com";
  EXPECT_EQ(csrf_refusal(post_from({{"x-csrf-token", tokens.issue("s1", kNow).value()}}), "s1",
                         tokens, kNow, site),
            "");
  EXPECT_EQ(csrf_refusal(post_from({}), "s1", tokens, kNow, site), "missing_csrf_token");
  EXPECT_EQ(csrf_refusal(post_from({{"x-csrf-token", t}}), "s2", tokens, kNow, site),
            "invalid_csrf_token");
  // Fetch metadata decides when present; even a valid token does not excuse a cross-site call.
  EXPECT_EQ(csrf_refusal(post_from({{"x-csrf-token", t}, {"sec-fetch-site", "cross-site"}}), "s1",
                         tokens, kNow, site),
            "cross_site");
  EXPECT_EQ(csrf_refusal(post_from({{"x-csrf-token", t}, {"sec-fetch-site", "same-site"}}), "s1",
                         tokens, kNow, site),
            "cross_site");
  EXPECT_EQ(csrf_refusal(post_from({{"x-csrf-token", t}, {"sec-fetch-site", "same-origin"}}), "s1",
                         tokens, kNow, site),
            "");
  EXPECT_EQ(csrf_refusal(post_from({{"x-csrf-token", t}, {"sec-fetch-site", "same-origin"}}), "s1",
                         tokens, kNow, site),
            "invalid_csrf_token")
      << "spent by the request it let through (US7-4)";
  // Without fetch metadata, Origin must be this host or the public origin.
  EXPECT_EQ(cross_site_refusal(post_from({{"origin", "https://evil.example"}}), site),
            "cross_site");
  EXPECT_EQ(cross_site_refusal(post_from({{"origin", "https://id.example.com"}}), site), "");
  EXPECT_EQ(cross_site_refusal(
                post_from({{"origin", "http://127.0.0.1:8080"}, {"host", "127.0.0.1:8080"}}), ""),
            "");
  EXPECT_EQ(cross_site_refusal(post_from({{"origin", "null"}}), site), "cross_site");
  EXPECT_EQ(cross_site_refusal(post_from({}), site), "") << "no Origin: not a browser";
}

// Issue 12: only host and port were compared, so a page on plain http://id.example.com (which a
// network attacker can serve) passed for https://id.example.com. The scheme is part of the
// origin: of the public URL, and of this listener (Request::scheme) for the Host comparison.
TEST(Csrf, TheOriginsSchemeMustMatchNotJustItsHostAndPort) {
  const std::string site = "https://id.example.com";
  EXPECT_EQ(cross_site_refusal(post_from({{"origin", "http://id.example.com"}}), site),
            "cross_site");
  EXPECT_EQ(cross_site_refusal(post_from({{"origin", "HTTPS://ID.example.com"}}), site), "")
      << "scheme and host compare case-insensitively";
  auto tls = post_from({{"origin", "http://id.example.com:8443"}, {"host", "id.example.com:8443"}});
  tls.scheme = "https";
  EXPECT_EQ(cross_site_refusal(tls, ""), "cross_site") << "an http page against a TLS listener";
  tls.headers["origin"] = "https://id.example.com:8443";
  EXPECT_EQ(cross_site_refusal(tls, ""), "");
  auto plain = post_from({{"origin", "https://127.0.0.1:8080"}, {"host", "127.0.0.1:8080"}});
  EXPECT_EQ(cross_site_refusal(plain, ""), "cross_site") << "this listener is plain http";
  EXPECT_EQ(cross_site_refusal(post_from({{"origin", "https://id.example.com.evil"}}), site),
            "cross_site");
  EXPECT_EQ(cross_site_refusal(post_from({{"origin", "ftp://id.example.com"}}), site),
            "cross_site");
}

TEST(Csrf, CookiesAreHostPrefixedSecureHttpOnlyAndLax) {
  const auto c = access_cookie("tok", 3600);
  EXPECT_EQ(c, "__Host-access=tok; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=3600");
  EXPECT_EQ(cleared_cookie(kRefreshCookie).find("Max-Age=0") != std::string::npos, true);
  Request r;
  r.headers["cookie"] = "a=1; __Host-access=abc.def.ghi ;b=2";
  EXPECT_EQ(cookie(r, kAccessCookie), "abc.def.ghi");
  EXPECT_FALSE(cookie(r, kRefreshCookie));
  EXPECT_TRUE(is_state_changing("POST"));
  EXPECT_TRUE(is_state_changing("DELETE"));
  EXPECT_FALSE(is_state_changing("GET"));
}

}  // namespace
}  // namespace sechex::api
