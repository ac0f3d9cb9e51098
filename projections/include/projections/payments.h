// Payments by owner (API.md "Payments"; spec 003 US5 payment data isolation, FR-001/002): every
// key of a user's payments starts with the owner, so a read names the owner and cannot reach
// another user's rows: another user's payment id is simply absent, exactly like a missing one.
//
//   payments                 lp(owner) || payment id -> JSON {"id","amount","currency","status",
//                            "created_at","updated_at" (micros),"description_sealed",
//                            "metadata_sealed" (base64 of the sealed bytes, "" when none),
//                            "event_id" (hex of PaymentCreated's id, the seals' AAD),
//                            "history":[{"status","at","webhook_id"}]}  (first entry "pending")
//   payments_by_time         lp(owner) || be64(INT64_MAX - created micros) || payment id -> ""
//                            (newest first when scanned in key order)
//   payments_by_idempotency  lp(owner) || keyed hash of the Idempotency-Key ->
//                            JSON {"payment_id","request_hash" (hex),"expires_at"}; expires 24 h
//                            after the payment (API.md: keys are kept 24 h per user)
//   payments_owner           payment id -> owner (incoming webhooks name only the payment)
//   payments_webhooks        lp(provider) || webhook-id -> JSON {"payment_id","expires_at"};
//                            expires 7 days after receipt (longer than providers retry)
// where lp(x) = be32(len(x)) || x.
//
// Events: PaymentCreated adds a payment (an id that exists is ignored); PaymentStatusChanged,
// recorded under the owner's subject, sets the status and appends to the history (a subject's
// event about a payment it does not own changes nothing); WebhookReceived marks its webhook-id
// seen. SubjectErased leaves the rows: amounts and statuses are the owner's financial record,
// and the description and metadata are sealed, so erasure makes them unreadable anyway.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "projections/projection.h"
#include "projections/users.h"

namespace sechex::projections {

class ProjectionStore;

inline constexpr const char* kPaymentsCf = "payments";
inline constexpr const char* kPaymentsByTimeCf = "payments_by_time";
inline constexpr const char* kPaymentsByIdempotencyCf = "payments_by_idempotency";
inline constexpr const char* kPaymentsOwnerCf = "payments_owner";
inline constexpr const char* kPaymentWebhooksCf = "payments_webhooks";

inline constexpr std::int64_t kIdempotencyWindowMicros = 24LL * 3600 * 1'000'000;
inline constexpr std::int64_t kWebhookDedupeMicros = 7LL * 24 * 3600 * 1'000'000;

class PaymentsProjection final : public Projection {
 public:
  std::string name() const override { return "payments"; }
  std::vector<std::string> column_families() const override {
    return {kPaymentsCf, kPaymentsByTimeCf, kPaymentsByIdempotencyCf, kPaymentsOwnerCf,
            kPaymentWebhooksCf};
  }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
  std::vector<std::string> expiring_column_families() const override {
    return {kPaymentsByIdempotencyCf, kPaymentWebhooksCf};
  }
  bool expired(std::string_view cf, std::string_view key, std::string_view value,
               std::int64_t now_micros) const override;
};

struct PaymentRow {
  std::string id;
  std::int64_t amount = 0;  // minor units
  std::string currency;
  std::string status;  // "pending" | "succeeded" | "failed" | "refunded"
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
  SealedValue description;  // field "description"; empty when none was given
  SealedValue metadata;     // field "metadata": JSON text of an object; empty when none
  struct Change {
    std::string status;
    std::int64_t at = 0;
    std::string webhook_id;  // "" for the creation
  };
  std::vector<Change> history;
};

// `owner`'s payment `id`; nullopt when `owner` has none of that id (whoever else may).
Result<std::optional<PaymentRow>> payment(const ProjectionStore& store, std::string_view owner,
                                          std::string_view id);

// One page of `owner`'s payments, newest first, optionally only those of `status`. `cursor` is
// "" for the first page or a previous page's next_cursor; a malformed cursor is
// Errc::invalid_argument. next_cursor is "" on the last page. A page visits at most
// kMaxPaymentScan index entries, so a rare status can give a short (even empty) page with a
// cursor to go on.
inline constexpr std::size_t kMaxPaymentScan = 1000;
struct PaymentPage {
  std::vector<PaymentRow> rows;
  std::string next_cursor;
};
Result<PaymentPage> payments_page(const ProjectionStore& store, std::string_view owner,
                                  std::string_view status, std::string_view cursor,
                                  std::size_t limit);

// The payment an Idempotency-Key (its keyed hash) made for `owner`, while it is kept.
struct IdempotentPayment {
  std::string payment_id;
  std::string request_hash_hex;
  std::int64_t expires_at = 0;
};
Result<std::optional<IdempotentPayment>> idempotent_payment(const ProjectionStore& store,
                                                            std::string_view owner,
                                                            std::string_view key_hash,
                                                            std::int64_t now_micros);

// Whose payment `id` is; nullopt for an unknown id.
Result<std::optional<std::string>> payment_owner(const ProjectionStore& store, std::string_view id);

// Whether `provider` delivered webhook `id` before (and it is still remembered at `now`).
Result<bool> webhook_seen(const ProjectionStore& store, std::string_view provider,
                          std::string_view id, std::int64_t now_micros);

}  // namespace sechex::projections
