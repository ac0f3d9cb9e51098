#include "api/ingest/application_event.h"

#include <algorithm>

#include "api/json/json_input.h"
#include "ledger/event_builder.h"
#include "ledger/utf8.h"
#include "schemas/events.h"

namespace sechex::api {
namespace {

using json = nlohmann::json;

bool printable_utf8_without_controls(std::string_view s) {
  // json_input has already checked UTF-8; refuse control characters, which have no place in an
  // identifier and make logs and CSV exports ambiguous.
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// Lower-case dotted name: segments of [a-z][a-z0-9_]*, separated by single dots.
bool valid_type_name(std::string_view t) {
  if (t.empty() || t.size() > kMaxType) return false;
  bool segment_start = true;
  for (const char c : t) {
    if (c == '.') {
      if (segment_start) return false;
      segment_start = true;
      continue;
    }
    const bool lower = c >= 'a' && c <= 'z';
    const bool tail = lower || (c >= '0' && c <= '9') || c == '_';
    if (segment_start ? !lower : !tail) return false;
    segment_start = false;
  }
  return !segment_start;
}

}  // namespace

ResultOf<IngestEvent, EventRefusal> check_event(const nlohmann::json& e) {
  if (!e.is_object()) return EventRefusal{"", "each event must be an object"};
  IngestEvent ev;
  for (const auto& [k, v] : e.items()) {
    if (k == "subject") {
      if (!v.is_string()) return EventRefusal{k, "subject must be a string"};
      ev.subject = v.get<std::string>();
      if (ev.subject.empty() || ev.subject.size() > kMaxSubject ||
          !printable_utf8_without_controls(ev.subject)) {
        return EventRefusal{k, "subject must be 1..256 printable characters"};
      }
    } else if (k == "type") {
      if (!v.is_string() || !valid_type_name(v.get<std::string>())) {
        return EventRefusal{k, "type must be a lower-case dotted name like order.shipped"};
      }
      ev.type = v.get<std::string>();
    } else if (k == "payload" || k == "personal") {
      if (!v.is_object()) return EventRefusal{k, k + " must be an object"};
      if (json_depth(v) > kMaxFreeFormDepth) {
        return EventRefusal{k, k + " may nest at most 2 levels"};
      }
      (k == "payload" ? ev.payload_json : ev.personal_json) = v.dump();
    } else {
      return EventRefusal{k, "unknown field"};
    }
  }
  if (ev.subject.empty()) return EventRefusal{"subject", "subject is required"};
  if (ev.type.empty()) return EventRefusal{"type", "type is required"};
  return ev;
}

ResultOf<IngestEvent, EventRefusal> parse_ingest_event(std::string_view json_object) {
  JsonLimits limits;
  limits.max_depth = kIngestDepth - 2;  // the object sits two levels lower in a POST body
  auto parsed = parse_json_input(json_object, limits);
  if (!parsed) return EventRefusal{"", parsed.error().detail};
  return check_event(parsed.value());
}

Result<BuiltEvent> build_application_event(ledger::KeyStore& keys, const IngestEvent& ev,
                                           const std::string& application,
                                           const std::string& request_id, std::int64_t time_micros,
                                           std::optional<std::string> peer) {
  // The application may come from a Kafka record header: any bytes (utf8.h).
  const auto app = ledger::to_utf8(application, kMaxSubject);
  ledger::EventBuilder b(&keys, {.subject = ev.subject,
                                 .actor = app,
                                 .request_id = request_id,
                                 .time_micros = time_micros,
                                 .ip = std::move(peer),
                                 .user_agent = std::nullopt,
                                 .ip_hash = std::nullopt});
  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> sealed;
  if (!ev.personal_json.empty()) {
    SECHEX_TRY(sealed, b.seal("payload", ev.personal_json));
  }
  auto& fbb = b.fbb();
  const auto body = schema::CreateApplicationEvent(
      fbb, fbb.CreateString(app), fbb.CreateString(ev.type),
      ev.payload_json.empty() ? 0 : fbb.CreateString(ev.payload_json), sealed);
  auto id = ledger::to_hex(b.event_id());
  SECHEX_TRY(auto bytes, b.finish(body));
  return BuiltEvent{std::move(bytes), std::move(id)};
}

}  // namespace sechex::api
