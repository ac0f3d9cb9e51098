// /openapi.json is the API.md contract: regenerating it from ../shared/API.md must give the
// committed, embedded document (so a contract change cannot silently skip it).
#include "api/openapi.h"

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
      << "API.md changed: run ops/gen-openapi.py ../shared/API.md > api/openapi.json";
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
