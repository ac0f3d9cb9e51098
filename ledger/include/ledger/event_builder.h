// Builds Envelope events with sealed PII, so every producer (API handlers, `ledgerctl demo`,
// tests) writes events the same way.
//
// Usage:
//   EventBuilder b(keys, {.subject = "u1", .actor = "u1", .time_micros = now, .ip = "10.0.0.1"});
//   SECHEX_TRY(auto email, b.seal("email", "a@example.com"));
//   auto body = schema::CreateUserRegistered(b.fbb(), email, ...);
//   SECHEX_TRY(auto bytes, b.finish(body));
//
// Not thread-safe: one builder per event.
#pragma once

#include <optional>
#include <string>

#include "ledger/key_store.h"
#include "schemas/events.h"

namespace sechex::ledger {

// Longest user agent recorded, in bytes (cut at a character boundary).
inline constexpr std::size_t kMaxUserAgentBytes = 512;

// Text fields may come from a client (a header): finish() stores actor, request_id and
// user_agent as well-formed UTF-8 (ill-formed bytes replaced by U+FFFD, utf8.h), the user agent
// cut to kMaxUserAgentBytes, so no record can carry text its renderers cannot show. A subject
// that is not valid UTF-8 is refused (Errc::invalid_argument): it names the data key.
struct EventMeta {
  std::string subject;
  std::string actor;
  std::string request_id;
  std::int64_t time_micros = 0;
  std::optional<std::string> ip;          // sealed
  std::optional<std::string> user_agent;  // sealed
  // Source.ip_hash: the keyed hash of the client IP (raw bytes), for per-IP rate limits.
  std::optional<std::string> ip_hash = std::nullopt;
};

class EventBuilder {
 public:
  // `keys` may be null only for events that seal nothing (then ip/user_agent must be unset).
  EventBuilder(KeyStore* keys, EventMeta meta);

  flatbuffers::FlatBufferBuilder& fbb() { return fbb_; }
  const std::array<std::uint8_t, 16>& event_id() const { return event_id_; }

  Result<flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>> seal(std::string_view field,
                                                                      std::string_view plaintext);

  template <typename T>
  Result<Bytes> finish(flatbuffers::Offset<T> body) {
    return finish_raw(schema::EventTraits<T>::enum_value, body.Union());
  }
  Result<Bytes> finish_raw(schema::Event type, flatbuffers::Offset<void> body);

 private:
  KeyStore* keys_;
  EventMeta meta_;
  std::array<std::uint8_t, 16> event_id_{};
  flatbuffers::FlatBufferBuilder fbb_{512};
  bool id_ok_ = false;
};

}  // namespace sechex::ledger
