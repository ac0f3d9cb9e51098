// Text that is safe to seal, chain and render: well-formed UTF-8.
//
// Why this exists: JSON text must be UTF-8 (RFC 8259 section 8.1), and nlohmann::json::dump()
// throws on a string that is not. A header value (User-Agent, a path) may hold any bytes; once
// such bytes were sealed into the chain, every renderer of that record failed, and with it the
// whole audit page, export or GDPR answer around it (issue 12). So text is made valid where it
// enters (to_utf8), and every renderer repairs what is already stored (repair_utf8, json_text)
// instead of failing.
//
// Well-formed means RFC 3629 / Unicode section 3.9: no overlong forms, no surrogates (U+D800..
// U+DFFF), nothing above U+10FFFF. Repairs replace each maximal ill-formed subpart with one
// U+FFFD (Unicode "substitution of maximal subparts", also what WHATWG decoders do), so the
// result is deterministic and the replacement marks the place.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace sechex::ledger {

inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

bool is_utf8(std::string_view s);

// `s` as well-formed UTF-8 of at most `max_bytes` bytes: ill-formed subparts replaced by U+FFFD,
// then cut at the last character boundary that fits (a character is never split).
std::string to_utf8(std::string_view s, std::size_t max_bytes = std::string_view::npos);

// Repairs, in place, every string value and object key under `j` that is not well-formed UTF-8.
// Returns the JSON Pointers (RFC 6901) of what it repaired, in document order, naming the
// repaired key for a repaired key; empty when everything was already valid.
std::vector<std::string> repair_utf8(nlohmann::json& j);

// j.dump(indent) that never throws on ill-formed UTF-8 (it is replaced by U+FFFD). For output
// that may carry stored or client-supplied strings.
std::string json_text(const nlohmann::json& j, int indent = -1);

}  // namespace sechex::ledger
