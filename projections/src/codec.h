// Byte encodings shared by the projections (internal header). Big-endian integers keep keys
// sorting in numeric order; lp() length-prefixes a variable part so that one key component
// can never run into the next ("ab"+"c" vs "a"+"bc").
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "ledger/crypto.h"
#include "ledger/types.h"
#include "projections/users.h"

namespace sechex::projections::codec {

inline void put_be64(std::string& out, std::int64_t v) {
  const auto u = static_cast<std::uint64_t>(v);
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(u >> (8 * i)));
}
inline std::string be64(std::int64_t v) {
  std::string s;
  put_be64(s, v);
  return s;
}
// Precondition: s.size() >= 8.
inline std::int64_t get_be64(std::string_view s) {
  std::uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<unsigned char>(s[i]);
  return static_cast<std::int64_t>(u);
}
inline std::string lp(std::string_view x) {
  std::string k(4, '\0');
  const auto n = static_cast<std::uint32_t>(x.size());
  for (int i = 0; i < 4; ++i) k[i] = static_cast<char>(n >> (24 - 8 * i));
  k.append(x);
  return k;
}

// Stored forms of event byte fields in JSON rows ("" for an absent field).
inline std::string hex_of(const flatbuffers::Vector<std::uint8_t>* v) {
  return v == nullptr ? "" : ledger::to_hex(ledger::ByteView(v->data(), v->size()));
}
inline std::string b64_of(const flatbuffers::Vector<std::uint8_t>* v) {
  return v == nullptr ? "" : ledger::crypto::base64_encode(ledger::ByteView(v->data(), v->size()));
}

// A sealed value as JSON rows store it: the base64 ciphertext and the hex id of the event that
// sealed it. An empty ciphertext is no value (never set, or erased): true, `out` left empty.
inline bool decode_sealed(std::string_view sealed_b64, std::string_view event_id_hex,
                          SealedValue& out) {
  if (sealed_b64.empty()) return true;
  return ledger::crypto::base64_decode(sealed_b64, out.sealed) &&
         ledger::from_hex(event_id_hex, out.event_id);
}

}  // namespace sechex::projections::codec
