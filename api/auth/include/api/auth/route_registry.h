// Adding routes so that none can forget its authentication (issue 12's review): every route is
// declared in the route table (route_access.h); a route the table restricts (user, admin,
// ingest) is registered with a handler that takes the authenticated Principal, and the registry
// authenticates the caller as the table says before that handler runs. A handler cannot skip
// the check, and a route cannot be served without a rule.
//
// Lifecycle: add every route, then ask mismatches() before serving (ledgerd refuses to start
// unless it is empty). Thread-safety: registration happens before serving, on one thread; the
// handlers it installs are as thread-safe as the ones given.
#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "api/auth/auth.h"
#include "api/auth/route_access.h"
#include "api/http/server.h"

namespace sechex::api {

class RouteRegistry {
 public:
  using Guarded = std::function<Response(const Request&, const Principal&)>;
  // What an open route that serves signed-in callers differently learns of its caller: nullopt
  // when the request presents no credential, else the principal (as a user) or the refusal.
  using MaybeSignedIn = std::optional<ApiResult<Principal>>;
  using OpenToAll = std::function<Response(const Request&, const MaybeSignedIn&)>;

  // `router` and `auth` must outlive the registry and the router's handlers.
  RouteRegistry(Router& router, const Authenticator& auth) : router_(router), auth_(auth) {}

  // A route the table opens to anyone.
  void open(std::string method, std::string path, Handler handler, Exec exec = Exec::io);
  // A route the table restricts: the caller is authenticated as its rule says first.
  void guarded(std::string method, std::string path, Guarded handler, Exec exec = Exec::io);
  // A route the table opens to anyone that also serves signed-in callers (a step-up code to
  // the caller's own address, the CSRF token of the caller's session): the caller is
  // authenticated first when it presents a credential, so no handler authenticates by itself.
  void open_to_all(std::string method, std::string path, OpenToAll handler, Exec exec = Exec::io);

  // A device route (Access::device): the request must present a session token (Authorization:
  // DPoP or Bearer), else 401 before the handler runs; the handler gets it with the DPoP header
  // (empty when absent) and must have both checked by the exclusive commands (exclusive.h),
  // which verify the token's cnf.jkt, the proof (exactly one), and its replay on the user's
  // partition, chaining every refusal.
  struct DeviceCredentials {
    std::string_view token;
    std::string_view proof;
  };
  using DeviceSigned = std::function<Response(const Request&, const DeviceCredentials&)>;
  void device_signed(std::string method, std::string path, DeviceSigned handler,
                     Exec exec = Exec::io);

  // What is wrong, one sentence each: a route registered here against its rule (no rule, open
  // but restricted, guarded but open), a route of the router that has no rule or is restricted
  // but was not registered here, a rule whose route is not served. Empty when all agree.
  std::vector<std::string> mismatches() const;

  Router& router() { return router_; }

 private:
  Router& router_;
  const Authenticator& auth_;
  std::vector<std::string> errors_;
  std::set<std::pair<std::string, std::string>> guarded_;  // (method, path) added by guarded()
};

}  // namespace sechex::api
