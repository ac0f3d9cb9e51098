// base64url (RFC 4648 §5), strict: one spelling per byte string.
#include "jose_internal.h"

namespace sechex::api::jose {

using namespace detail;

// ---- base64url ----

std::string base64url_encode(ByteView data) {
  std::string s = crypto::base64_encode(data);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return s;
}

std::string base64url_encode(std::string_view data) { return base64url_encode(bytes_of(data)); }

bool base64url_decode(std::string_view text, Bytes& out) {
  // Translated to the padded standard alphabet and handed to the ledger's strict decoder, which
  // already refuses non-zero trailing bits; characters of the other alphabet and '=' are refused
  // here first so that each byte string has exactly one accepted spelling.
  if (text.size() % 4 == 1) return false;
  std::string standard;
  standard.reserve(text.size() + 3);
  for (const char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      standard.push_back(c);
    } else if (c == '-') {
      standard.push_back('+');
    } else if (c == '_') {
      standard.push_back('/');
    } else {
      return false;
    }
  }
  while (standard.size() % 4 != 0) standard.push_back('=');
  return crypto::base64_decode(standard, out);
}

}  // namespace sechex::api::jose
