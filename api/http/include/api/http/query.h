// Query strings (API.md: filters of the audit routes): percent-escapes and '+' decoded.
//
// Thread-safety: pure function.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace sechex::api {

// nullopt for a malformed escape, an empty name or a repeated parameter (ambiguous filters are
// refused, not guessed).
std::optional<std::map<std::string, std::string>> parse_query(std::string_view query);

}  // namespace sechex::api
