// Admin rows of API.md for who sees which feature (000 FR-06, FR-08):
//
//   POST /v1/admin/users/{id}/roles      (admin) {grant?:[...], revoke?:[...]} -> {userId, roles};
//       one RoleGranted per change by "admin:<sub>" (roles: admin, premium); 400 invalid_role,
//       404 not_found. Premium (exclusive mode) is read from the projection on every request,
//       so a revocation takes effect at once.
//   PUT /v1/admin/users/{id}/attributes  (admin) {region?, segment?} -> {userId, region, segment};
//       replaces the user's attributes (a missing or null member clears it). UserAttributesSet
//       by "admin:<sub>", sealed under the user's key (personal data, crypto-shredded on
//       erasure). 400 invalid_request naming the field; 404 not_found for no such user.
//   GET /v1/admin/flags/{name}           (admin) -> {name, set, enabled, regions?, segments?,
//       users?, percentage?}; an unset flag answers its default, enabled for everyone.
//   PUT /v1/admin/flags/{name}           (admin) {enabled, regions?, segments?, users?,
//       percentage?} -> the same; FlagChanged by "admin:<sub>". A user matches when the flag is
//       enabled and every rule given matches (api/identity/flags.h). 404 not_found for a flag
//       the product does not read; 400 invalid_request naming the field.
//
// Roles, flags and attributes are read from the projections on every request they decide, so a
// change takes effect at the next one.
//
// Thread-safety: handlers are thread-safe and blocking (Exec::pool).
#pragma once

#include "api/routes/identity_api.h"

namespace sechex::api {

class AdminApi {
 public:
  AdminApi(IdentityDeps deps, IdentityConfig config);

  void add_routes(RouteRegistry& routes);

  Response set_roles(const Request& req, const Principal& admin);
  Response set_attributes(const Request& req, const Principal& admin);
  Response flag(const Request& req, const Principal& admin);
  Response set_flag(const Request& req, const Principal& admin);

 private:
  IdentityDeps d_;
  IdentityConfig config_;
};

}  // namespace sechex::api
