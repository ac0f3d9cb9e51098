// Strong identifiers used throughout the ledger, so a partition can never be passed where a
// sequence number is expected.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sechex::ledger {

struct Partition {
  std::uint32_t value = 0;
  auto operator<=>(const Partition&) const = default;
};

// Position of a record inside its partition: 0, 1, 2, ... with no gaps.
struct Seq {
  std::uint64_t value = 0;
  auto operator<=>(const Seq&) const = default;
};

struct Position {
  Partition partition;
  Seq seq;
  auto operator<=>(const Position&) const = default;
};

using Hash = std::array<std::uint8_t, 32>;
using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string to_hex(ByteView bytes);
// Returns false when `hex` is not an even-length string of hex digits.
bool from_hex(std::string_view hex, Bytes& out);

}  // namespace sechex::ledger
