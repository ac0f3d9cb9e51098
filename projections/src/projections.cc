#include "projections/access.h"
#include "projections/audit.h"
#include "projections/payments.h"
#include "projections/store.h"
#include "projections/users.h"

namespace sechex::projections {

std::vector<std::unique_ptr<Projection>> default_projections() {
  std::vector<std::unique_ptr<Projection>> out;
  out.push_back(std::make_unique<UsersProjection>());
  out.push_back(std::make_unique<AuditProjection>());
  out.push_back(std::make_unique<AccessProjection>());
  out.push_back(std::make_unique<PaymentsProjection>());
  return out;
}

}  // namespace sechex::projections
