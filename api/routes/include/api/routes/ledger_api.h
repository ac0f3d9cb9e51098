// The ledger's own HTTP routes (API.md "Ledger, audit and operations"):
//
//   POST /v1/events                  (admin or service) append a batch of application events
//   GET  /v1/admin/audit             (admin) audit entries with (partition, seq, hash), paged
//   GET  /v1/admin/audit/export      (admin) the same entries streamed as CSV or JSON
//   GET  /v1/admin/secure/audit      (admin) the exclusive-mode entries (000 FR-05, 001), streamed
//                                    as JSON or CSV: ?userId&from&to&format=json|csv; each
//                                    {time, userId, deviceId, sessionId, action, outcome, reason,
//                                    jti, proofHash, partition, seq, hash, type}; CSV cells are
//                                    formula-injection safe (ledger/export.h csv_row)
//   GET  /v1/admin/ledger/checkpoints (admin) the latest signed checkpoint of each partition
//                                    (with its Merkle rootHash, null for one signed before the
//                                    tree existed)
//   GET  /v1/admin/ledger/proof      (admin) ?partition&seq[&size]: an RFC 9162 inclusion proof
//                                    (ledger/proof.h) against the signed checkpoint of `size`
//                                    records (default the latest); 404 past it, 410 `pruned`
//                                    below the retention cut, 501 when the log keeps no tree
//   GET  /v1/admin/ledger/consistency (admin) ?partition&from&to: a consistency proof between
//                                    two signed checkpoints' sizes; 400 when either is not one
// Audit answers carry "pruned": [{partition, prunedBelowSeq, prunedBefore}] when the query
// reaches back past a retention cut, so history that is gone is said, not silently missing.
//   GET  /.well-known/jwks.json      token signing keys (public)
//
// Ingest body (at most 64 KiB; API.md input rules apply while parsing):
//   {"events": [ <event>, ... ]}   1..100 events, each checked as application_event.h says
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
#include <vector>

#include "api/app/commands.h"
#include "api/auth/auth.h"
#include "api/auth/route_registry.h"
#include "api/crypto/jose.h"
#include "api/crypto/token_settings.h"
#include "api/http/api_error.h"
#include "api/http/server.h"
#include "api/ingest/application_event.h"
#include "ledger/clock.h"
#include "ledger/key_store.h"

namespace sechex::api {

inline constexpr std::size_t kAuditScanBudget = 5000;

// Parses and checks an ingest body (application_event.h). On failure, the 400 response:
// details.reason is one of API.md's input reasons, or "invalid_event" with details.index and
// details.field.
ApiResult<std::vector<IngestEvent>> parse_ingest_batch(std::string_view body);

struct LedgerApiMetrics {
  std::function<void(std::size_t events, std::chrono::steady_clock::duration)> on_append;
  // A command refused with 421 because this node does not own a partition it needs.
  std::function<void()> on_misdirected;
};

class LedgerApi {
 public:
  LedgerApi(CommandPath& commands, ledger::KeyStore& keys, const Authenticator& auth,
            const jose::KeyRing& ring, const Clock& clock, LedgerApiMetrics metrics = {});

  void add_routes(RouteRegistry& routes);

  Response ingest(const Request& req, const Principal& who);
  Response audit(const Request& req, const Principal& who);
  Response audit_export(const Request& req, const Principal& who);
  Response secure_audit(const Request& req, const Principal& who);
  Response checkpoints(const Request& req, const Principal& who);
  Response proof(const Request& req, const Principal& who);
  Response consistency(const Request& req, const Principal& who);
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
