// Rendering records for people and tools (ledgerctl export, audit exports): the envelope as
// JSON with sealed fields opened where the subject's key exists and marked erased where it was
// crypto-shredded.
//
// Sealed-field convention: a field `<name>_sealed` is rendered as `<name>`, sealed under field
// name "<name>" (EventBuilder::seal("<name>", ...)).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "ledger/key_store.h"
#include "ledger/record.h"

namespace sechex::ledger {

inline constexpr const char* kErasedValue = "[erased]";
// Sealed credentials are never opened for display: `secret` (the code or link token a mail
// carries), `password_hash` (Argon2id PHC strings) and `server_share` (a secret's server share)
// render as this.
inline constexpr const char* kRedactedValue = "[redacted]";

// Fails with Errc::unsupported_version for an event of a newer schema and Errc::corruption for
// bytes that are not an Envelope. `keys` may be null (sealed fields are then shown as
// "[sealed]").
//
// Every string of the result is well-formed UTF-8, whatever bytes the record holds (records
// written before text was validated at entry may hold any): ill-formed bytes are shown as U+FFFD
// and `invalid_utf8` lists the JSON Pointers of the strings so repaired (absent when none was).
Result<nlohmann::json> record_to_json(const Record& record, KeyStore* keys);

// For readers of many records (audit pages, exports): record_to_json, or for a record it cannot
// render the same shape with what the log itself vouches for (partition, seq, hash) and
// `unrenderable` saying why ("newer_schema" or "not_an_event"), so one bad record is marked in
// the answer instead of failing all of it.
nlohmann::json render_record(const Record& record, KeyStore* keys);

inline const std::vector<std::string>& csv_columns() {
  static const std::vector<std::string> cols = {
      "partition", "seq",        "time",   "type",     "subject", "actor", "request_id",
      "ip",        "user_agent", "erased", "event_id", "hash",    "event"};
  return cols;
}
// One CSV line (RFC 4180 quoting, no trailing newline) for a record rendered by
// record_to_json. Cells starting with = + - @ tab or CR are prefixed with ' so spreadsheet programs
// do not run them as formulas.
std::string json_to_csv_row(const nlohmann::json& rendered);
// One CSV line of these cells, quoted and formula-guarded as above.
std::string csv_row(const std::vector<std::string>& cells);
std::string csv_header();

}  // namespace sechex::ledger
