#include "api/crypto/csrf_token.h"

#include "api/crypto/jose.h"
#include "ledger/crypto.h"

namespace sechex::api {
namespace {

constexpr std::size_t kNonceBytes = 16;
constexpr std::size_t kTokenBytes = 8 + kNonceBytes + 32;

std::string be64(std::int64_t v) {
  std::string s(8, '\0');
  const auto u = static_cast<std::uint64_t>(v);
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(u >> (56 - 8 * i));
  return s;
}

// Expiry and nonce of a token of the right shape, or false.
bool parse(std::string_view token, ledger::Bytes& bytes, std::int64_t& expiry) {
  if (token.size() > 128 || !jose::base64url_decode(token, bytes) || bytes.size() != kTokenBytes) {
    return false;
  }
  std::uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | bytes[i];
  expiry = static_cast<std::int64_t>(u);
  return true;
}

std::string digest_of(std::string_view token) {
  const auto h = ledger::crypto::sha256(
      ledger::ByteView(reinterpret_cast<const std::uint8_t*>(token.data()), token.size()));
  return {reinterpret_cast<const char*>(h.data()), h.size()};
}

}  // namespace

std::string CsrfTokens::mac(std::string_view session_id, std::int64_t expiry,
                            std::string_view nonce) const {
  return lookup_.token("csrf", std::string(session_id) + '\0' + be64(expiry) + std::string(nonce));
}

Result<std::string> CsrfTokens::issue(std::string_view session_id, TimePoint now) const {
  const auto expiry = micros_of(now + kCsrfTokenLifetime);
  SECHEX_TRY(const auto random, ledger::crypto::random_bytes(kNonceBytes));
  const std::string nonce(random.begin(), random.end());
  return jose::base64url_encode(
      std::string_view(be64(expiry) + nonce + mac(session_id, expiry, nonce)));
}

bool CsrfTokens::valid(std::string_view token, std::string_view session_id, TimePoint now) const {
  if (session_id.empty()) return false;
  ledger::Bytes b;
  std::int64_t expiry = 0;
  if (!parse(token, b, expiry) || expiry <= micros_of(now)) return false;
  {
    std::lock_guard lock(mu_);
    if (expiry - kCsrfTokenLifetime.count() < micros_of(not_before_)) return false;
  }
  const std::string_view nonce(reinterpret_cast<const char*>(b.data() + 8), kNonceBytes);
  const auto expected = mac(session_id, expiry, nonce);
  return ledger::crypto::constant_time_equal(
      ledger::ByteView(b.data() + 8 + kNonceBytes, 32),
      ledger::ByteView(reinterpret_cast<const std::uint8_t*>(expected.data()), expected.size()));
}

bool CsrfTokens::spend(std::string_view token, std::string_view session_id, TimePoint now) {
  if (!valid(token, session_id, now)) return false;
  ledger::Bytes b;
  std::int64_t expiry = 0;
  parse(token, b, expiry);
  auto key = digest_of(token);
  std::lock_guard lock(mu_);
  // Checked again under the lock: an eviction may have moved not_before since valid().
  if (expiry - kCsrfTokenLifetime.count() < micros_of(not_before_)) return false;
  if (!spent_.emplace(key, expiry).second) return false;
  order_.push_back(std::move(key));
  const auto now_micros = micros_of(now);
  while (!order_.empty() &&
         (spent_.size() > capacity_ || spent_.at(order_.front()) <= now_micros)) {
    const auto it = spent_.find(order_.front());
    if (it->second > now_micros) {
      // Still live: forgetting it would let it be replayed, so refuse everything issued up to it.
      const auto issued = time_from_micros(it->second) - kCsrfTokenLifetime;
      if (issued + Micros{1} > not_before_) not_before_ = issued + Micros{1};
    }
    spent_.erase(it);
    order_.pop_front();
  }
  return true;
}

std::size_t CsrfTokens::spent_count() const {
  std::lock_guard lock(mu_);
  return spent_.size();
}

}  // namespace sechex::api
