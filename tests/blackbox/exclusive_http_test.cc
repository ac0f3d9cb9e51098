// Exclusive mode end to end against a spawned ledgerd (API.md "Exclusive mode"; specs 000, 001):
// its flags (--public-url, --attestation-roots), an admin granting premium, an attestation minted
// from a test CA whose root ledgerd was given, a browser's DPoP key, signed requests, a replay,
// the end of the session, and the audit trail; then a restart keeps the enrolled device.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "api/crypto/dpop.h"
#include "api/crypto/jose.h"
#include "crypto/attestation_mint.h"
#include "ledger/crypto.h"
#include "support/ledgerd_fixture.h"

namespace sechex::testing {
namespace {

namespace mint = attest;
namespace http = boost::beast::http;
using api::jose::base64url_encode;

constexpr const char* kOrigin = "https://id.example.com";

class Exclusive : public LedgerdHttpTest {
 protected:
  void SetUp() override {
    const auto roots = dir_.sub("roots.pem");
    std::ofstream(roots) << mint::pem_of(ca_.cert.get());
    ASSERT_NO_FATAL_FAILURE(
        start({"--public-url", kOrigin, "--attestation-roots", roots, "--exclusive-rate", "50"}));
    user_ = verified("xena@example.com");
    ASSERT_FALSE(user_.empty());
    token_ = access_token("xena@example.com");
    admin_ = admin_token();
  }

  // {deviceAttestation, clientDataJSON, dpopJwk}: a packed attestation of `credential_` over
  // SHA-256(challenge || jkt of the DPoP key), as a browser makes it.
  json registration(const std::string& challenge) const {
    ledger::Bytes raw;
    EXPECT_TRUE(api::jose::base64url_decode(challenge, raw));
    const auto jkt = key_.public_key().thumbprint();
    raw.insert(raw.end(), jkt.begin(), jkt.end());
    const auto committed = ledger::crypto::sha256(raw);
    const std::string client_data = json{
        {"type", "webauthn.create"},
        {"challenge", base64url_encode(ledger::ByteView(committed.data(), committed.size()))},
        {"origin", kOrigin}}.dump();
    const auto cdh = ledger::crypto::sha256(ledger::as_bytes(client_data));
    mint::AuthDataSpec spec;
    spec.rp_id = "id.example.com";
    const auto auth = mint::auth_data(spec, mint::cose_key(credential_.get()));
    const auto sig =
        mint::sign(leaf_.get(), mint::concat(auth, mint::Bytes(cdh.begin(), cdh.end())));
    const auto cert = ca_.issue(leaf_.get(), mint::CertSpec{});
    const auto object =
        mint::attestation_object("packed", {-7, sig, {mint::der_of(cert.get())}}, auth);
    const auto& pub = key_.public_key();
    return {{"deviceAttestation", base64url_encode(ledger::ByteView(object))},
            {"clientDataJSON", base64url_encode(std::string_view(client_data))},
            {"deviceName", "Xena's laptop"},
            {"dpopJwk",
             {{"kty", "EC"},
              {"crv", "P-256"},
              {"x", base64url_encode(ledger::ByteView(pub.x().data(), pub.x().size()))},
              {"y", base64url_encode(ledger::ByteView(pub.y().data(), pub.y().size()))}}}};
  }
  std::string proof(const std::string& jti, const std::string& path) const {
    const auto& pub = key_.public_key();
    const json header{
        {"typ", "dpop+jwt"},
        {"alg", "ES256"},
        {"jwk",
         {{"kty", "EC"},
          {"crv", "P-256"},
          {"x", base64url_encode(ledger::ByteView(pub.x().data(), pub.x().size()))},
          {"y", base64url_encode(ledger::ByteView(pub.y().data(), pub.y().size()))}}}};
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const json claims{{"jti", jti},
                      {"htm", "POST"},
                      {"htu", std::string(kOrigin) + path},
                      {"iat", now},
                      {"ath", api::dpop::ath_of(session_token_)}};
    return api::jose::jws_sign_es256(key_, header.dump(), claims.dump()).value();
  }
  HttpReply signed_post(const std::string& path, const std::string& dpop, const json& body) {
    return http_call_with(port_, http::verb::post, path,
                          {{"Authorization", "DPoP " + session_token_}, {"DPoP", dpop}}, "",
                          body.dump(), std::chrono::seconds(30));
  }

  mint::TestCa ca_;
  mint::Key credential_ = mint::ec_key();
  mint::Key leaf_ = mint::ec_key();
  api::jose::SigningKey key_ = api::jose::SigningKey::generate().value();
  std::string user_, token_, admin_, session_token_;
};

TEST_F(Exclusive, ActivationSignedRequestsReplayAndEndAreServedAndChained) {
  EXPECT_EQ(post("/v1/secure/exclusive/challenge", nullptr, token_).status, 403u) << "not premium";
  const auto granted =
      post("/v1/admin/users/" + user_ + "/roles", {{"grant", {"premium"}}}, admin_);
  ASSERT_EQ(granted.status, 200u) << granted.body;

  const auto challenge = post("/v1/secure/exclusive/challenge", nullptr, token_);
  ASSERT_EQ(challenge.status, 200u) << challenge.body;
  const auto started =
      post("/v1/secure/exclusive/start", registration(data_of(challenge)["challenge"]), token_);
  ASSERT_EQ(started.status, 201u) << started.body << "\n" << log();
  session_token_ = data_of(started)["sessionToken"];

  const auto p1 = proof("jti-1", "/v1/secure/exclusive/validate");
  const auto ok = signed_post("/v1/secure/exclusive/validate", p1, {{"action", "approve"}});
  ASSERT_EQ(ok.status, 200u) << ok.body;
  EXPECT_EQ(data_of(ok)["result"]["action"], "approve");
  const auto replay = signed_post("/v1/secure/exclusive/validate", p1, {{"action", "approve"}});
  EXPECT_EQ(replay.status, 409u) << replay.body;
  // 000 FR-03: the replay cache is derived from the chain, so a restart remembers the proof.
  const std::vector<std::string> flags = {"--public-url", kOrigin, "--exclusive-rate", "50"};
  ASSERT_EQ(stop(), 0);
  ASSERT_NO_FATAL_FAILURE(start(flags));
  EXPECT_EQ(signed_post("/v1/secure/exclusive/validate", p1, {{"action", "approve"}}).status, 409u)
      << "replayed after a restart";

  // 000 FR-08: the flag turned off refuses the next signed request; on again, it is served.
  const auto off =
      call(http::verb::put, "/v1/admin/flags/exclusive_mode", {{"enabled", false}}, admin_);
  ASSERT_EQ(off.status, 200u) << off.body;
  const auto disabled =
      signed_post("/v1/secure/exclusive/validate", proof("jti-f", "/v1/secure/exclusive/validate"),
                  {{"action", "approve"}});
  EXPECT_EQ(disabled.status, 403u) << disabled.body;
  ASSERT_EQ(
      call(http::verb::put, "/v1/admin/flags/exclusive_mode", {{"enabled", true}}, admin_).status,
      200u);
  EXPECT_EQ(signed_post("/v1/secure/exclusive/validate",
                        proof("jti-g", "/v1/secure/exclusive/validate"), {{"action", "approve"}})
                .status,
            200u);
  EXPECT_EQ(http_call(port_, http::verb::get, "/v1/me", session_token_).status, 401u)
      << "the session token is no bearer token";
  const auto ended = signed_post("/v1/secure/exclusive/end",
                                 proof("jti-2", "/v1/secure/exclusive/end"), json::object());
  ASSERT_EQ(ended.status, 200u) << ended.body;
  EXPECT_EQ(signed_post("/v1/secure/exclusive/validate",
                        proof("jti-3", "/v1/secure/exclusive/validate"), {{"action", "approve"}})
                .status,
            401u);

  // The audit trail (000 FR-05): the activation, the validations, the refusals (two replays,
  // the flag, the request after the end), the end; the secure audit lists them with their
  // outcome, as CSV too.
  EXPECT_EQ(audit_count(admin_, user_, "ExclusiveActivated"), 1u);
  EXPECT_EQ(audit_count(admin_, user_, "ExclusiveActionValidated"), 2u);
  EXPECT_EQ(audit_count(admin_, user_, "ExclusiveRequestRejected"), 4u);
  EXPECT_EQ(audit_count(admin_, user_, "ExclusiveEnded"), 1u);
  const auto csv =
      call(http::verb::get, "/v1/admin/secure/audit?format=csv&userId=" + user_, nullptr, admin_);
  ASSERT_EQ(csv.status, 200u) << csv.body;
  EXPECT_EQ(std::count(csv.body.begin(), csv.body.end(), '\n'), 1 + 9)
      << "header, challenge, activation, 2 accepted, 4 refused, end: " << csv.body;
  EXPECT_NE(csv.body.find(",end,ended,user,jti-2,"), std::string::npos)
      << "the /end names its proof: " << csv.body;
  EXPECT_NE(csv.body.find(",approve,refused,invalid_token:session_ended,jti-3,"),
            std::string::npos);
  EXPECT_NE(csv.body.find(",approve,accepted,,jti-1,"), std::string::npos) << csv.body;
  EXPECT_NE(csv.body.find(",approve,refused,replay_detected,jti-1,"), std::string::npos);

  // 000 NFR-06: the metrics moved (the counters restarted with the process).
  const auto m = metrics();
  EXPECT_NE(
      m.find(R"(sechex_exclusive_refusals_total{reason="replay_detected",stage="request"} 1)"),
      std::string::npos)
      << m;
  EXPECT_NE(
      m.find(R"(sechex_exclusive_refusals_total{reason="feature_disabled",stage="request"} 1)"),
      std::string::npos);
  EXPECT_NE(m.find("sechex_exclusive_proof_check_seconds_count 4"), std::string::npos)
      << "since the restart the replay, the flag's refusal, the accepted request and the one "
         "after the end passed the proof checks: "
      << m;

  // A restart keeps the device, its name opened from the sealed value.
  ASSERT_EQ(stop(), 0);
  ASSERT_NO_FATAL_FAILURE(start({"--public-url", kOrigin}));
  const auto devices = call(http::verb::get, "/v1/me/devices", nullptr, token_);
  ASSERT_EQ(devices.status, 200u) << devices.body;
  ASSERT_EQ(data_of(devices)["devices"].size(), 1u);
  EXPECT_EQ(data_of(devices)["devices"][0]["name"], "Xena's laptop");

  // Issue 14 "done when": the chain verifies after all of it; proofs are kept only as hashes.
  ASSERT_EQ(stop(), 0);
  const auto verified = ctl({"verify"});
  EXPECT_EQ(verified.code, 0) << verified.out << verified.err;
  const auto exported = ctl({"export", "--format", "jsonl"});
  ASSERT_EQ(exported.code, 0) << exported.err;
  EXPECT_EQ(exported.out.find(p1), std::string::npos) << "no proof text in the log";
}

// Issue 14 "Kafka mode works like the rest": exclusive mode runs on the user's partition, so a
// node that does not own it answers 421 naming the owner, for the challenge and for a signed
// request alike, and changes nothing; the owner serves them.
// 004 FR-036: consent withdrawn (PATCH /v1/me) stops exclusive mode until it is given again.
TEST_F(Exclusive, WithdrawnConsentStopsExclusiveModeUntilGivenAgainFR036) {
  ASSERT_EQ(post("/v1/admin/users/" + user_ + "/roles", {{"grant", {"premium"}}}, admin_).status,
            200u);
  ASSERT_EQ(call(http::verb::patch, "/v1/me", {{"consent", false}}, token_).status, 200u);
  const auto back = access_token("xena@example.com");
  const auto refused = post("/v1/secure/exclusive/challenge", nullptr, back);
  ASSERT_EQ(refused.status, 403u) << refused.body;
  EXPECT_EQ(error_of(refused)["code"], "consent_required");
  ASSERT_EQ(call(http::verb::patch, "/v1/me", {{"consent", true}}, back).status, 200u);
  EXPECT_EQ(post("/v1/secure/exclusive/challenge", nullptr, back).status, 200u);
}

TEST_F(Exclusive, ANodeThatDoesNotOwnTheUsersPartitionAnswers421NamingTheOwner) {
  ASSERT_EQ(post("/v1/admin/users/" + user_ + "/roles", {{"grant", {"premium"}}}, admin_).status,
            200u);
  const auto challenge = post("/v1/secure/exclusive/challenge", nullptr, token_);
  ASSERT_EQ(challenge.status, 200u) << challenge.body;
  const auto started =
      post("/v1/secure/exclusive/start", registration(data_of(challenge)["challenge"]), token_);
  ASSERT_EQ(started.status, 201u) << started.body;
  session_token_ = data_of(started)["sessionToken"];
  const auto path = std::string("/v1/secure/exclusive/validate");
  const auto first = signed_post(path, proof("o-1", path), {{"action", "approve"}});
  ASSERT_EQ(first.status, 200u) << first.body;
  const auto partition = data_of(first)["result"]["receipt"]["partition"].get<std::uint32_t>();

  std::string others;  // every partition but the user's (the fixture's ledger has 4)
  for (std::uint32_t p = 0; p < 4; ++p) {
    if (p == partition) continue;
    others += (others.empty() ? "" : ",") + std::to_string(p);
  }
  const auto owner = "http://10.0.0." + std::to_string(partition) + ":8080";
  ASSERT_EQ(stop(), 0);
  ASSERT_NO_FATAL_FAILURE(start({"--public-url", kOrigin, "--owns-partitions", others,
                                 "--partition-owner", std::to_string(partition) + "=" + owner}));
  for (const auto& reply : {post("/v1/secure/exclusive/challenge", nullptr, token_),
                            signed_post(path, proof("o-2", path), {{"action", "approve"}})}) {
    ASSERT_EQ(reply.status, 421u) << reply.body;
    EXPECT_EQ(error_of(reply)["code"], "misdirected");
    EXPECT_EQ(error_of(reply)["details"]["owner"], owner);
  }
  EXPECT_EQ(audit_count(admin_, user_, "ExclusiveActionValidated"), 1u) << "nothing recorded";

  ASSERT_EQ(stop(), 0);
  ASSERT_NO_FATAL_FAILURE(start({"--public-url", kOrigin}));
  EXPECT_EQ(signed_post(path, proof("o-2", path), {{"action", "approve"}}).status, 200u)
      << "the owner serves it, the proof unspent";
}

// README "Exclusive mode from a terminal": the software device of `ledgerctl device` enrols
// against a ledgerd that allows self attestation (and only then), and signs requests that are
// served (200), replayed (409) and refused without a proof or for another URL (401).
TEST_F(Exclusive, TheSoftwareDeviceOfTheReadmeEnrolsAndSignsRequests) {
  ASSERT_EQ(post("/v1/admin/users/" + user_ + "/roles", {{"grant", {"premium"}}}, admin_).status,
            200u);
  const auto key = dir_.sub("device.pem");
  const auto created = ctl({"device", "new", "--key", key});
  ASSERT_EQ(created.code, 0) << created.err;
  const auto thumbprint = created.out.substr(0, created.out.find('\n'));
  EXPECT_EQ(thumbprint.size(), 43u);
  EXPECT_EQ(std::filesystem::status(key).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const auto enrol = [&]() {
    const auto challenge = post("/v1/secure/exclusive/challenge", nullptr, token_);
    EXPECT_EQ(challenge.status, 200u) << challenge.body;
    const auto body =
        ctl({"device", "attest", "--key", key, "--challenge", data_of(challenge)["challenge"],
             "--origin", kOrigin, "--name", "terminal"});
    EXPECT_EQ(body.code, 0) << body.err;
    const auto start_body = json::parse(body.out, nullptr, false);
    EXPECT_TRUE(start_body.is_object())
        << "ledgerctl device attest printed: '" << body.out << "', stderr: " << body.err;
    return post("/v1/secure/exclusive/start", start_body.is_object() ? start_body : json::object(),
                token_);
  };
  const auto refused = enrol();
  ASSERT_EQ(refused.status, 401u) << "self attestation needs --allow-self-attestation";
  EXPECT_EQ(error_of(refused)["code"], "attestation_failed");

  ASSERT_EQ(stop(), 0);
  ASSERT_NO_FATAL_FAILURE(start({"--public-url", kOrigin, "--allow-self-attestation"}));
  const auto started = enrol();
  ASSERT_EQ(started.status, 201u) << started.body;
  session_token_ = data_of(started)["sessionToken"];
  const auto path = std::string("/v1/secure/exclusive/validate");
  const auto signed_proof = [&](const std::string& url) {
    const auto p = ctl({"device", "proof", "--key", key, "--token", session_token_, "--url", url});
    EXPECT_EQ(p.code, 0) << p.err;
    return p.out.substr(0, p.out.find('\n'));
  };
  const auto proof = signed_proof(kOrigin + path);
  EXPECT_EQ(signed_post(path, proof, {{"action", "approve"}}).status, 200u);
  EXPECT_EQ(signed_post(path, proof, {{"action", "approve"}}).status, 409u);
  const auto no_proof = signed_post(path, "", {{"action", "approve"}});
  EXPECT_EQ(no_proof.status, 401u);
  EXPECT_EQ(header(no_proof, "www-authenticate"),
            "DPoP algs=\"ES256\", error=\"invalid_dpop_proof\"");
  const auto elsewhere =
      signed_post(path, signed_proof(kOrigin + std::string("/v1/secure/exclusive/end")),
                  {{"action", "approve"}});
  EXPECT_EQ(elsewhere.status, 401u);
  EXPECT_EQ(error_of(elsewhere)["details"]["reason"], "htu_mismatch");
}

}  // namespace
}  // namespace sechex::testing
