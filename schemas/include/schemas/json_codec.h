// Converts events between FlatBuffers bytes and JSON using the embedded schema, so tools and
// the ingest API handle every event type without per-type code.
//
// JSON shape: the FlatBuffers JSON mapping of `Envelope` (strict JSON): union members appear as
// "event_type": "<Name>" plus "event": {...}; [ubyte] fields are arrays of numbers.
//
// Thread-safety: each thread lazily builds its own flatbuffers::Parser (the parser is not
// thread-safe), so calls from many threads are fine.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sechex::schemas {

// Envelope bytes -> compact JSON. nullopt when the bytes cannot be rendered (call
// check_envelope first: this function trusts the buffer).
std::optional<std::string> envelope_to_json(const std::uint8_t* data, std::size_t size);

// The envelope's `source` and `event` tables as JSON objects ({"source": {...}, "event": {...}},
// either absent when the envelope has none), in the same shape envelope_to_json gives them but
// built directly from the buffer through the schema (no text round trip: this is the hot path of
// audit reads). nullopt for a field type the walker does not render (the caller then falls back
// to envelope_to_json). Trusts the buffer like envelope_to_json.
std::optional<nlohmann::json> envelope_parts_to_json(const std::uint8_t* data);

// JSON -> envelope bytes (with the `SXL1` identifier). On failure returns nullopt and puts the
// parser's message in `*error`.
std::optional<std::vector<std::uint8_t>> envelope_from_json(std::string_view json,
                                                            std::string* error);

// Names of all event types in union order (index + 1 = type id).
const std::vector<std::string>& event_type_names();

// For one event type, its fields as (name, flatbuffers base type name) pairs, in id order.
struct FieldInfo {
  std::string name;
  std::string type;  // "string", "bool", "int64", "uint32", "ubyte_vector", "enum:<Name>", ...
};
std::vector<FieldInfo> event_fields(std::string_view event_type);

}  // namespace sechex::schemas
