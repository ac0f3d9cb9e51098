// /openapi.json is the API.md contract: regenerating it from ../shared/API.md must give the
// committed, embedded document (so a contract change cannot silently skip it).
#include "api/http/openapi.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

namespace sechex::api {
namespace {

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  EXPECT_EQ(::pclose(p), 0) << cmd;
  return out;
}

TEST(OpenApi, EmbeddedDocumentMatchesApiMd) {
  const auto fresh =
      run("python3 " SECHEX_SOURCE_DIR "/ops/gen-openapi.py " SECHEX_SHARED_DIR "/API.md");
  ASSERT_FALSE(fresh.empty());
  const auto embedded = nlohmann::json::parse(openapi_json());
  EXPECT_EQ(embedded, nlohmann::json::parse(fresh))
      << "API.md changed: run ops/gen-openapi.py ../shared/API.md > api/http/openapi.json";
}

TEST(OpenApi, DescribesTheFixedPaths) {
  const auto doc = nlohmann::json::parse(openapi_json());
  EXPECT_EQ(doc["openapi"], "3.0.3");
  const auto& paths = doc["paths"];
  EXPECT_TRUE(paths["/v1/events"].contains("post"));
  EXPECT_TRUE(paths["/v1/admin/flags/{name}"].contains("get"));
  EXPECT_TRUE(paths["/v1/admin/flags/{name}"].contains("put"));
  EXPECT_TRUE(paths["/v1/admin/users/{id}/roles"].contains("post"));
  EXPECT_TRUE(paths["/v1/me"].contains("delete"));
  EXPECT_EQ(paths["/v1/payments/{id}"]["get"]["parameters"][0]["name"], "id");
  EXPECT_GE(paths.size(), 44u);
}

// API.md runs ahead of the code: what the router does not serve is marked so in the served
// document, what it serves is not, and nothing is dropped (issue 13).
TEST(OpenApi, TheServedDocumentMarksExactlyTheRoutesTheRouterDoesNotServe) {
  Router router;
  router.add("GET", "/v1/me", [](const Request&) { return json_ok("1"); });
  router.add("POST", "/v1/admin/users/{id}/unlock", [](const Request&) { return json_ok("1"); });
  add_openapi_route(router, {{"GET", "/metrics"}});
  const auto m = router.match("GET", "/openapi.json");
  ASSERT_NE(m.handler, nullptr);
  const auto doc = nlohmann::json::parse((*m.handler)(Request{}).body);
  const auto full = nlohmann::json::parse(openapi_json());
  std::size_t served = 0, marked = 0;
  for (const auto& [path, ops] : full["paths"].items()) {
    for (const auto& [method, op] : ops.items()) {
      const auto& served_op = doc["paths"][path][method];
      const bool is_served = (path == "/v1/me" && method == "get") ||
                             (path == "/v1/admin/users/{id}/unlock" && method == "post") ||
                             (path == "/metrics" && method == "get") ||
                             (path == "/openapi.json" && method == "get");
      if (is_served) {
        ++served;
        EXPECT_FALSE(served_op.contains("x-sechex-served")) << method << " " << path;
        EXPECT_EQ(served_op["description"], op["description"]);
      } else {
        ++marked;
        EXPECT_EQ(served_op["x-sechex-served"], false) << method << " " << path;
        EXPECT_TRUE(served_op["description"].get<std::string>().starts_with(
            "Not served by this version yet."));
      }
    }
  }
  EXPECT_EQ(served, 4u);
  EXPECT_GT(marked, 30u);
}

TEST(OpenApi, IsServedBare) {
  Router router;
  add_openapi_route(router);
  const auto m = router.match("GET", "/openapi.json");
  ASSERT_NE(m.handler, nullptr);
  const auto r = (*m.handler)(Request{});
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(nlohmann::json::parse(r.body)["info"]["title"], "Sechex Ledger");
}

}  // namespace
}  // namespace sechex::api
