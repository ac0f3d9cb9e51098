// The email outbox (issue 5; spec 003 FR-038/039/041): which mails are queued, when each is due
// for its next delivery attempt, and how each ended. The delivery worker (api/mail.h) reads it;
// only MailQueued, MailDelivered and MailDeliveryFailed events change it.
//
//   outbox      message id -> JSON {"subject","event_id","kind","locale","to_sealed",
//               "secret_sealed","state","attempts","next_attempt_at","last_error","queued_at",
//               "done_at"}
//               event_id: hex of the MailQueued envelope's event id (the sealed fields' AAD);
//               to_sealed / secret_sealed: base64 of the sealed bytes exactly as in the event
//               ("" when absent); they stay ciphertext, so crypto-shredding the subject's data
//               key makes them unreadable here too.
//               state "pending" | "delivered" | "failed"; attempts = attempts made so far;
//               times in micros; next_attempt_at is meaningful while pending; done_at is 0
//               while pending, else the time of the event that ended the mail.
//   outbox_due  be64(next_attempt_at) || message id -> ""   one entry per pending mail, so the
//               worker finds due mails in time order without scanning the outbox.
// Message ids are opaque to the projection (the producer makes them from 16 random bytes, so
// two subjects never share one; like session ids, an entry of another subject counts as
// absent); keys hold no personal data.
//
// Events:
//   MailQueued          creates a pending entry due at the event's time; ignored when an
//                       entry with that id exists (idempotent: a duplicate queues nothing).
//   MailDelivered       pending -> delivered (attempts from the event).
//   MailDeliveryFailed  pending: attempts and last_error from the event; with `final` ->
//                       failed (the admin flag: failed_mails()), else due again at its
//                       next_attempt_at.
// Outcomes for an entry that is not pending (a second report after a crash and resend), of
// another subject (apply() touches only its own partition's subjects), or unknown are ignored:
// the first outcome wins.
//
// Expiry: pending entries never expire. A delivered entry expires kOutboxDeliveredKeepMicros
// (7 days) after done_at, a failed one kOutboxFailedKeepMicros (30 days: the admin flag should
// outlast a holiday; the MailDeliveryFailed event itself stays in the log and the audit index).
// apply() treats an expired entry as absent (projection.h), so a rebuild and a cleaned store
// agree.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "projections/projection.h"

namespace sechex::projections {

class ProjectionStore;

inline constexpr const char* kOutboxCf = "outbox";
inline constexpr const char* kOutboxDueCf = "outbox_due";
inline constexpr std::int64_t kOutboxDeliveredKeepMicros = 7LL * 24 * 3600 * 1'000'000;
inline constexpr std::int64_t kOutboxFailedKeepMicros = 30LL * 24 * 3600 * 1'000'000;

class OutboxProjection final : public Projection {
 public:
  std::string name() const override { return "outbox"; }
  std::vector<std::string> column_families() const override { return {kOutboxCf, kOutboxDueCf}; }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
  std::vector<std::string> expiring_column_families() const override { return {kOutboxCf}; }
  bool expired(std::string_view cf, std::string_view key, std::string_view value,
               std::int64_t now_micros) const override;
};

// Mail kinds (MailQueued.kind), one list for the commands that queue mails and api/mail that
// renders them. The first two carry a link with the secret as token, otp_code carries the secret
// as the code; the others carry no secret.
inline constexpr const char* kMailVerifyEmail = "verify_email";
inline constexpr const char* kMailPasswordReset = "password_reset";
inline constexpr const char* kMailPasswordResetDone = "password_reset_done";
inline constexpr const char* kMailOtpCode = "otp_code";
inline constexpr const char* kMailOtpLockout = "otp_lockout";
inline constexpr const char* kMailAccountLocked = "account_locked";
// A new exclusive-mode device was activated while another was enrolled (API.md).
inline constexpr const char* kMailExclusiveNewDevice = "exclusive_new_device";
// To an administrator (--admin-email): background work gave up after its last retry (003
// FR-039). Its "secret" names what failed, "webhook:<delivery id>" or "mail:<message id>" (no
// personal data); a failed admin alert raises no further alert.
inline constexpr const char* kMailAdminAlert = "admin_alert";

// One outbox entry, decoded.
struct OutboxEntry {
  std::string message_id;
  std::string subject;
  std::string event_id_hex;
  std::string kind;
  std::string locale;
  std::string to_sealed;      // raw sealed bytes (decoded from base64); empty when absent
  std::string secret_sealed;  // the same
  std::string state;          // "pending" | "delivered" | "failed"
  std::uint32_t attempts = 0;
  std::int64_t next_attempt_at = 0;
  std::string last_error;
  std::int64_t queued_at = 0;
  std::int64_t done_at = 0;
};

// Pending mails with next_attempt_at <= now_micros, earliest first, at most `max` of those
// `want` accepts (all when empty). Reads the due index, then one point read per entry.
Result<std::vector<OutboxEntry>> due_mails(
    const ProjectionStore& store, std::int64_t now_micros, std::size_t max,
    const std::function<bool(const OutboxEntry&)>& want = {});
// The entry of `message_id`, or nullopt when there is none (never queued, or expired and
// cleaned up). Errc::corruption for an unreadable value.
Result<std::optional<OutboxEntry>> mail_state(const ProjectionStore& store,
                                              std::string_view message_id);
// Mails given up after their last attempt (state "failed"), by message id, at most `max`: the
// flag an administrator queries. Scans the outbox (bounded by its expiry).
Result<std::vector<OutboxEntry>> failed_mails(const ProjectionStore& store, std::size_t max);

}  // namespace sechex::projections
