// Feature flags and the user attributes they evaluate (000 FR-08; API.md admin rows
// "PUT /v1/admin/users/{id}/attributes" and "GET/PUT /v1/admin/flags/{name}").
//
// A flag is {enabled, regions?, segments?, users?, percentage?}. A user matches when the flag is
// enabled and every rule given matches: the user's region is in `regions`, the segment in
// `segments`, the id in `users`, and the user's bucket (the first 4 bytes of SHA-256(flag name ||
// 0x00 || user id), big-endian, modulo 100) is below `percentage`. The bucket is stable, so a
// rollout from 10 to 20 percent keeps the first 10 percent in. A rule naming regions never
// matches a user without a region (no silent default).
//
// Only the flags the product reads can be set (kKnownFlags); an unset flag is enabled for
// everyone (API.md: "until an admin sets it, it is enabled for everyone").
//
// The JSON forms (parse_flag / flag_json, parse_attributes / attributes_json) are the API's and
// the log's: FlagChanged.rules_json and the sealed UserAttributesSet hold them. Values: 1..64
// printable ASCII characters without space; lists at most 100 entries (the API's array limit);
// percentage 0..100.
//
// Pure functions, no I/O, no state: thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sechex::api::identity {

inline constexpr std::string_view kExclusiveModeFlag = "exclusive_mode";
inline constexpr std::array<std::string_view, 1> kKnownFlags = {kExclusiveModeFlag};
bool known_flag(std::string_view name);

struct Attributes {
  std::optional<std::string> region;
  std::optional<std::string> segment;
  friend bool operator==(const Attributes&, const Attributes&) = default;
};

struct FlagRules {
  bool enabled = true;
  std::optional<std::vector<std::string>> regions;
  std::optional<std::vector<std::string>> segments;
  std::optional<std::vector<std::string>> users;
  std::optional<std::uint32_t> percentage;
  friend bool operator==(const FlagRules&, const FlagRules&) = default;

  // Whether any rule needs the user's attributes (so a caller opens them only then).
  bool reads_attributes() const { return regions.has_value() || segments.has_value(); }
};

// A parse failure: which field and why, for a 400's message.
struct InvalidField {
  std::string field;
  std::string message;
};

// `enabled` is required; other members are optional; an unknown member is refused.
std::variant<FlagRules, InvalidField> parse_flag(const nlohmann::json& body);
nlohmann::json flag_json(const FlagRules& rules);
// Members region and segment, each a value or null (none); an unknown member is refused.
std::variant<Attributes, InvalidField> parse_attributes(const nlohmann::json& body);
nlohmann::json attributes_json(const Attributes& attributes);

// 0..99, stable for a flag and user.
std::uint32_t rollout_bucket(std::string_view flag, std::string_view user);
bool flag_matches(const FlagRules& rules, std::string_view flag, std::string_view user,
                  const Attributes& attributes);

}  // namespace sechex::api::identity
