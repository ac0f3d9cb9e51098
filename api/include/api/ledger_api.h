// The ledger's own HTTP routes (API.md "Ledger, audit and operations"):
//
//   POST /v1/events                  (admin or service) append a batch of application events
//   GET  /v1/admin/audit             (admin) audit entries with (partition, seq, hash), paged
//   GET  /v1/admin/audit/export      (admin) the same entries streamed as CSV or JSON
//   GET  /v1/admin/ledger/checkpoints (admin) the latest signed checkpoint of each partition
//   GET  /.well-known/jwks.json      token signing keys (public)
//
// Ingest body (at most 64 KiB; API.md input rules apply while parsing):
//   {"events": [ {"subject": "<id>", "type": "<dotted.name>",
//                 "payload": {...}, "personal": {...}}, ... ]}        1..100 events
//   subject   1..256 printable characters (whose history the event belongs to)
//   type      lower-case dotted name, e.g. "order.shipped", at most 128 characters
//   payload   optional object, depth <= 2, stored as JSON in the clear
//   personal  optional object, depth <= 2, personal data: sealed under the subject's data key,
//             so erasing the subject shreds it
// Each becomes an ApplicationEvent (application and actor = the token's subject, time = server
// clock). Events are grouped by partition and each group goes through the command path as one
// append. A batch spanning several partitions is not atomic: if a later group fails, the answer
// is 503 with details.appended listing what was stored, so a client can resend only the rest.
// Answer: 201 {"events": [{"index", "eventId", "subject", "partition", "seq", "hash"}]} in
// request order.
// Ownership (ownership.h): when any event's partition is not owned by this node, nothing is
// appended and the answer is 421 `misdirected` with details {"partition", "owner"} of the first
// such event and "events": [{"index", "partition", "owner"}] for each; "owner" is the URL that
// serves the partition, or null when this node was not told. The client resends there (a batch
// spanning several owners must be split by partition).
//
// Audit query: userId, type, from, to (RFC 3339, [from, to)), limit (1..1000, default 100),
// cursor (opaque, from nextCursor). Entries come in time order (per user when userId is given),
// rendered like `ledgerctl export` with sealed fields opened. One page examines at most
// kAuditScanBudget index entries; a filtered query can therefore return fewer than `limit`
// entries together with a nextCursor, and null nextCursor means the end.
//
// Thread-safety: the handlers are thread-safe and blocking (ingest on Exec::pool, reads on
// Exec::read).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "api/auth.h"
#include "api/commands.h"
#include "api/jose.h"
#include "api/server.h"
#include "ledger/clock.h"
#include "ledger/key_store.h"

namespace sechex::api {

inline constexpr std::size_t kAuditScanBudget = 5000;

// Token settings ledgerd and `ledgerctl tokens issue` must agree on.
struct TokenSettings {
  std::string issuer = "sechex-ledger";
  std::string audience = "sechex-api";
  std::chrono::seconds clock_skew{60};
  // The longest lifetime the ring signs (user access tokens are 1 h; operator tokens from
  // ledgerctl may be longer). A retired key keeps verifying for this long after rotation.
  std::chrono::seconds max_ttl{24 * 3600};

  jose::KeyRingOptions ring_options() const { return {max_ttl, clock_skew}; }
  jose::IssuerConfig issuer_config() const { return {issuer, audience}; }
  jose::VerifierConfig verifier_config() const {
    jose::VerifierConfig c;
    c.issuer = issuer;
    c.audience = audience;
    c.clock_skew = clock_skew;
    return c;
  }
};
// The JWT key directory of a data directory (see jose.h "Key directory").
inline std::string jwt_keys_dir(const std::string& data_root) { return data_root + "/keys/jwt"; }

// One validated event of an ingest batch.
struct IngestEvent {
  std::string subject;
  std::string type;
  std::string payload_json;   // "" when absent
  std::string personal_json;  // "" when absent
};

// Parses and schema-checks an ingest body. On failure, the 400 response: details.reason is one
// of API.md's input reasons, or "invalid_event" with details.index and details.field.
std::variant<std::vector<IngestEvent>, Response> parse_ingest_batch(std::string_view body);
// One event object (a record of the Kafka ingest topic), with the same checks; the reason on
// failure.
std::variant<IngestEvent, std::string> parse_ingest_event(std::string_view json_object);

// The ApplicationEvent envelope of `ev` sent by `application`, its `personal` part sealed under
// the subject's key (created on first use). `event_id_hex` receives the event id.
Result<ledger::Bytes> build_application_event(ledger::KeyStore& keys, const IngestEvent& ev,
                                              const std::string& application,
                                              const std::string& request_id,
                                              std::int64_t time_micros,
                                              std::optional<std::string> peer,
                                              std::string* event_id_hex);

// Decoded query string: percent-escapes and '+' decoded. nullopt for a malformed escape or a
// repeated parameter (ambiguous filters are refused, not guessed).
std::optional<std::map<std::string, std::string>> parse_query(std::string_view query);

struct LedgerApiMetrics {
  std::function<void(std::size_t events, std::chrono::steady_clock::duration)> on_append;
  // A command refused with 421 because this node does not own a partition it needs.
  std::function<void()> on_misdirected;
};

class LedgerApi {
 public:
  LedgerApi(CommandPath& commands, ledger::KeyStore& keys, const Authenticator& auth,
            const jose::KeyRing& ring, const Clock& clock, LedgerApiMetrics metrics = {});

  void add_routes(Router& router);

  Response ingest(const Request& req);
  Response audit(const Request& req);
  Response audit_export(const Request& req);
  Response checkpoints(const Request& req);
  Response jwks(const Request& req) const;

 private:
  CommandPath& commands_;
  ledger::KeyStore& keys_;
  const Authenticator& auth_;
  const jose::KeyRing& ring_;
  const Clock& clock_;
  LedgerApiMetrics metrics_;
};

}  // namespace sechex::api
