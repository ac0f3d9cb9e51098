// Localised error messages (API.md: `message` is localised by Accept-Language, at least `en` and
// `zh-CN`). Codes, details and field names never change with the language; only the human text
// does, so clients must branch on `code`, never on `message`.
//
// The server applies localise_error() to every error envelope it sends, after the handler ran, so
// handlers write English and need not know the request's language.
//
// Thread-safety: pure functions over constant tables.
#pragma once

#include <string_view>

#include "api/http/server.h"

namespace sechex::api {

// "zh-CN" or "en": the supported language the client ranks highest (RFC 9110 §12.5.4 q-values;
// "zh", "zh-CN", "zh-Hans" and "zh-Hans-CN" all mean zh-CN; "*" and anything unknown mean en;
// q=0 excludes). Malformed headers fall back to en.
std::string_view negotiate_language(std::string_view accept_language);

// The message for `code` in `language`, or empty when the catalogue has none (then the
// handler's English text stays).
std::string_view localized_message(std::string_view code, std::string_view language);

// For a JSON error envelope and a language other than en: replaces error.message when the
// catalogue knows the code and sets Content-Language. Other responses are left alone.
void localise_error(Response& response, std::string_view language);

}  // namespace sechex::api
