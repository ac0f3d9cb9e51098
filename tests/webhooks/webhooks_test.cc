// Webhooks out (api/webhooks): the addresses a delivery may not reach (SSRF), the URLs an
// endpoint may have, and the delivery decision at its boundaries (FR-038/039/041).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include "api/net/http_client.h"
#include "api/webhooks/delivery.h"

namespace sechex::api::webhooks {
namespace {

using net::acceptable_url;
using net::is_internal_address;
using net::post;

bool internal(const char* text) {
  sockaddr_in v4{};
  sockaddr_in6 v6{};
  if (inet_pton(AF_INET, text, &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    return is_internal_address(reinterpret_cast<const sockaddr*>(&v4));
  }
  EXPECT_EQ(inet_pton(AF_INET6, text, &v6.sin6_addr), 1) << text;
  v6.sin6_family = AF_INET6;
  return is_internal_address(reinterpret_cast<const sockaddr*>(&v6));
}

TEST(WebhookTargets, LoopbackPrivateLinkLocalAndTheirDisguisesAreInternal) {
  for (const char* a : {"127.0.0.1",
                        "127.255.0.9",
                        "10.1.2.3",
                        "172.16.0.1",
                        "172.31.255.255",
                        "192.168.1.1",
                        "169.254.169.254",
                        "100.64.0.1",
                        "0.0.0.0",
                        "224.0.0.1",
                        "255.255.255.255",
                        "192.0.2.7",
                        "198.18.0.1",
                        "::1",
                        "::",
                        "fe80::1",
                        "fc00::1",
                        "fd12:3456::1",
                        "ff02::1",
                        "::ffff:127.0.0.1",
                        "::ffff:169.254.169.254",
                        "64:ff9b::a00:1",
                        "2002:7f00:1::",
                        "2001:db8::1",
                        "::127.0.0.1"}) {
    EXPECT_TRUE(internal(a)) << a;
  }
  for (const char* a : {"8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "192.169.0.1",
                        "2606:4700:4700::1111", "::ffff:8.8.8.8", "2a00:1450:4001::1"}) {
    EXPECT_FALSE(internal(a)) << a;
  }
}

TEST(WebhookTargets, EndpointsAreHttpsWithAHostAndNoUserInfo) {
  EXPECT_TRUE(acceptable_url("https://hooks.example.com/sechex", false));
  EXPECT_TRUE(acceptable_url("https://hooks.example.com:8443/a?b=c", false));
  EXPECT_FALSE(acceptable_url("http://hooks.example.com/sechex", false));
  EXPECT_TRUE(acceptable_url("http://127.0.0.1:9000/x", true));
  for (const char* bad : {"https://", "https:///x", "ftp://a.example/x", "https://u:p@a.example/",
                          "https://a.example/x y", "javascript:alert(1)", "gopher://a.example"}) {
    EXPECT_FALSE(acceptable_url(bad, true)) << bad;
  }
  EXPECT_FALSE(acceptable_url("https://a.example/" + std::string(2100, 'x'), false));
}

TEST(WebhookTargets, APostToALoopbackAddressIsRefusedBeforeConnecting) {
  const auto r = post("http://127.0.0.1:9/x", {}, "{}", ClientOptions{});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.error, "private_target");
  // With the flag it connects (nothing listens on port 9: a connection error, not a refusal).
  ClientOptions open;
  open.allow_private_targets = true;
  EXPECT_NE(post("http://127.0.0.1:9/x", {}, "{}", open).error, "private_target");
}

projections::WebhookDelivery pending(std::uint32_t attempts, bool manual = false) {
  projections::WebhookDelivery d;
  d.id = "msg_1";
  d.state = "pending";
  d.attempts = attempts;
  d.manual = manual;
  return d;
}
HttpResult answer(long status, std::optional<std::int64_t> retry_after = std::nullopt) {
  HttpResult r;
  r.status = status;
  r.retry_after_seconds = retry_after;
  return r;
}
HttpResult no_answer(const char* error) {
  HttpResult r;
  r.error = error;
  return r;
}

constexpr std::int64_t kNow = 1'000'000'000'000;
const RetryPolicy kPolicy{std::chrono::seconds(2), 4};

TEST(DeliveryDecision, A2xxIsDeliveredAndEverythingElseFails) {
  for (long s : {200L, 201L, 202L, 204L, 299L}) {
    const auto d = decide_delivery(pending(0), answer(s), kPolicy, kNow, 0);
    EXPECT_EQ(d.kind, DeliveryDecision::Kind::delivered) << s;
    EXPECT_EQ(d.attempt, 1u);
  }
  for (long s : {301L, 302L, 400L, 404L, 500L, 502L}) {
    const auto d = decide_delivery(pending(0), answer(s), kPolicy, kNow, 0);
    EXPECT_EQ(d.kind, DeliveryDecision::Kind::failed) << s;
    EXPECT_FALSE(d.final) << s;
  }
  EXPECT_NE(decide_delivery(pending(0), answer(302), kPolicy, kNow, 0).error.find("redirect"),
            std::string::npos);
  EXPECT_EQ(decide_delivery(pending(0), no_answer("timeout"), kPolicy, kNow, 0).error, "timeout");
  projections::WebhookDelivery ended = pending(1);
  ended.state = "delivered";
  EXPECT_EQ(decide_delivery(ended, answer(200), kPolicy, kNow, 0).kind,
            DeliveryDecision::Kind::none);
}

TEST(DeliveryDecision, RetriesBackOff2s4s8sWithJitterAndTheFourthAttemptIsFinalFR038) {
  const std::int64_t base[] = {2'000'000, 4'000'000, 8'000'000};
  for (std::uint32_t made = 0; made < 3; ++made) {
    const auto plain = decide_delivery(pending(made), answer(500), kPolicy, kNow, 0);
    EXPECT_FALSE(plain.final);
    EXPECT_EQ(plain.next_attempt_at, kNow + base[made]);
    const auto jittered = decide_delivery(pending(made), answer(500), kPolicy, kNow, 0.99);
    EXPECT_GT(jittered.next_attempt_at, plain.next_attempt_at);
    EXPECT_LE(jittered.next_attempt_at, kNow + base[made] + base[made] / 4);
  }
  const auto last = decide_delivery(pending(3), answer(500), kPolicy, kNow, 0);
  EXPECT_TRUE(last.final);
  EXPECT_EQ(last.attempt, 4u);
}

TEST(DeliveryDecision, RetryAfterIsHonouredUpToAnHourOn429And503) {
  const auto wait = decide_delivery(pending(0), answer(503, 30), kPolicy, kNow, 0);
  EXPECT_EQ(wait.next_attempt_at, kNow + 30'000'000);
  EXPECT_EQ(decide_delivery(pending(0), answer(429, 10), kPolicy, kNow, 0).next_attempt_at,
            kNow + 10'000'000);
  EXPECT_EQ(decide_delivery(pending(0), answer(503, 999'999), kPolicy, kNow, 0).next_attempt_at,
            kNow + kMaxRetryAfterSeconds * 1'000'000);
  // Shorter than the backoff, or on another status: the backoff.
  EXPECT_EQ(decide_delivery(pending(0), answer(503, 0), kPolicy, kNow, 0).next_attempt_at,
            kNow + 2'000'000);
  EXPECT_EQ(decide_delivery(pending(0), answer(500, 30), kPolicy, kNow, 0).next_attempt_at,
            kNow + 2'000'000);
}

TEST(DeliveryDecision, GoneRefusedTargetsAndManualRetriesAreFinalAtOnce) {
  const auto gone = decide_delivery(pending(0), answer(410), kPolicy, kNow, 0);
  EXPECT_TRUE(gone.final);
  EXPECT_TRUE(gone.disable_endpoint);
  for (const char* e :
       {"private_target", "endpoint_disabled", "endpoint_unknown", "secret_unreadable"}) {
    const auto d = decide_delivery(pending(0), no_answer(e), kPolicy, kNow, 0);
    EXPECT_TRUE(d.final) << e;
    EXPECT_FALSE(d.disable_endpoint) << e;
  }
  EXPECT_TRUE(decide_delivery(pending(4, true), answer(500), kPolicy, kNow, 0).final);
  EXPECT_EQ(decide_delivery(pending(4, true), answer(200), kPolicy, kNow, 0).kind,
            DeliveryDecision::Kind::delivered);
}

}  // namespace
}  // namespace sechex::api::webhooks
