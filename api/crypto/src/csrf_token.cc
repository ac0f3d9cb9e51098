#include "api/crypto/csrf_token.h"

#include "api/crypto/jose.h"
#include "ledger/crypto.h"

namespace sechex::api {
namespace {

std::string be64(std::int64_t v) {
  std::string s(8, '\0');
  const auto u = static_cast<std::uint64_t>(v);
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(u >> (56 - 8 * i));
  return s;
}

}  // namespace

std::string CsrfTokens::mac(std::string_view session_id, std::int64_t expiry) const {
  return lookup_.token("csrf", std::string(session_id) + '\0' + be64(expiry));
}

std::string CsrfTokens::issue(std::string_view session_id, TimePoint now) const {
  const auto expiry = micros_of(now + kCsrfTokenLifetime);
  return jose::base64url_encode(std::string_view(be64(expiry) + mac(session_id, expiry)));
}

bool CsrfTokens::valid(std::string_view token, std::string_view session_id, TimePoint now) const {
  if (token.size() > 128 || session_id.empty()) return false;
  ledger::Bytes b;
  if (!jose::base64url_decode(token, b) || b.size() != 40) return false;
  std::uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | b[i];
  const auto expiry = static_cast<std::int64_t>(u);
  if (expiry <= micros_of(now)) return false;
  const auto expected = mac(session_id, expiry);
  return ledger::crypto::constant_time_equal(
      ledger::ByteView(b.data() + 8, 32),
      ledger::ByteView(reinterpret_cast<const std::uint8_t*>(expected.data()), expected.size()));
}

}  // namespace sechex::api
