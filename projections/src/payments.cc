#include "projections/payments.h"

#include <nlohmann/json.hpp>

#include "ledger/crypto.h"
#include "ledger/time_format.h"
#include "ledger/utf8.h"

namespace sechex::projections {

std::string payment_owner_prefix(std::string_view user) {
  std::string k(4, '\0');
  const auto n = static_cast<std::uint32_t>(user.size());
  for (int i = 0; i < 4; ++i) k[i] = static_cast<char>(n >> (24 - 8 * i));
  k.append(user);
  return k;
}

Result<void> PaymentsProjection::apply(const schema::Envelope& env, const ledger::Position&,
                                       Txn& txn) {
  if (env.event_type() != schema::Event::PaymentCreated &&
      env.event_type() != schema::Event::PaymentStatusChanged) {
    return boost::outcome_v2::success();
  }
  const auto owner = payment_owner_prefix(env.subject()->string_view());
  const auto when = format_rfc3339(env.time_micros());
  if (env.event_type() == schema::Event::PaymentCreated) {
    const auto* e = env.event_as_PaymentCreated();
    if (e->payment_id() == nullptr) return boost::outcome_v2::success();
    const auto* id = env.event_id()->bytes();
    const auto* desc = e->description_sealed();
    nlohmann::json p{
        {"id", e->payment_id()->str()},
        {"amount_minor", e->amount_minor()},
        {"currency", e->currency() ? e->currency()->str() : ""},
        {"status", "created"},
        {"created_at", when},
        {"updated_at", when},
        {"metadata_json", e->metadata_json() ? e->metadata_json()->str() : ""},
        {"description_sealed",
         desc ? ledger::crypto::base64_encode(ledger::ByteView(desc->data(), desc->size())) : ""},
        {"description_event_id", ledger::to_hex(ledger::ByteView(id->data(), id->size()))}};
    txn.put(kPaymentsCf, owner + e->payment_id()->str(), ledger::json_text(p));
    if (const auto* idem = e->idempotency_key_hash(); idem != nullptr && idem->size() > 0) {
      txn.put(kPaymentsByIdempotencyCf,
              owner + std::string(reinterpret_cast<const char*>(idem->data()), idem->size()),
              e->payment_id()->str());
    }
  } else if (env.event_type() == schema::Event::PaymentStatusChanged) {
    const auto* e = env.event_as_PaymentStatusChanged();
    if (e->payment_id() == nullptr) return boost::outcome_v2::success();
    const auto key = owner + e->payment_id()->str();
    SECHEX_TRY(auto stored, txn.get(kPaymentsCf, key));
    if (!stored) return boost::outcome_v2::success();  // not this subject's payment
    auto p = nlohmann::json::parse(*stored, nullptr, false);
    if (p.is_discarded()) return ledger::Errc::corruption;
    p["status"] = e->status() ? e->status()->str() : "";
    p["updated_at"] = when;
    txn.put(kPaymentsCf, key, ledger::json_text(p));
  }
  return boost::outcome_v2::success();
}

}  // namespace sechex::projections
