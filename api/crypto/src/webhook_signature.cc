#include "api/crypto/webhook_signature.h"

#include <charconv>

#include "ledger/crypto.h"

namespace sechex::api::webhooks {

namespace {

constexpr std::string_view kPrefix = "whsec_";
constexpr std::size_t kMinKey = 24;  // the reference vector's secret is 24 bytes
constexpr std::size_t kMaxKey = 64;
constexpr std::size_t kMaxId = 256;
constexpr std::size_t kMaxTimestampDigits = 12;  // beyond year 33000: a hostile value

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "webhook_signature"; }
  std::string message(int c) const override {
    switch (static_cast<SignatureErrc>(c)) {
      case SignatureErrc::bad_secret:
        return "the webhook secret is not whsec_ followed by base64 of 24 to 64 bytes";
      case SignatureErrc::missing_header:
        return "webhook-id, webhook-timestamp and webhook-signature are required";
      case SignatureErrc::bad_id:
        return "webhook-id must be 1 to 256 printable ASCII characters";
      case SignatureErrc::bad_timestamp:
        return "webhook-timestamp must be Unix seconds";
      case SignatureErrc::stale_timestamp:
        return "webhook-timestamp is too far from the server's clock";
      case SignatureErrc::no_valid_signature:
        return "no webhook-signature matches";
    }
    return "webhook signature error";
  }
};

ledger::ByteView view(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

Result<ledger::Hash> mac(const Secret& secret, std::string_view id, std::string_view timestamp,
                         std::string_view body) {
  std::string signed_content;
  signed_content.reserve(id.size() + timestamp.size() + body.size() + 2);
  signed_content.append(id).append(".").append(timestamp).append(".").append(body);
  return ledger::crypto::hmac_sha256(secret.key(), view(signed_content));
}

}  // namespace

std::error_code make_error_code(SignatureErrc e) {
  static const Category c;
  return {static_cast<int>(e), c};
}

std::string_view reason(SignatureErrc e) {
  switch (e) {
    case SignatureErrc::bad_secret:
      return "bad_secret";
    case SignatureErrc::missing_header:
      return "missing_header";
    case SignatureErrc::bad_id:
      return "bad_id";
    case SignatureErrc::bad_timestamp:
      return "bad_timestamp";
    case SignatureErrc::stale_timestamp:
      return "stale_timestamp";
    case SignatureErrc::no_valid_signature:
      return "no_valid_signature";
  }
  return "invalid_signature";
}

Result<Secret> Secret::parse(std::string_view whsec) {
  if (!whsec.starts_with(kPrefix)) return SignatureErrc::bad_secret;
  ledger::Bytes key;
  if (!ledger::crypto::base64_decode(whsec.substr(kPrefix.size()), key) || key.size() < kMinKey ||
      key.size() > kMaxKey) {
    return SignatureErrc::bad_secret;
  }
  return Secret(std::move(key));
}

Result<Secret> Secret::generate() {
  SECHEX_TRY(auto key, ledger::crypto::random_bytes(32));
  return Secret(std::move(key));
}

std::string Secret::text() const {
  return std::string(kPrefix) + ledger::crypto::base64_encode(key_);
}

Result<std::string> sign(const Secret& secret, std::string_view id, std::int64_t timestamp,
                         std::string_view body) {
  SECHEX_TRY(const auto h, mac(secret, id, std::to_string(timestamp), body));
  return "v1," + ledger::crypto::base64_encode(h);
}

Result<void> verify(const Secret& secret, const Message& m, std::int64_t now_seconds,
                    std::chrono::seconds tolerance) {
  if (m.id.empty() || m.timestamp.empty() || m.signature.empty()) {
    return SignatureErrc::missing_header;
  }
  if (m.id.size() > kMaxId) return SignatureErrc::bad_id;
  for (const char c : m.id) {
    if (c < 0x21 || c > 0x7e) return SignatureErrc::bad_id;
  }
  if (m.timestamp.size() > kMaxTimestampDigits) return SignatureErrc::bad_timestamp;
  std::int64_t ts = 0;
  const auto* end = m.timestamp.data() + m.timestamp.size();
  const auto parsed = std::from_chars(m.timestamp.data(), end, ts);
  if (parsed.ec != std::errc() || parsed.ptr != end || m.timestamp.front() == '-' ||
      m.timestamp.front() == '+') {
    return SignatureErrc::bad_timestamp;
  }
  const auto drift = ts > now_seconds ? ts - now_seconds : now_seconds - ts;
  if (drift > tolerance.count()) return SignatureErrc::stale_timestamp;
  SECHEX_TRY(const auto expected, mac(secret, m.id, m.timestamp, m.body));
  // Every candidate is compared (no early exit on the first match): the time taken says nothing
  // about which signature, if any, matched.
  bool matched = false;
  std::string_view rest = m.signature;
  while (!rest.empty()) {
    const auto space = rest.find(' ');
    const auto one = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
    if (!one.starts_with("v1,")) continue;
    ledger::Bytes candidate;
    if (!ledger::crypto::base64_decode(one.substr(3), candidate)) continue;
    matched = ledger::crypto::constant_time_equal(candidate, expected) || matched;
  }
  if (!matched) return SignatureErrc::no_valid_signature;
  return boost::outcome_v2::success();
}

}  // namespace sechex::api::webhooks
