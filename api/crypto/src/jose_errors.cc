// JoseErrc: its category and stable reason codes.
#include "jose_internal.h"

namespace sechex::api::jose {

using namespace detail;

namespace {

// ---- error category ----

constexpr std::array<std::string_view, 22> kReasonCodes = {
    "ok",
    "malformed",
    "too_large",
    "bad_base64",
    "bad_json",
    "duplicate_key",
    "alg_not_allowed",
    "missing_kid",
    "unknown_kid",
    "crit_not_supported",
    "embedded_key_rejected",
    "bad_typ",
    "bad_signature",
    "missing_claim",
    "bad_claim",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "wrong_issuer",
    "high_s_signature",
    "wrong_nonce",
    "wrong_authorized_party",
};
static_assert(kReasonCodes.size() ==
              static_cast<std::size_t>(JoseErrc::wrong_authorized_party) + 1);

class JoseCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sechex.jose"; }
  std::string message(int code) const override {
    switch (static_cast<JoseErrc>(code)) {
      case JoseErrc::ok:
        return "ok";
      case JoseErrc::malformed:
        return "token is not three dot-separated segments";
      case JoseErrc::too_large:
        return "token is too large";
      case JoseErrc::bad_base64:
        return "token segment is not strict base64url";
      case JoseErrc::bad_json:
        return "token header or payload is not an acceptable JSON object";
      case JoseErrc::duplicate_key:
        return "token header or payload repeats a JSON key";
      case JoseErrc::alg_not_allowed:
        return "token algorithm is not allowed";
      case JoseErrc::missing_kid:
        return "token header has no kid";
      case JoseErrc::unknown_kid:
        return "token kid names no known key";
      case JoseErrc::crit_not_supported:
        return "token header has crit";
      case JoseErrc::embedded_key_rejected:
        return "token header carries or points to a key";
      case JoseErrc::bad_typ:
        return "token typ is not the expected one";
      case JoseErrc::bad_signature:
        return "token signature does not verify";
      case JoseErrc::missing_claim:
        return "token lacks a required claim";
      case JoseErrc::bad_claim:
        return "token claim has the wrong type or value";
      case JoseErrc::expired:
        return "token has expired";
      case JoseErrc::not_yet_valid:
        return "token is not valid yet";
      case JoseErrc::wrong_audience:
        return "token is for another audience";
      case JoseErrc::wrong_issuer:
        return "token is from another issuer";
      case JoseErrc::high_s_signature:
        return "token signature is not in its canonical low-S form";
      case JoseErrc::wrong_nonce:
        return "token nonce is not the one this sign-in sent";
      case JoseErrc::wrong_authorized_party:
        return "token was issued to another client (azp)";
    }
    return "unknown token error";
  }
};

}  // namespace

// ---- errors ----

const std::error_category& jose_category() noexcept {
  static const JoseCategory category;
  return category;
}

std::string_view reason_code(const std::error_code& ec) noexcept {
  if (ec.category() != jose_category()) return "internal_error";
  const auto i = static_cast<std::size_t>(ec.value());
  return i < kReasonCodes.size() ? kReasonCodes[i] : "internal_error";
}

}  // namespace sechex::api::jose
