#include "api/identity/flags.h"

#include <algorithm>

#include "ledger/crypto.h"

namespace sechex::api::identity {
namespace {

constexpr std::size_t kMaxValue = 64;
constexpr std::size_t kMaxListEntries = 100;  // the API's array limit (identity_support.h)

bool valid_value(const std::string& v) {
  return !v.empty() && v.size() <= kMaxValue &&
         std::all_of(v.begin(), v.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

const char* kValueRule = "1 to 64 printable ASCII characters without spaces";

std::optional<InvalidField> read_list(const nlohmann::json& body, const char* name,
                                      std::optional<std::vector<std::string>>& out) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_array() || it->size() > kMaxListEntries) {
    return InvalidField{name, "must be an array of at most 100 values"};
  }
  std::vector<std::string> values;
  for (const auto& v : *it) {
    if (!v.is_string() || !valid_value(v.get<std::string>())) {
      return InvalidField{name, std::string("each value must be ") + kValueRule};
    }
    values.push_back(v.get<std::string>());
  }
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  out = std::move(values);
  return std::nullopt;
}

std::optional<InvalidField> only_members(const nlohmann::json& body,
                                         std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : body.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return InvalidField{key, "is not a member of this object"};
    }
  }
  return std::nullopt;
}

bool listed(const std::optional<std::vector<std::string>>& list,
            const std::optional<std::string>& value) {
  return !list || (value && std::binary_search(list->begin(), list->end(), *value));
}

}  // namespace

bool known_flag(std::string_view name) {
  return std::find(kKnownFlags.begin(), kKnownFlags.end(), name) != kKnownFlags.end();
}

std::variant<FlagRules, InvalidField> parse_flag(const nlohmann::json& body) {
  if (!body.is_object()) return InvalidField{"body", "must be a JSON object"};
  if (auto bad = only_members(body, {"enabled", "regions", "segments", "users", "percentage"})) {
    return *bad;
  }
  FlagRules out;
  const auto enabled = body.find("enabled");
  if (enabled == body.end() || !enabled->is_boolean()) {
    return InvalidField{"enabled", "is required: true or false"};
  }
  out.enabled = enabled->get<bool>();
  for (auto [name, list] : {std::pair{"regions", &out.regions},
                            std::pair{"segments", &out.segments}, std::pair{"users", &out.users}}) {
    if (auto bad = read_list(body, name, *list)) return *bad;
  }
  if (const auto p = body.find("percentage"); p != body.end() && !p->is_null()) {
    if (!p->is_number_integer() || p->get<std::int64_t>() < 0 || p->get<std::int64_t>() > 100) {
      return InvalidField{"percentage", "must be an integer from 0 to 100"};
    }
    out.percentage = static_cast<std::uint32_t>(p->get<std::int64_t>());
  }
  return out;
}

nlohmann::json flag_json(const FlagRules& rules) {
  nlohmann::json out{{"enabled", rules.enabled}};
  if (rules.regions) out["regions"] = *rules.regions;
  if (rules.segments) out["segments"] = *rules.segments;
  if (rules.users) out["users"] = *rules.users;
  if (rules.percentage) out["percentage"] = *rules.percentage;
  return out;
}

std::variant<Attributes, InvalidField> parse_attributes(const nlohmann::json& body) {
  if (!body.is_object()) return InvalidField{"body", "must be a JSON object"};
  if (auto bad = only_members(body, {"region", "segment"})) return *bad;
  Attributes out;
  for (auto [name, field] :
       {std::pair{"region", &out.region}, std::pair{"segment", &out.segment}}) {
    const auto it = body.find(name);
    if (it == body.end() || it->is_null()) continue;
    if (!it->is_string() || !valid_value(it->get<std::string>())) {
      return InvalidField{name, std::string("must be null or ") + kValueRule};
    }
    *field = it->get<std::string>();
  }
  return out;
}

nlohmann::json attributes_json(const Attributes& attributes) {
  return nlohmann::json{
      {"region", attributes.region ? nlohmann::json(*attributes.region) : nullptr},
      {"segment", attributes.segment ? nlohmann::json(*attributes.segment) : nullptr}};
}

std::uint32_t rollout_bucket(std::string_view flag, std::string_view user) {
  std::string input(flag);
  input.push_back('\0');
  input.append(user);
  const auto h = ledger::crypto::sha256(
      ledger::ByteView(reinterpret_cast<const std::uint8_t*>(input.data()), input.size()));
  const std::uint32_t first = (std::uint32_t{h[0]} << 24) | (std::uint32_t{h[1]} << 16) |
                              (std::uint32_t{h[2]} << 8) | std::uint32_t{h[3]};
  return first % 100;
}

bool flag_matches(const FlagRules& rules, std::string_view flag, std::string_view user,
                  const Attributes& attributes) {
  if (!rules.enabled) return false;
  if (!listed(rules.regions, attributes.region)) return false;
  if (!listed(rules.segments, attributes.segment)) return false;
  if (!listed(rules.users, std::string(user))) return false;
  return !rules.percentage || rollout_bucket(flag, user) < *rules.percentage;
}

}  // namespace sechex::api::identity
