// Who may call each route ledgerd serves: the one table to review (route_access.cc), read by
// the Authenticator on every request (auth.h) and checked against the router at start-up, so a
// route cannot be served without a declared rule, nor a rule outlive its route.
//
//   anyone  no credentials needed. A handler that looks at a caller anyway (an OTP request from
//           a signed-in user, GET /v1/auth/csrf) asks Authenticator for `user` explicitly.
//   user    a user's session (Bearer or the __Host-access cookie). Operator tokens
//           (`ledgerctl tokens issue`, claim "operator") are refused whatever their role: they
//           are nobody's session, and /v1/auth/* and /v1/me* act on the caller's own sessions.
//   admin   the `admin` role: an operator's admin token, or a user granted the role.
//   ingest  POST /v1/events: the `admin` or `service` role.
//
// HEAD follows GET (server.h). Thread-safety: immutable data.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/http/server.h"

namespace sechex::api {

// device: an exclusive-mode session, a key-bound token with a DPoP proof per request
// (RouteRegistry::device_signed; the proof is checked by the exclusive commands, on the user's
// partition, because its replay check must be atomic with recording it).
enum class Access { anyone, user, admin, ingest, device };

struct RouteRule {
  std::string_view method;
  std::string_view route;  // the pattern as registered, `{name}` segments included
  Access access;
};

std::span<const RouteRule> route_rules();

// The rule of a matched route (Request::route), nullopt when the table has none.
std::optional<Access> access_of(std::string_view method, std::string_view route);

std::string_view to_string(Access a);

// What differs between the table and `router`'s routes, one sentence each ("GET /x is served
// without a rule", "rule for POST /y names no served route"); empty when they agree. The table
// lists every route ledgerd serves on its API listener.
std::vector<std::string> route_table_mismatches(const Router& router);

}  // namespace sechex::api
