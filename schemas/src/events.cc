#include "schemas/events.h"

namespace sechex::schemas {

CheckResult check_envelope(const std::uint8_t* data, std::size_t size) {
  // Depth and table limits well above anything events.fbs can produce, far below what would
  // let a hostile buffer make verification expensive.
  flatbuffers::Verifier verifier(data, size, /*max_depth=*/16, /*max_tables=*/4096);
  if (!schema::VerifyEnvelopeBuffer(verifier)) return CheckResult::malformed;
  const auto* env = schema::GetEnvelope(data);
  if (env->schema_version() > kSchemaVersion) return CheckResult::newer_version;
  const auto type = env->event_type();
  if (type == schema::Event::NONE || type > schema::Event::MAX) {
    return CheckResult::unknown_event_type;
  }
  if (env->event_id()->bytes()->size() != 16) return CheckResult::malformed;
  return CheckResult::ok;
}

const char* to_string(CheckResult r) {
  switch (r) {
    case CheckResult::ok:
      return "ok";
    case CheckResult::malformed:
      return "malformed event (FlatBuffers verification failed)";
    case CheckResult::newer_version:
      return "event written by a newer schema version";
    case CheckResult::unknown_event_type:
      return "unknown event type";
  }
  return "unknown";
}

const char* event_type_name(schema::Event type) {
  if (type > schema::Event::MAX) return "NONE";
  return schema::EnumNameEvent(type);
}

}  // namespace sechex::schemas
