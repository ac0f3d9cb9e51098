// Big-endian encoding helpers for keys and record headers (private to the ledger).
#pragma once

#include <cstdint>
#include <string>

namespace sechex::ledger::detail {

inline void put_be32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}
inline void put_be64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}
inline void put_be32(std::uint8_t* out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}
inline void put_be64(std::uint8_t* out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
}
inline std::uint32_t get_be32(const void* p) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
         std::uint32_t{b[3]};
}
inline std::uint64_t get_be64(const void* p) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  return (std::uint64_t{get_be32(b)} << 32) | get_be32(b + 4);
}

}  // namespace sechex::ledger::detail
