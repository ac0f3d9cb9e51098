// The event schema: generated FlatBuffers types plus the few helpers every reader needs.
//
// Thread-safety: all functions here are pure and reentrant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "schemas/events_generated.h"

namespace sechex::schemas {

// The envelope schema_version this build writes and the newest it can read.
inline constexpr std::uint16_t kSchemaVersion = 1;

// Schema text (events.fbs), embedded at build time.
std::string_view events_fbs_text();

enum class CheckResult {
  ok,
  malformed,           // not a valid Envelope buffer (FlatBuffers verifier failed)
  newer_version,       // schema_version > kSchemaVersion
  unknown_event_type,  // union type this build does not know (written by a newer schema)
};

// `data` must be aligned to 8 bytes (FlatBuffers reads scalars in place; std::vector and
// std::string buffers are, RocksDB slices are not: copy those first).
// Verifies `data` as an Envelope: FlatBuffers verifier (bounds, depth, table count), file
// identifier, required fields, schema version and a known event type.
CheckResult check_envelope(const std::uint8_t* data, std::size_t size);
const char* to_string(CheckResult r);

// The envelope inside verified bytes. Precondition: check_envelope(...) == ok or malformed
// only in ways the caller tolerates; never call on unverified input.
inline const schema::Envelope* envelope_of(const std::uint8_t* data) {
  return schema::GetEnvelope(data);
}

// "UserRegistered" etc.; "NONE" for an unknown type.
const char* event_type_name(schema::Event type);

}  // namespace sechex::schemas
