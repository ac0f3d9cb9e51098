// Application events: what applications emit to the ledger, through POST /v1/events or a
// record of the Kafka ingest topic (ARCHITECTURE.md "Kafka mode"), and the ApplicationEvent
// envelope each becomes. The checks are the same on both ways in.
//
// One event object:
//   {"subject": "<id>", "type": "<dotted.name>", "payload": {...}, "personal": {...}}
//   subject   1..256 printable characters (whose history the event belongs to)
//   type      lower-case dotted name, e.g. "order.shipped", at most 128 characters
//   payload   optional object, depth <= 2, stored as JSON in the clear
//   personal  optional object, depth <= 2, personal data: sealed under the subject's data key,
//             so erasing the subject shreds it
//
// Thread-safety: pure functions, but build_application_event() creates the subject's data key
// on first use (KeyStore is thread-safe).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "ledger/key_store.h"
#include "ledger/result.h"

namespace sechex::api {

inline constexpr std::size_t kMaxSubject = 256;
inline constexpr std::size_t kMaxType = 128;
inline constexpr std::size_t kMaxFreeFormDepth = 2;  // API.md: free-form objects have depth <= 2
// root {} > events [] > event {} > payload {} > one nested level
inline constexpr std::size_t kIngestDepth = 3 + kMaxFreeFormDepth;

// One checked event.
struct IngestEvent {
  std::string subject;
  std::string type;
  std::string payload_json;   // "" when absent
  std::string personal_json;  // "" when absent
};

// Why an event object was refused: the field (empty for the object itself) and in words.
struct EventRefusal {
  std::string field;
  std::string message;
  // "field: message", or the message alone when the object itself was refused.
  std::string text() const { return field.empty() ? message : field + ": " + message; }
};

// The checks of one parsed event object.
ResultOf<IngestEvent, EventRefusal> check_event(const nlohmann::json& event);

// One event object as text (a record of the Kafka ingest topic), parsed with API.md's input
// limits and checked (a JSON input refusal has no field).
ResultOf<IngestEvent, EventRefusal> parse_ingest_event(std::string_view json_object);

// An encoded ApplicationEvent and its event id.
struct BuiltEvent {
  ledger::Bytes bytes;
  std::string event_id_hex;
};

// The ApplicationEvent envelope of `ev` sent by `application`, its `personal` part sealed under
// the subject's key (created on first use).
Result<BuiltEvent> build_application_event(ledger::KeyStore& keys, const IngestEvent& ev,
                                           const std::string& application,
                                           const std::string& request_id, std::int64_t time_micros,
                                           std::optional<std::string> peer);

}  // namespace sechex::api
