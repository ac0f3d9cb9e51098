// WebAuthn registration data: client data JSON, attestation object and authenticator data.
#include "api/crypto/webauthn.h"

#include <cbor.h>

#include <array>
#include <limits>
#include <memory>

#include "api/json/json_input.h"
#include "ledger/crypto.h"
#include "webauthn_internal.h"

namespace sechex::api::webauthn {

namespace {

constexpr std::array<std::string_view, 7> kReasonCodes = {
    "ok",
    "too_large",
    "bad_cbor",
    "bad_attestation",
    "bad_auth_data",
    "bad_credential_key",
    "bad_client_data",
};
static_assert(kReasonCodes.size() == static_cast<std::size_t>(WebAuthnErrc::bad_client_data) + 1);

class WebAuthnCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sechex.webauthn"; }
  std::string message(int code) const override {
    const auto i = static_cast<std::size_t>(code);
    return i < kReasonCodes.size() ? "WebAuthn data refused: " + std::string(kReasonCodes[i])
                                   : "unknown WebAuthn error";
  }
};

// The size of the one CBOR item at the front of `data`, walking its headers only, or nullopt
// when it is malformed, indefinite-length (CTAP2 canonical CBOR has none), nested deeper than
// kMaxDepth, or declares more elements or bytes than `data` holds. libcbor allocates what a
// header declares before reading it: an array header claiming 2^30 elements would cost gigabytes
// for a nine-byte input, so nothing reaches cbor_load without this check.
constexpr int kMaxDepth = 16;
std::optional<std::size_t> bounded_item(ledger::ByteView data, int depth) {
  if (data.empty() || depth > kMaxDepth) return std::nullopt;
  const auto major = data[0] >> 5;
  const auto info = data[0] & 0x1f;
  std::size_t header = 1;
  std::uint64_t value = info;
  if (info >= 24 && info <= 27) {
    const std::size_t extra = std::size_t{1} << (info - 24);
    if (data.size() < 1 + extra) return std::nullopt;
    value = 0;
    for (std::size_t i = 0; i < extra; ++i) value = (value << 8) | data[1 + i];
    header += extra;
  } else if (info > 27) {
    return std::nullopt;  // reserved, or indefinite length / break
  }
  const auto remaining = data.size() - header;
  switch (major) {
    case 0:
    case 1:
    case 7:
      return header;
    case 2:
    case 3:
      if (value > remaining) return std::nullopt;
      return header + static_cast<std::size_t>(value);
    case 6: {
      const auto inner = bounded_item(data.subspan(header), depth + 1);
      if (!inner) return std::nullopt;
      return header + *inner;
    }
    default: {  // 4 array, 5 map: every element takes at least one byte
      const auto elements = major == 5 ? value * 2 : value;
      if (value > remaining || elements > remaining) return std::nullopt;
      std::size_t at = header;
      for (std::uint64_t i = 0; i < elements; ++i) {
        const auto inner = bounded_item(data.subspan(at), depth + 1);
        if (!inner) return std::nullopt;
        at += *inner;
      }
      return at;
    }
  }
}

}  // namespace

namespace detail {

// One CBOR item from the front of `data`, and how many bytes it took; nullptr when malformed.
Item load(ledger::ByteView data, std::size_t& read) {
  const auto size = bounded_item(data, 0);
  if (!size) return nullptr;
  data = data.first(*size);
  cbor_load_result result{};
  Item item(cbor_load(data.data(), data.size(), &result));
  if (!item || result.error.code != CBOR_ERR_NONE) return nullptr;
  read = result.read;
  return item;
}

// Text and byte strings and maps must be of definite length (CTAP2 canonical encoding); their
// handles are null otherwise.
std::optional<std::string> text_of(const cbor_item_t* item) {
  if (!cbor_isa_string(item) || !cbor_string_is_definite(item)) return std::nullopt;
  const auto* p = cbor_string_handle(item);
  return std::string(reinterpret_cast<const char*>(p), cbor_string_length(item));
}

std::optional<ledger::Bytes> bytes_of(const cbor_item_t* item) {
  if (!cbor_isa_bytestring(item) || !cbor_bytestring_is_definite(item)) return std::nullopt;
  const auto* p = cbor_bytestring_handle(item);
  return ledger::Bytes(p, p + cbor_bytestring_length(item));
}

std::optional<std::int64_t> int_of(const cbor_item_t* item) {
  if (!cbor_isa_uint(item) && !cbor_isa_negint(item)) return std::nullopt;
  const auto n = cbor_get_int(item);
  if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
  const auto v = static_cast<std::int64_t>(n);
  return cbor_isa_uint(item) ? v : -1 - v;
}

bool is_map(const cbor_item_t* item) { return cbor_isa_map(item) && cbor_map_is_definite(item); }

// The value under text key `name` of a map, or null.
const cbor_item_t* at(const cbor_item_t* map, std::string_view name) {
  const auto* pairs = cbor_map_handle(map);
  for (std::size_t i = 0; i < cbor_map_size(map); ++i) {
    if (text_of(pairs[i].key) == name) return pairs[i].value;
  }
  return nullptr;
}

// The value under integer key `label` of a map (COSE), or null.
const cbor_item_t* at(const cbor_item_t* map, std::int64_t label) {
  const auto* pairs = cbor_map_handle(map);
  for (std::size_t i = 0; i < cbor_map_size(map); ++i) {
    if (int_of(pairs[i].key) == label) return pairs[i].value;
  }
  return nullptr;
}

ledger::Bytes encode(const cbor_item_t* item) {
  unsigned char* buffer = nullptr;
  std::size_t size = 0;
  const auto written = cbor_serialize_alloc(item, &buffer, &size);
  ledger::Bytes out(buffer, buffer + written);
  std::free(buffer);  // NOLINT(cppcoreguidelines-no-malloc): libcbor allocated it with malloc
  return out;
}

}  // namespace detail

namespace {

using namespace detail;

// COSE_Key (RFC 9053 §7.1): kty 1, alg 3, crv -1, x -2, y -3.
Result<CredentialKey> parse_cose_key(const cbor_item_t* item, ledger::ByteView encoded) {
  if (!is_map(item)) return WebAuthnErrc::bad_credential_key;
  CredentialKey key;
  const auto kty = at(item, std::int64_t{1});
  const auto alg = at(item, std::int64_t{3});
  if (kty == nullptr || alg == nullptr || !int_of(kty) || !int_of(alg)) {
    return WebAuthnErrc::bad_credential_key;
  }
  key.kty = *int_of(kty);
  key.alg = *int_of(alg);
  if (const auto* crv = at(item, std::int64_t{-1})) key.crv = int_of(crv);
  key.cose.assign(encoded.begin(), encoded.end());
  if (key.kty == 2 && key.alg == -7 && key.crv == 1) {
    const auto* x = at(item, std::int64_t{-2});
    const auto* y = at(item, std::int64_t{-3});
    const auto xb = x != nullptr ? bytes_of(x) : std::nullopt;
    const auto yb = y != nullptr ? bytes_of(y) : std::nullopt;
    if (xb && yb) {
      if (auto pub = jose::EcPublicKey::from_coordinates(*xb, *yb))
        key.es256 = std::move(pub).value();
    }
  }
  return key;
}

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

}  // namespace

const std::error_category& webauthn_category() noexcept {
  static const WebAuthnCategory category;
  return category;
}

std::string_view reason_code(const std::error_code& ec) noexcept {
  if (ec.category() == attestation_category()) return detail::attestation_reason(ec.value());
  if (ec.category() != webauthn_category()) return "internal_error";
  const auto i = static_cast<std::size_t>(ec.value());
  return i < kReasonCodes.size() ? kReasonCodes[i] : "internal_error";
}

Result<ClientData> parse_client_data(std::string_view json) {
  if (json.size() > kMaxClientData) return WebAuthnErrc::too_large;
  auto parsed = parse_json_input(json);
  if (!parsed || !parsed.value().is_object()) return WebAuthnErrc::bad_client_data;
  const auto& j = parsed.value();
  const auto text = [&](const char* name) -> std::optional<std::string> {
    const auto it = j.find(name);
    if (it == j.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  ClientData out;
  auto type = text("type");
  auto challenge = text("challenge");
  auto origin = text("origin");
  if (!type || !challenge || !origin) return WebAuthnErrc::bad_client_data;
  out.type = std::move(*type);
  out.challenge = std::move(*challenge);
  out.origin = std::move(*origin);
  if (const auto it = j.find("crossOrigin"); it != j.end()) {
    if (!it->is_boolean()) return WebAuthnErrc::bad_client_data;
    out.cross_origin = it->get<bool>();
  }
  if (const auto it = j.find("topOrigin"); it != j.end()) {
    if (!it->is_string()) return WebAuthnErrc::bad_client_data;
    out.top_origin = it->get<std::string>();
  }
  return out;
}

Result<AuthenticatorData> parse_authenticator_data(ledger::ByteView data) {
  constexpr std::size_t kFixed = 32 + 1 + 4;
  if (data.size() < kFixed) return WebAuthnErrc::bad_auth_data;
  AuthenticatorData out;
  std::copy_n(data.data(), 32, out.rp_id_hash.begin());
  out.flags = data[32];
  out.sign_count = be32(data.data() + 33);
  std::size_t at_byte = kFixed;
  if (out.has(kAttestedCredential)) {
    if (data.size() - at_byte < 16 + 2) return WebAuthnErrc::bad_auth_data;
    AttestedCredential cred;
    std::copy_n(data.data() + at_byte, 16, cred.aaguid.begin());
    at_byte += 16;
    const std::size_t id_size = (std::size_t{data[at_byte]} << 8) | data[at_byte + 1];
    at_byte += 2;
    if (id_size > kMaxCredentialId || data.size() - at_byte < id_size) {
      return WebAuthnErrc::bad_auth_data;
    }
    cred.id.assign(data.data() + at_byte, data.data() + at_byte + id_size);
    at_byte += id_size;
    std::size_t read = 0;
    const auto rest = data.subspan(at_byte);
    auto key_item = load(rest, read);
    if (!key_item) return WebAuthnErrc::bad_auth_data;
    SECHEX_TRY(cred.key, parse_cose_key(key_item.get(), rest.first(read)));
    at_byte += read;
    out.credential = std::move(cred);
  }
  if (out.has(kExtensions)) {
    std::size_t read = 0;
    auto extensions = load(data.subspan(at_byte), read);
    if (!extensions || !is_map(extensions.get())) return WebAuthnErrc::bad_auth_data;
    at_byte += read;
  }
  if (at_byte != data.size()) return WebAuthnErrc::bad_auth_data;  // nothing may follow
  return out;
}

Result<AttestationObject> parse_attestation_object(ledger::ByteView cbor) {
  if (cbor.size() > kMaxAttestationObject) return WebAuthnErrc::too_large;
  std::size_t read = 0;
  auto item = load(cbor, read);
  if (!item || read != cbor.size()) return WebAuthnErrc::bad_cbor;
  if (!is_map(item.get())) return WebAuthnErrc::bad_attestation;
  const auto* fmt = at(item.get(), "fmt");
  const auto* stmt = at(item.get(), "attStmt");
  const auto* auth = at(item.get(), "authData");
  if (fmt == nullptr || stmt == nullptr || auth == nullptr || !is_map(stmt)) {
    return WebAuthnErrc::bad_attestation;
  }
  AttestationObject out;
  auto fmt_text = text_of(fmt);
  auto auth_bytes = bytes_of(auth);
  if (!fmt_text || !auth_bytes) return WebAuthnErrc::bad_attestation;
  out.fmt = std::move(*fmt_text);
  out.auth_data = std::move(*auth_bytes);
  out.att_stmt = encode(stmt);
  SECHEX_TRY(out.parsed, parse_authenticator_data(out.auth_data));
  return out;
}

}  // namespace sechex::api::webauthn
