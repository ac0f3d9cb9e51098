#include "projections/access.h"
#include "projections/audit.h"
#include "projections/exclusive.h"
#include "projections/identity.h"
#include "projections/oauth.h"
#include "projections/outbox.h"
#include "projections/payments.h"
#include "projections/rate_limits.h"
#include "projections/replay_cache.h"
#include "projections/secrets.h"
#include "projections/sessions.h"
#include "projections/store.h"
#include "projections/users.h"
#include "projections/webhooks.h"

namespace sechex::projections {

std::vector<std::unique_ptr<Projection>> default_projections() {
  std::vector<std::unique_ptr<Projection>> out;
  out.push_back(std::make_unique<UsersProjection>());
  out.push_back(std::make_unique<AuditProjection>());
  out.push_back(std::make_unique<AccessProjection>());
  out.push_back(std::make_unique<PaymentsProjection>());
  out.push_back(std::make_unique<SessionsProjection>());
  out.push_back(std::make_unique<RateLimitsProjection>());
  out.push_back(std::make_unique<ReplayCacheProjection>());
  out.push_back(std::make_unique<IdentityProjection>());
  out.push_back(std::make_unique<OutboxProjection>());
  out.push_back(std::make_unique<SecretsProjection>());
  out.push_back(std::make_unique<ExclusiveProjection>());
  out.push_back(std::make_unique<WebhooksProjection>());
  out.push_back(std::make_unique<OAuthProjection>());
  return out;
}

}  // namespace sechex::projections
