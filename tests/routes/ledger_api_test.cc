// The ledger API handlers over a real LogStore, ProjectionStore, KeyStore and key ring: ingest
// through the command path, bearer authentication with the revocation projection, audit paging
// and filters, streamed export, checkpoints and JWKS.
#include "api/routes/ledger_api.h"

#include <gtest/gtest.h>

#include <set>

#include "api/auth/route_access.h"
#include "api/http/query.h"
#include "ledger/crypto.h"
#include "ledger/event_builder.h"
#include "ledger/export.h"
#include "ledger/time_format.h"
#include "projections/audit.h"
#include "routes/route_test.h"
#include "support/test_util.h"

namespace sechex::api {
namespace {

using json = nlohmann::json;

class LedgerApiTest : public RouteTest {
 protected:
  LedgerApiTest() {
    open_node([this](std::string_view r) { rejects_.emplace_back(r); });
    api_ = std::make_unique<LedgerApi>(*commands_, *keys_, *auth_, *ring_, clock_);
    api_->add_routes(*routes_);
  }

  // The request as the server would dispatch it (route_test.h).
  Response call(Request r) { return dispatch(std::move(r)); }

  // A user's token by default; `operator_token` for one as `ledgerctl tokens issue` makes.
  std::string token(const std::string& role, const std::string& sub = "app-1",
                    const std::string& sid = "s-1",
                    std::chrono::seconds ttl = std::chrono::hours(1), bool operator_token = false) {
    const jose::TokenIssuer issuer(*ring_, clock_, settings_.issuer_config());
    return issuer.issue({sub, sid, {role}, operator_token}, ttl).value().token;
  }

  Request request(const std::string& method, const std::string& target, const std::string& tok,
                  std::string body = "") {
    Request r;
    r.method = method;
    const auto q = target.find('?');
    r.path = target.substr(0, q);
    r.route = r.path;  // these routes have no `{name}` segments: the router's match is the path
    if (q != std::string::npos) r.query = target.substr(q + 1);
    if (!tok.empty()) r.headers["authorization"] = "Bearer " + tok;
    r.headers["content-type"] = "application/json";
    r.body = std::move(body);
    r.request_id = "req-1";
    r.peer = "192.0.2.7";
    return r;
  }

  // Posts `n` events (subjects cycling over `subjects`) in requests of up to `per_request`; the
  // clock advances 1 ms per event, and a request's events share its time.
  std::vector<json> ingest_n(int n, int subjects = 5, int per_request = 100) {
    std::vector<json> out;
    const auto admin = token("admin");
    for (int start = 0; start < n; start += per_request) {
      json events = json::array();
      for (int i = start; i < std::min(n, start + per_request); ++i) {
        events.push_back({{"subject", "order-" + std::to_string(i % subjects)},
                          {"type", "order.created"},
                          {"payload", {{"n", i}}}});
        clock_.advance_micros(1000);
      }
      auto r = call(request("POST", "/v1/events", admin, json{{"events", events}}.dump()));
      EXPECT_EQ(r.status, 201u) << r.body;
      const auto body = json::parse(r.body);
      for (const auto& e : body["data"]["events"]) out.push_back(e);
    }
    return out;
  }

  // Appends a raw security event through the command path (as identity handlers will).
  void append_event(
      const std::string& subject,
      const std::function<flatbuffers::Offset<void>(flatbuffers::FlatBufferBuilder&)>& body,
      schema::Event type) {
    auto r = commands_->run(
        commands_->partition_for(subject), [&]() -> Result<std::vector<ledger::Bytes>> {
          ledger::EventBuilder b(nullptr, {subject, subject, "req", clock_.now_micros(), {}, {}});
          SECHEX_TRY(auto bytes, b.finish_raw(type, body(b.fbb())));
          return std::vector<ledger::Bytes>{std::move(bytes)};
        });
    ASSERT_TRUE(r) << r.error().message();
  }

  std::unique_ptr<LedgerApi> api_;
  std::vector<std::string> rejects_;
};

json data_of(const Response& r) { return json::parse(r.body)["data"]; }
json error_of(const Response& r) { return json::parse(r.body)["error"]; }

std::string collect(Response& r, int* chunks = nullptr) {
  std::string out;
  int n = 0;
  for (;;) {
    auto c = r.next_chunk();
    if (!c) ADD_FAILURE() << c.error().message();
    if (!c || c.value().empty()) break;
    ++n;
    out += c.value();
  }
  if (chunks != nullptr) *chunks = n;
  return out;
}

// ---- ingest ----

TEST_F(LedgerApiTest, IngestAppendsEachEventAndAnswersItsPositionAndHash) {
  const auto answers = ingest_n(7, 3);
  ASSERT_EQ(answers.size(), 7u);
  std::set<std::pair<std::uint32_t, std::uint64_t>> seen;
  for (std::size_t i = 0; i < answers.size(); ++i) {
    const auto& a = answers[i];
    EXPECT_EQ(a["index"], i);
    EXPECT_EQ(a["subject"], "order-" + std::to_string(i % 3));
    const ledger::Partition p{a["partition"].get<std::uint32_t>()};
    EXPECT_EQ(p, ledger::partition_for(a["subject"].get<std::string>(), 4));
    const ledger::Seq seq{a["seq"].get<std::uint64_t>()};
    EXPECT_TRUE(seen.insert({p.value, seq.value}).second);
    // The answered hash is the stored record's.
    const auto rec = log_->read_range(p, seq, ledger::Seq{seq.value + 1}).value();
    ASSERT_EQ(rec.size(), 1u);
    EXPECT_EQ(a["hash"], ledger::to_hex(rec[0].hash));
    const auto* env = schemas::envelope_of(rec[0].event.data());
    EXPECT_EQ(env->actor()->str(), "app-1");  // the token's subject
    EXPECT_EQ(env->event_as_ApplicationEvent()->type()->str(), "order.created");
    EXPECT_EQ(env->event_as_ApplicationEvent()->application()->str(), "app-1");
  }
  // Applied before answering: the projections are at the log's head.
  EXPECT_EQ(store_->lag(*log_), 0u);
}

TEST_F(LedgerApiTest, IngestSealsPersonalDataUnderTheSubjectsKey) {
  const auto admin = token("service");
  auto r = call(request(
      "POST", "/v1/events", admin,
      R"({"events":[{"subject":"u-9","type":"profile.updated","personal":{"name":"Ann Lee"}}]})"));
  ASSERT_EQ(r.status, 201u) << r.body;
  const auto a = data_of(r)["events"][0];
  const auto rec =
      log_->read_range(ledger::Partition{a["partition"].get<std::uint32_t>()},
                       ledger::Seq{a["seq"].get<std::uint64_t>()}, ledger::Seq{UINT64_MAX})
          .value();
  const std::string raw(rec[0].event.begin(), rec[0].event.end());
  EXPECT_EQ(raw.find("Ann Lee"), std::string::npos);  // not in the clear in the log
  // The audit API opens it for compliance staff.
  auto audit = call(request("GET", "/v1/admin/audit?userId=u-9", token("admin")));
  ASSERT_EQ(audit.status, 200u) << audit.body;
  EXPECT_EQ(data_of(audit)["entries"][0]["event"]["payload"], R"({"name":"Ann Lee"})");
}

TEST_F(LedgerApiTest, IngestRefusesEachSchemaViolationWithItsIndexAndFieldAndAppendsNothing) {
  const auto admin = token("admin");
  struct Case {
    std::string body;
    std::string reason;
    std::string field;
  };
  const std::string ok = R"({"subject":"a","type":"x.y"})";
  const std::vector<Case> cases = {
      {R"({"events":[)" + ok + R"(,{"subject":"a","type":"Bad Type"}]})", "invalid_event", "type"},
      {R"({"events":[{"type":"x.y"}]})", "invalid_event", "subject"},
      {R"({"events":[{"subject":"a"}]})", "invalid_event", "type"},
      {R"({"events":[{"subject":"","type":"x.y"}]})", "invalid_event", "subject"},
      {R"({"events":[{"subject":"a\u0001b","type":"x.y"}]})", "invalid_event", "subject"},
      {R"({"events":[{"subject":"a","type":"x.y","extra":1}]})", "invalid_event", "extra"},
      {R"({"events":[{"subject":"a","type":"x.y","payload":[1]}]})", "invalid_event", "payload"},
      {R"({"events":[{"subject":"a","type":"x.y","payload":{"a":{"b":{"c":1}}}}]})", "too_deep",
       ""},
      {R"({"events":[{"subject":"a","type":"x..y"}]})", "invalid_event", "type"},
      {R"({"events":[]})", "invalid_event", "events"},
      {R"({"events":[1]})", "invalid_event", ""},
      {R"({"events":[)" + ok + R"(],"more":1})", "invalid_event", "events"},
      {R"({"events":[{"subject":"a","subject":"b","type":"x.y"}]})", "duplicate_key", ""},
      {R"({"events":[{"subject":"a","type":"x.y","__proto__":{}}]})", "forbidden_key", ""},
      {R"({"events":[)", "malformed_json", ""},
  };
  for (const auto& c : cases) {
    auto r = call(request("POST", "/v1/events", admin, c.body));
    ASSERT_EQ(r.status, 400u) << c.body;
    const auto err = error_of(r);
    EXPECT_EQ(err["code"], "invalid_request") << c.body;
    EXPECT_EQ(err["details"]["reason"], c.reason) << c.body << " -> " << r.body;
    if (!c.field.empty()) {
      EXPECT_EQ(err["details"]["field"], c.field) << c.body;
    }
  }
  // The first case had a valid event before the bad one: nothing of it was stored.
  EXPECT_EQ(error_of(call(request("POST", "/v1/events", admin, cases[0].body)))["details"]["index"],
            1);
  for (std::uint32_t p = 0; p < 4; ++p) EXPECT_EQ(log_->head(ledger::Partition{p}).next.value, 0u);
}

TEST_F(LedgerApiTest, IngestRefusesMoreThanOneHundredEvents) {
  json events = json::array();
  for (int i = 0; i < 101; ++i) events.push_back({{"subject", "a"}, {"type", "x.y"}});
  auto r = call(request("POST", "/v1/events", token("admin"), json{{"events", events}}.dump()));
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(error_of(r)["details"]["reason"], "array_too_long");
}

TEST_F(LedgerApiTest, IngestRefusesAnErasedSubjectBeforeAppendingAnything) {
  ingest_n(1, 1);  // order-0 exists
  ASSERT_TRUE(keys_->erase("order-0", "admin", "gdpr", clock_.now_micros()));
  ASSERT_TRUE(commands_->sync_all());
  const auto heads_before = log_->stats().events;
  auto r = call(request(
      "POST", "/v1/events", token("admin"),
      R"({"events":[{"subject":"fresh","type":"a.b"},{"subject":"order-0","type":"a.b"}]})"));
  EXPECT_EQ(r.status, 409u);
  EXPECT_EQ(error_of(r)["code"], "subject_erased");
  EXPECT_EQ(error_of(r)["details"]["index"], 1);
  EXPECT_EQ(log_->stats().events, heads_before);
}

TEST_F(LedgerApiTest, IngestNeedsJsonContentType) {
  auto req = request("POST", "/v1/events", token("admin"), R"({"events":[]})");
  req.headers["content-type"] = "text/plain";
  EXPECT_EQ(call(req).status, 415u);
}

// ---- ownership (multi-node) ----

// A node of a 4-partition ledger that owns partitions 0 and 1; 2 is served by node B, and nobody
// told it who serves 3.
class MisdirectedIngestTest : public LedgerApiTest {
 protected:
  MisdirectedIngestTest() {
    const std::vector<std::string> owners = {"2=http://10.0.0.2:8080"};
    node_commands_ = std::make_unique<CommandPath>(
        *log_, *store_,
        PartitionOwnership::resolve(4, OwnershipFlags::parse("0-1", owners).value()).value());
    node_ = std::make_unique<LedgerApi>(
        *node_commands_, *keys_, *auth_, *ring_, clock_,
        LedgerApiMetrics{.on_append = {}, .on_misdirected = [this] { ++refused_; }});
    node_routes_ = std::make_unique<RouteRegistry>(node_router_, *auth_);
    node_->add_routes(*node_routes_);
  }

  // call(), on this node's router.
  Response node_call(Request r) {
    const auto m = node_router_.match(r.method, r.path);
    r.params = m.params;
    r.route = m.route;
    return (*m.handler)(r);
  }

  Response post(const std::vector<std::string>& subjects) {
    json events = json::array();
    for (const auto& s : subjects) events.push_back({{"subject", s}, {"type", "order.created"}});
    return node_call(
        request("POST", "/v1/events", token("service"), json{{"events", events}}.dump()));
  }

  std::uint64_t records() const {
    std::uint64_t n = 0;
    for (std::uint32_t p = 0; p < 4; ++p) n += log_->head(ledger::Partition{p}).next.value;
    return n;
  }

  std::unique_ptr<CommandPath> node_commands_;
  Router node_router_;
  std::unique_ptr<RouteRegistry> node_routes_;
  std::unique_ptr<LedgerApi> node_;
  int refused_ = 0;
};

TEST_F(MisdirectedIngestTest, AnEventForAPartitionAnotherNodeOwnsAnswers421NamingTheOwner) {
  const auto r = post({testing::subject_in(2, 4)});
  ASSERT_EQ(r.status, 421u) << r.body;
  const auto err = error_of(r);
  EXPECT_EQ(err["code"], "misdirected");
  EXPECT_EQ(err["details"]["partition"], 2);
  EXPECT_EQ(err["details"]["owner"], "http://10.0.0.2:8080");
  EXPECT_EQ(err["details"]["events"],
            json::parse(R"([{"index":0,"partition":2,"owner":"http://10.0.0.2:8080"}])"));
  EXPECT_TRUE(json::parse(r.body)["data"].is_null());
  EXPECT_EQ(records(), 0u);
  EXPECT_EQ(refused_, 1);
}

TEST_F(MisdirectedIngestTest, APartitionWithoutAKnownOwnerAnswers421WithANullOwner) {
  const auto r = post({testing::subject_in(3, 4)});
  ASSERT_EQ(r.status, 421u) << r.body;
  EXPECT_EQ(error_of(r)["details"]["partition"], 3);
  EXPECT_TRUE(error_of(r)["details"]["owner"].is_null());
  EXPECT_EQ(records(), 0u);
}

TEST_F(MisdirectedIngestTest, OwnedPartitionsStillTakeEvents) {
  const auto r = post({testing::subject_in(0, 4), testing::subject_in(1, 4)});
  ASSERT_EQ(r.status, 201u) << r.body;
  EXPECT_EQ(data_of(r)["events"][0]["partition"], 0);
  EXPECT_EQ(data_of(r)["events"][1]["partition"], 1);
  EXPECT_EQ(records(), 2u);
  EXPECT_EQ(refused_, 0);
}

TEST_F(MisdirectedIngestTest, ABatchMixingOwnedAndForeignPartitionsAppendsNothing) {
  // The owned event comes first: a partial append would already have stored it.
  const auto r =
      post({testing::subject_in(0, 4), testing::subject_in(3, 4), testing::subject_in(2, 4)});
  ASSERT_EQ(r.status, 421u) << r.body;
  const auto details = error_of(r)["details"];
  EXPECT_EQ(details["partition"], 3);  // the first misdirected event's
  EXPECT_TRUE(details["owner"].is_null());
  ASSERT_EQ(details["events"].size(), 2u);
  EXPECT_EQ(details["events"][0], json::parse(R"({"index":1,"partition":3,"owner":null})"));
  EXPECT_EQ(details["events"][1],
            json::parse(R"({"index":2,"partition":2,"owner":"http://10.0.0.2:8080"})"));
  EXPECT_EQ(records(), 0u);
  EXPECT_EQ(store_->lag(*log_), 0u);
}

TEST_F(MisdirectedIngestTest, OwnershipIsCheckedAfterAuthenticationAndValidation) {
  // Unauthenticated and malformed requests learn nothing about the cluster's layout.
  auto anonymous = request(
      "POST", "/v1/events", "",
      json{{"events", {{{"subject", testing::subject_in(2, 4)}, {"type", "order.created"}}}}}
          .dump());
  EXPECT_EQ(node_call(anonymous).status, 401u);
  const auto bad = node_call(
      request("POST", "/v1/events", token("service"),
              R"({"events":[{"subject":")" + testing::subject_in(2, 4) + R"(","type":"Bad"}]})"));
  EXPECT_EQ(bad.status, 400u);
  EXPECT_EQ(refused_, 0);
}

// ---- authentication ----

TEST_F(LedgerApiTest, MissingOrNonBearerCredentialsAnswer401WithAChallenge) {
  auto r = call(request("POST", "/v1/events", ""));
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(error_of(r)["code"], "unauthorized");
  bool challenged = false;
  for (const auto& [k, v] : r.headers)
    challenged |= k == "WWW-Authenticate" && v.rfind("Bearer", 0) == 0;
  EXPECT_TRUE(challenged);
  auto basic = request("GET", "/v1/admin/audit", "");
  basic.headers["authorization"] = "Basic YWRtaW46YWRtaW4=";
  EXPECT_EQ(call(basic).status, 401u);
  EXPECT_EQ(rejects_, (std::vector<std::string>{"missing_credentials", "bad_scheme"}));
}

TEST_F(LedgerApiTest, ForgedExpiredOrForeignTokensAnswer401InvalidToken) {
  auto good = token("admin");
  auto forged = good;
  forged[forged.size() - 5] = forged[forged.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(call(request("GET", "/v1/admin/audit", forged)).status, 401u);
  // alg=none with the same claims.
  const auto dot = good.find('.');
  const auto none = jose::base64url_encode(std::string(R"({"alg":"none","typ":"at+jwt"})")) +
                    good.substr(dot, good.rfind('.') - dot) + ".";
  EXPECT_EQ(call(request("GET", "/v1/admin/audit", none)).status, 401u);
  const auto short_lived = token("admin", "app-1", "s-1", std::chrono::seconds(60));
  clock_.advance_micros(61'000'000);
  auto expired = call(request("GET", "/v1/admin/audit", short_lived));
  EXPECT_EQ(expired.status, 401u);
  EXPECT_EQ(error_of(expired)["code"], "invalid_token");
  ASSERT_EQ(rejects_.size(), 3u);
  EXPECT_EQ(rejects_[0], "bad_signature");
  EXPECT_EQ(rejects_[1], "alg_not_allowed");
  EXPECT_EQ(rejects_[2], "expired");
}

TEST_F(LedgerApiTest, ServiceTokensMayIngestButNotReadTheAudit) {
  const auto service = token("service");
  EXPECT_EQ(
      call(request("POST", "/v1/events", service, R"({"events":[{"subject":"a","type":"x.y"}]})"))
          .status,
      201u);
  auto r = call(request("GET", "/v1/admin/audit", service));
  EXPECT_EQ(r.status, 403u);
  EXPECT_EQ(error_of(r)["code"], "forbidden");
  EXPECT_EQ(call(request("GET", "/v1/admin/ledger/checkpoints", service)).status, 403u);
  EXPECT_EQ(call(request("GET", "/v1/admin/audit/export", service)).status, 403u);
  // A user token without a role cannot ingest.
  EXPECT_EQ(call(request("POST", "/v1/events", token("premium"),
                         R"({"events":[{"subject":"a","type":"x.y"}]})"))
                .status,
            403u);
}

TEST_F(LedgerApiTest, ARevokedSessionStopsItsTokenAtOnceEvenWhenCached) {
  const auto t = token("admin", "alice", "sess-a");
  const auto other = token("admin", "alice", "sess-b");
  ASSERT_EQ(call(request("GET", "/v1/admin/audit", t)).status, 200u);  // now cached
  append_event(
      "alice",
      [](auto& fbb) {
        return schema::CreateSessionRevoked(fbb, fbb.CreateString("sess-a"),
                                            fbb.CreateString("test"))
            .Union();
      },
      schema::Event::SessionRevoked);
  auto r = call(request("GET", "/v1/admin/audit", t));
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(rejects_.back(), "session_revoked");
  EXPECT_EQ(call(request("GET", "/v1/admin/audit", other)).status, 200u);
}

// 002 "Idle session expiration": a session past its idle expiry stops its access tokens,
// although they have not expired; a token whose session the projection never saw (an operator
// token) is not affected.
TEST_F(LedgerApiTest, AnIdleExpiredSessionStopsItsTokenBeforeTheTokenExpires) {
  const auto idle_ends = clock_.now_micros() + 10LL * 60 * 1'000'000;
  append_event(
      "carol",
      [&](auto& fbb) {
        const std::uint8_t hash[] = {1, 2, 3};
        return schema::CreateSessionStarted(
                   fbb, fbb.CreateString("sess-idle"), fbb.CreateString("fam-idle"),
                   fbb.CreateVector(hash, sizeof hash), false, idle_ends, 0)
            .Union();
      },
      schema::Event::SessionStarted);
  const auto t = token("admin", "carol", "sess-idle");
  const auto operator_token =
      token("admin", "carol", "cli-not-a-session", std::chrono::hours(1), true);
  ASSERT_EQ(call(request("GET", "/v1/admin/audit", t)).status, 200u);
  clock_.advance_micros(idle_ends - clock_.now_micros() - 1);
  EXPECT_EQ(call(request("GET", "/v1/admin/audit", t)).status, 200u) << "still idle";
  clock_.advance_micros(1);
  EXPECT_EQ(call(request("GET", "/v1/admin/audit", t)).status, 401u);
  EXPECT_EQ(rejects_.back(), "session_expired");
  EXPECT_EQ(call(request("GET", "/v1/admin/audit", operator_token)).status, 200u);
}

// API.md "Exclusive mode": a session token bound to a device key (cnf.jkt) is never valid
// without a proof; presented as a bearer token on any route it is refused, whatever its roles.
TEST_F(LedgerApiTest, AKeyBoundSessionTokenIsNeverABearerToken) {
  const jose::TokenIssuer issuer(*ring_, clock_, settings_.issuer_config());
  jose::TokenSubject bound{"carol", "xs-1", {"admin"}, false, "thumbprint-of-the-device-key"};
  const auto issued = issuer.issue(bound, std::chrono::minutes(30)).value();
  EXPECT_EQ(issued.claims.cnf_jkt, "thumbprint-of-the-device-key");
  const auto r = call(request("GET", "/v1/admin/audit", issued.token));
  EXPECT_EQ(r.status, 401u) << r.body;
  EXPECT_EQ(rejects_.back(), "proof_required");
  bound.cnf_jkt.clear();
  EXPECT_EQ(call(request("GET", "/v1/admin/audit",
                         issuer.issue(bound, std::chrono::minutes(30)).value().token))
                .status,
            200u)
      << "the same token without cnf is an ordinary one";
}

TEST_F(LedgerApiTest, LogoutAllCutsOffEveryTokenIssuedBeforeIt) {
  const auto this_session = token("admin", "bob", "sess-1");
  const auto other_session = token("admin", "bob", "sess-2");
  ASSERT_EQ(call(request("GET", "/v1/admin/audit", other_session)).status, 200u);
  clock_.advance_micros(2'000'000);
  append_event(
      "bob",
      [](auto& fbb) {
        return schema::CreateLoggedOut(fbb, fbb.CreateString("sess-1"), true).Union();
      },
      schema::Event::LoggedOut);
  EXPECT_EQ(call(request("GET", "/v1/admin/audit", this_session)).status, 401u);
  EXPECT_EQ(rejects_.back(), "session_revoked");
  EXPECT_EQ(call(request("GET", "/v1/admin/audit", other_session)).status, 401u);
  EXPECT_EQ(rejects_.back(), "sessions_cut_off");
  // A later login is not affected; nor is another user.
  clock_.advance_micros(1'000'000);
  EXPECT_EQ(call(request("GET", "/v1/admin/audit", token("admin", "bob", "sess-3"))).status, 200u);
  EXPECT_EQ(call(request("GET", "/v1/admin/audit", token("admin", "carol", "s"))).status, 200u);
}

// Issue 12: a service token ended every operator's sessions through logout-all, since all
// operator tokens share `sub` "operator". Operator tokens are refused on user routes, and each
// is its own session: a cutoff of the shared sub does not end them, their sid alone does.
TEST_F(LedgerApiTest, OperatorTokensAreNeverUsersAndAreRevokedOnlyByTheirOwnSession) {
  const auto service = token("service", "operator", "cli-1", std::chrono::hours(1), true);
  const auto admin = token("admin", "operator", "cli-2", std::chrono::hours(1), true);
  for (const auto& [method, route] :
       std::vector<std::pair<std::string, std::string>>{{"POST", "/v1/auth/logout-all"},
                                                        {"POST", "/v1/auth/logout"},
                                                        {"GET", "/v1/me"},
                                                        {"GET", "/v1/me/export"},
                                                        {"DELETE", "/v1/me"},
                                                        {"POST", "/v1/auth/reauth"}}) {
    for (const auto& t : {service, admin}) {
      auto r = request(method, route, t);
      const auto who = auth_->authenticate(r);
      ASSERT_FALSE(who) << method << " " << route;
      EXPECT_EQ(who.error().status, 403u) << method << " " << route;
      EXPECT_EQ(rejects_.back(), "operator_token");
    }
  }
  // A user's token is a user there, whatever its roles.
  EXPECT_TRUE(auth_->authenticate(request("GET", "/v1/me", token("admin", "dave", "sess-d"))));

  // A logout-all recorded for the shared sub (as the attack left it) ends no operator token...
  clock_.advance_micros(2'000'000);
  append_event(
      "operator",
      [](auto& fbb) {
        return schema::CreateLoggedOut(fbb, fbb.CreateString("cli-1"), true).Union();
      },
      schema::Event::LoggedOut);
  EXPECT_EQ(call(request("GET", "/v1/admin/audit", admin)).status, 200u);
  // ...but the one whose own session it named is revoked.
  EXPECT_EQ(call(request("GET", "/v1/admin/audit", service)).status, 401u);
  EXPECT_EQ(rejects_.back(), "session_revoked");
}

TEST_F(LedgerApiTest, EachRouteAdmitsWhatItsRuleInTheRouteTableSays) {
  const auto user = token("premium", "erin", "sess-e");
  const auto user_admin = token("admin", "frank", "sess-f");
  const auto service = token("service", "operator", "cli-3", std::chrono::hours(1), true);
  const auto op_admin = token("admin", "operator", "cli-4", std::chrono::hours(1), true);
  auto status = [&](const std::string& method, const std::string& route, const std::string& t) {
    const auto who = auth_->authenticate(request(method, route, t));
    return who ? 200u : who.error().status;
  };
  for (const auto& rule : route_rules()) {
    const std::string m(rule.method), r(rule.route);
    switch (rule.access) {
      case Access::anyone:
      case Access::user:
        EXPECT_EQ(status(m, r, user), 200u) << m << " " << r;
        EXPECT_EQ(status(m, r, op_admin), 403u) << m << " " << r;
        break;
      case Access::admin:
        EXPECT_EQ(status(m, r, user), 403u) << m << " " << r;
        EXPECT_EQ(status(m, r, service), 403u) << m << " " << r;
        EXPECT_EQ(status(m, r, op_admin), 200u) << m << " " << r;
        EXPECT_EQ(status(m, r, user_admin), 200u) << m << " " << r;
        break;
      case Access::ingest:
        EXPECT_EQ(status(m, r, user), 403u) << m << " " << r;
        EXPECT_EQ(status(m, r, service), 200u) << m << " " << r;
        EXPECT_EQ(status(m, r, op_admin), 200u) << m << " " << r;
        break;
      case Access::device:
        // A bearer token of any kind never passes a device route's rule.
        for (const auto* t : {&user, &user_admin, &service, &op_admin}) {
          EXPECT_EQ(status(m, r, *t), 403u) << m << " " << r;
        }
        break;
    }
  }
  // A route the table does not know is closed to everyone.
  EXPECT_EQ(status("GET", "/v1/undeclared", op_admin), 403u);
  EXPECT_EQ(rejects_.back(), "route_without_rule");
}

// A route can neither be served without its rule nor skip the authentication its rule asks
// for: restricted routes are registered with a Principal-taking handler that the registry
// guards, and ledgerd refuses to start on any mismatch (route_registry.h).
TEST_F(LedgerApiTest, TheRouteRegistryGuardsRestrictedRoutesAndReportsEveryMismatch) {
  Router router;
  RouteRegistry routes(router, *auth_);
  int reached = 0;
  routes.guarded("GET", "/v1/me", [&](const Request&, const Principal& p) {
    ++reached;
    return json_ok(nlohmann::json(p.subject).dump());
  });
  routes.open("GET", "/v1/admin/audit", [](const Request&) { return json_ok("1"); });
  routes.guarded("POST", "/v1/auth/login",
                 [](const Request&, const Principal&) { return json_ok("1"); });
  routes.open("GET", "/v1/not-in-the-table", [](const Request&) { return json_ok("1"); });
  router.add("DELETE", "/v1/me", [](const Request&) { return json_ok("unguarded"); });
  const auto problems = routes.mismatches();
  auto has = [&](const std::string& needle) {
    return std::any_of(problems.begin(), problems.end(),
                       [&](const std::string& p) { return p.find(needle) != std::string::npos; });
  };
  EXPECT_TRUE(has("GET /v1/admin/audit is registered open but its rule is admin"));
  EXPECT_TRUE(has("POST /v1/auth/login is registered guarded but its rule is anyone"));
  EXPECT_TRUE(has("GET /v1/not-in-the-table is served without a rule"));
  EXPECT_EQ(std::count_if(problems.begin(), problems.end(),
                          [](const std::string& p) {
                            return p.find("not-in-the-table") != std::string::npos;
                          }),
            1)
      << "reported once";
  EXPECT_TRUE(has("DELETE /v1/me is restricted (user) but was added without its guard"));
  EXPECT_TRUE(has("names no served route"));

  // The guard authenticates before the handler runs, as the rule says.
  auto req = request("GET", "/v1/me", "");
  req.route = "/v1/me";
  const auto m = router.match("GET", "/v1/me");
  EXPECT_EQ((*m.handler)(req).status, 401u);
  req =
      request("GET", "/v1/me", token("service", "operator", "cli-9", std::chrono::hours(1), true));
  req.route = "/v1/me";
  EXPECT_EQ((*m.handler)(req).status, 403u) << "an operator token is not a user";
  EXPECT_EQ(reached, 0);
  req = request("GET", "/v1/me", token("premium", "gail", "sess-g"));
  req.route = "/v1/me";
  EXPECT_EQ((*m.handler)(req).status, 200u);
  EXPECT_EQ(reached, 1);
}

// ---- audit ----

TEST_F(LedgerApiTest, AuditPagesCoverEveryEntryOnceInTimeOrderWithHashes) {
  const auto answers = ingest_n(250, 7);
  const auto admin = token("admin");
  std::vector<json> entries;
  std::string cursor;
  int pages = 0;
  for (;;) {
    auto r = call(request(
        "GET", "/v1/admin/audit?limit=100" + (cursor.empty() ? "" : "&cursor=" + cursor), admin));
    ASSERT_EQ(r.status, 200u) << r.body;
    const auto d = data_of(r);
    ++pages;
    for (const auto& e : d["entries"]) entries.push_back(e);
    if (d["nextCursor"].is_null()) break;
    cursor = d["nextCursor"].get<std::string>();
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(entries.size(), 250u);
  std::map<std::string, std::string> hash_by_event;
  for (const auto& a : answers) hash_by_event[a["eventId"]] = a["hash"];
  std::string last_time;
  for (const auto& e : entries) {
    EXPECT_EQ(e["hash"], hash_by_event.at(e["eventId"]));
    EXPECT_TRUE(e.contains("partition") && e.contains("seq"));
    EXPECT_GE(e["time"].get<std::string>(), last_time);
    last_time = e["time"].get<std::string>();
    hash_by_event.erase(e["eventId"]);
  }
  EXPECT_TRUE(hash_by_event.empty());
}

TEST_F(LedgerApiTest, AuditFiltersByUserTypeAndTimeRange) {
  const auto start = clock_.now_micros();
  ingest_n(40, 4, 1);  // one event per request: event i at start + (i + 1) ms
  const auto admin = token("admin");
  auto by_user = data_of(call(request("GET", "/v1/admin/audit?userId=order-2", admin)));
  ASSERT_EQ(by_user["entries"].size(), 10u);
  for (const auto& e : by_user["entries"]) EXPECT_EQ(e["subject"], "order-2");
  // [from, to): events were 1 ms apart starting at start + 1 ms.
  const auto from = format_rfc3339(start + 11'000);
  const auto to = format_rfc3339(start + 21'000);
  auto window = data_of(call(request("GET", "/v1/admin/audit?from=" + from + "&to=" + to, admin)));
  EXPECT_EQ(window["entries"].size(), 10u) << window.dump();
  auto typed = data_of(call(request("GET", "/v1/admin/audit?type=ApplicationEvent", admin)));
  EXPECT_EQ(typed["entries"].size(), 40u);
  auto none = data_of(call(request("GET", "/v1/admin/audit?type=LoginFailed", admin)));
  EXPECT_EQ(none["entries"].size(), 0u);
  EXPECT_TRUE(none["nextCursor"].is_null());
}

TEST_F(LedgerApiTest, AuditRefusesBadParametersWithTheirName) {
  const auto admin = token("admin");
  for (const auto& [query, param] : std::vector<std::pair<std::string, std::string>>{
           {"limit=0", "limit"},
           {"limit=1001", "limit"},
           {"limit=5x", "limit"},
           {"from=yesterday", "from"},
           {"type=NoSuchEvent", "type"},
           {"cursor=***", "cursor"},
           {"colour=blue", "colour"},
           {"from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"},
           {"userId=a&userId=b", "query"},
           {"userId=%zz", "query"},
       }) {
    auto r = call(request("GET", "/v1/admin/audit?" + query, admin));
    ASSERT_EQ(r.status, 400u) << query;
    EXPECT_EQ(error_of(r)["details"]["parameter"], param) << query;
  }
}

TEST(QueryString, DecodesEscapesAndRefusesRepeatsAndBadEscapes) {
  const auto q = parse_query("userId=a%40b.c&from=2026-01-01T00%3A00%3A00Z&x=1+2&&flag");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->at("userId"), "a@b.c");
  EXPECT_EQ(q->at("from"), "2026-01-01T00:00:00Z");
  EXPECT_EQ(q->at("x"), "1 2");
  EXPECT_EQ(q->at("flag"), "");
  EXPECT_FALSE(parse_query("a=1&a=2"));
  EXPECT_FALSE(parse_query("a=%4"));
  EXPECT_FALSE(parse_query("a=%"));
  EXPECT_FALSE(parse_query("=1"));
}

// ---- export ----

TEST_F(LedgerApiTest, ExportStreamsEveryEntryInPagesAsCsvOrJson) {
  ingest_n(1200, 9);
  const auto admin = token("admin");
  auto csv = call(request("GET", "/v1/admin/audit/export?format=csv", admin));
  ASSERT_EQ(csv.status, 200u);
  ASSERT_TRUE(csv.next_chunk);
  EXPECT_EQ(csv.content_type.rfind("text/csv", 0), 0u);
  int chunks = 0;
  const auto text = collect(csv, &chunks);
  EXPECT_GE(chunks, 4);  // header + pages of at most 500: never one buffer
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1201);
  EXPECT_EQ(text.rfind(ledger::csv_header(), 0), 0u);

  auto js = call(request("GET", "/v1/admin/audit/export?format=json&userId=order-3", admin));
  ASSERT_EQ(js.status, 200u);
  const auto arr = json::parse(collect(js));
  ASSERT_TRUE(arr.is_array());
  EXPECT_EQ(arr.size(), 1200u / 9 + (3 < 1200 % 9 ? 1 : 0));
  for (const auto& e : arr) EXPECT_EQ(e["subject"], "order-3");

  auto empty = call(request("GET", "/v1/admin/audit/export?userId=nobody", admin));
  EXPECT_EQ(json::parse(collect(empty)), json::array());
  EXPECT_EQ(call(request("GET", "/v1/admin/audit/export?format=xml", admin)).status, 400u);
}

// ---- checkpoints and keys ----

TEST_F(LedgerApiTest, CheckpointsRouteAnswersTheLatestSignedNotePerPartition) {
  const auto answers = ingest_n(20, 6);
  ASSERT_TRUE(log_->checkpoint_due(true));
  auto r = call(request("GET", "/v1/admin/ledger/checkpoints", token("admin")));
  ASSERT_EQ(r.status, 200u) << r.body;
  const auto d = data_of(r);
  EXPECT_EQ(d["ledgerId"], log_->ledger_id());
  ASSERT_FALSE(d["checkpoints"].empty());
  for (const auto& cp : d["checkpoints"]) {
    const ledger::Partition p{cp["partition"].get<std::uint32_t>()};
    const auto head = log_->head(p);
    EXPECT_EQ(cp["size"], head.next.value);
    EXPECT_EQ(cp["hash"], ledger::to_hex(head.hash));
    EXPECT_NE(cp["note"].get<std::string>().find("\n\n\u2014 "), std::string::npos);  // signed
  }
}

TEST_F(LedgerApiTest, JwksListsTheCurrentAndStillValidPreviousKeys) {
  const auto before = ring_->current_kid();
  ASSERT_TRUE(ring_->rotate());
  const auto keys = json::parse(call(request("GET", "/.well-known/jwks.json", "")).body)["keys"];
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0]["kid"], ring_->current_kid());
  EXPECT_EQ(keys[1]["kid"], before);
  for (const auto& k : keys) EXPECT_FALSE(k.contains("d"));  // never the private part
}

}  // namespace
}  // namespace sechex::api
