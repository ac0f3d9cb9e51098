// Payments by user: a user can only ever read their own payments (spec 003 payment isolation),
// so every key starts with the owner.
//
//   payments                 lp(user) || payment id -> JSON {"id","amount_minor","currency",
//                            "status","created_at","updated_at","metadata_json",
//                            "description_sealed","description_event_id"}
//   payments_by_idempotency  lp(user) || idempotency key hash -> payment id
// where lp(x) = be32(len(x)) || x. PaymentStatusChanged is recorded under the owner (the
// event's subject); a status change for a payment the subject does not own changes nothing.
#pragma once

#include "projections/projection.h"

namespace sechex::projections {

inline constexpr const char* kPaymentsCf = "payments";
inline constexpr const char* kPaymentsByIdempotencyCf = "payments_by_idempotency";

std::string payment_owner_prefix(std::string_view user);

class PaymentsProjection final : public Projection {
 public:
  std::string name() const override { return "payments"; }
  std::vector<std::string> column_families() const override {
    return {kPaymentsCf, kPaymentsByIdempotencyCf};
  }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
};

}  // namespace sechex::projections
