// DPoP proofs (RFC 9449 §4.3), on the JOSE layers of jose.h.
#include "api/crypto/dpop.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "jose_internal.h"

namespace sechex::api::dpop {

using jose::base64url_decode;
using jose::base64url_encode;
using jose::EcPublicKey;
using jose::detail::bytes_of;
using jose::detail::kP1363Size;
using jose::detail::parse_object;
using jose::detail::string_of;

namespace {

constexpr std::array<std::string_view, 17> kReasonCodes = {
    "ok",          "too_large",     "malformed",    "bad_typ",      "alg_not_allowed", "bad_header",
    "bad_jwk",     "bad_signature", "bad_jti",      "htm_mismatch", "htu_mismatch",    "bad_iat",
    "iat_too_old", "iat_in_future", "ath_mismatch", "jkt_mismatch", "bad_nonce",
};
static_assert(kReasonCodes.size() == static_cast<std::size_t>(DpopErrc::bad_nonce) + 1);

class DpopCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sechex.dpop"; }
  std::string message(int code) const override {
    const auto i = static_cast<std::size_t>(code);
    return i < kReasonCodes.size() ? "DPoP proof refused: " + std::string(kReasonCodes[i])
                                   : "unknown DPoP error";
  }
};

bool same(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ledger::crypto::constant_time_equal(bytes_of(a), bytes_of(b));
}

// The claim `name` as a string, or nullopt when absent or not a string.
std::optional<std::string> string_claim(const nlohmann::json& j, const char* name) {
  const auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

}  // namespace

const std::error_category& dpop_category() noexcept {
  static const DpopCategory category;
  return category;
}

std::string_view reason_code(const std::error_code& ec) noexcept {
  if (ec.category() != dpop_category()) return "internal_error";
  const auto i = static_cast<std::size_t>(ec.value());
  return i < kReasonCodes.size() ? kReasonCodes[i] : "internal_error";
}

std::string ath_of(std::string_view access_token) {
  const auto hash = ledger::crypto::sha256(bytes_of(access_token));
  return base64url_encode(ledger::ByteView(hash.data(), hash.size()));
}

std::optional<std::string> normalize_htu(std::string_view url) {
  for (const char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return std::nullopt;
  }
  const auto colon = url.find("://");
  if (colon == std::string_view::npos) return std::nullopt;
  std::string scheme(url.substr(0, colon));
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "http" && scheme != "https") return std::nullopt;
  auto rest = url.substr(colon + 3);
  rest = rest.substr(0, rest.find_first_of("?#"));  // no query, no fragment
  const auto slash = rest.find('/');
  std::string authority(rest.substr(0, slash));
  const std::string path(slash == std::string_view::npos ? "/" : rest.substr(slash));
  if (authority.empty() || authority.find('@') != std::string::npos) return std::nullopt;
  for (auto& c : authority) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // host [":" port], the host a bracketed IPv6 literal or a name without ':' or brackets; the
  // port digits. Anything looser would not survive being normalised twice the same way (a
  // fuzzer found "https://:://x", whose "::" authority lost one ':' per pass).
  std::string host, port;
  bool has_port = false;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string::npos || close == 1 || authority.find('[', 1) < close) {
      return std::nullopt;
    }
    host = authority.substr(0, close + 1);
    const auto after = std::string_view(authority).substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      has_port = true;
      port = after.substr(1);
    }
  } else {
    const auto c = authority.find(':');
    host = authority.substr(0, c);
    if (c != std::string::npos) {
      has_port = true;
      port = authority.substr(c + 1);
    }
    if (host.empty() || host.find_first_of("[]") != std::string::npos) return std::nullopt;
  }
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  authority = host;
  const bool default_port =
      port.empty() || (scheme == "http" && port == "80") || (scheme == "https" && port == "443");
  if (has_port && !default_port) authority += ":" + port;
  return scheme + "://" + authority + path;
}

Result<VerifiedProof> verify_proof(std::string_view proof, const ExpectedProof& expected,
                                   const ProofRules& rules) {
  if (proof.size() > rules.max_size) return DpopErrc::too_large;
  const auto dot1 = proof.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : proof.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || proof.find('.', dot2 + 1) != std::string_view::npos) {
    return DpopErrc::malformed;
  }
  ledger::Bytes header_bytes, payload_bytes, signature;
  if (!base64url_decode(proof.substr(0, dot1), header_bytes) ||
      !base64url_decode(proof.substr(dot1 + 1, dot2 - dot1 - 1), payload_bytes) ||
      !base64url_decode(proof.substr(dot2 + 1), signature)) {
    return DpopErrc::malformed;
  }
  auto header = parse_object(string_of(header_bytes));
  auto claims = parse_object(string_of(payload_bytes));
  if (!header || !claims) return DpopErrc::malformed;
  const auto& h = header.value();
  const auto& c = claims.value();

  // Header (§4.3 steps 4-7).
  if (string_claim(h, "typ") != "dpop+jwt") return DpopErrc::bad_typ;
  if (string_claim(h, "alg") != "ES256") return DpopErrc::alg_not_allowed;
  for (const char* name : {"crit", "jku", "x5u", "x5c"}) {
    if (h.contains(name)) return DpopErrc::bad_header;
  }
  const auto jwk = h.find("jwk");
  if (jwk == h.end() || !jwk->is_object() || jwk->contains("d")) return DpopErrc::bad_jwk;
  auto key = EcPublicKey::from_jwk(*jwk);
  if (!key) return DpopErrc::bad_jwk;

  // Signature (§4.3 step 6), with the key the proof carries.
  if (signature.size() != kP1363Size ||
      !key.value().verify_p1363(bytes_of(proof.substr(0, dot2)), signature)) {
    return DpopErrc::bad_signature;
  }

  // Claims (§4.3 steps 8-11).
  VerifiedProof out;
  const auto jti = string_claim(c, "jti");
  if (!jti || jti->empty() || jti->size() > rules.max_jti) return DpopErrc::bad_jti;
  out.jti = *jti;
  if (string_claim(c, "htm") != expected.htm) return DpopErrc::htm_mismatch;
  const auto htu = string_claim(c, "htu");
  const auto normalised = htu ? normalize_htu(*htu) : std::nullopt;
  if (!normalised || *normalised != expected.htu) return DpopErrc::htu_mismatch;
  const auto iat = c.find("iat");
  if (iat == c.end() || !iat->is_number_integer()) return DpopErrc::bad_iat;
  if (iat->is_number_unsigned() &&
      iat->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
    return DpopErrc::bad_iat;
  }
  out.iat = iat->get<std::int64_t>();
  // The window is computed from the server's clock, never from `iat`: an iat near INT64_MIN or
  // INT64_MAX cannot overflow it.
  if (out.iat < expected.now_seconds - rules.max_age_seconds) return DpopErrc::iat_too_old;
  if (out.iat > expected.now_seconds + rules.max_future_seconds) return DpopErrc::iat_in_future;
  if (expected.access_token) {
    const auto ath = string_claim(c, "ath");
    if (!ath || !same(*ath, ath_of(*expected.access_token))) return DpopErrc::ath_mismatch;
  }
  out.jkt = key.value().thumbprint();
  if (expected.jkt && !same(out.jkt, *expected.jkt)) return DpopErrc::jkt_mismatch;
  if (const auto nonce = c.find("nonce"); nonce != c.end()) {
    if (!nonce->is_string() || nonce->get_ref<const std::string&>().size() > 128) {
      return DpopErrc::bad_nonce;
    }
    out.nonce = nonce->get<std::string>();
  }
  return out;
}

NonceSource::NonceSource(ledger::Bytes key, std::int64_t step_seconds)
    : step_(step_seconds > 0 ? step_seconds : 60) {
  // Keyed once: valid() and current() run for every signed request when nonces are on.
  if (auto k = ledger::crypto::HmacSha256Key::create(key)) key_ = std::move(k).value();
  OPENSSL_cleanse(key.data(), key.size());
}

std::string NonceSource::of_step(std::int64_t step) const {
  std::string input = "sechex-dpop-nonce";
  for (int i = 7; i >= 0; --i) input.push_back(static_cast<char>((step >> (8 * i)) & 0xff));
  if (!key_) return {};  // never a valid nonce: valid() refuses the empty string
  const auto mac = key_->mac(
      ledger::ByteView(reinterpret_cast<const std::uint8_t*>(input.data()), input.size()));
  if (!mac) return {};
  return base64url_encode(ledger::ByteView(mac.value().data(), mac.value().size()));
}

std::string NonceSource::current(std::int64_t now_seconds) const {
  return of_step(now_seconds / step_);
}

bool NonceSource::valid(std::string_view nonce, std::int64_t now_seconds) const {
  if (nonce.empty()) return false;
  const auto step = now_seconds / step_;
  bool ok = false;
  for (const auto s : {step, step - 1}) {
    const auto expected = of_step(s);
    ok |= !expected.empty() && same(nonce, expected);
  }
  return ok;
}

}  // namespace sechex::api::dpop
