#include "api/crypto/jose.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <utility>

#include "api/json/json_input.h"
#include "ledger/crypto.h"
#include "ledger/openssl_util.h"

namespace sechex::api::jose {
namespace {

using ledger::Errc;
using ledger::Hash;
namespace crypto = ledger::crypto;

constexpr std::size_t kCoordSize = 32;
constexpr std::size_t kSec1Size = 1 + 2 * kCoordSize;
constexpr std::size_t kP1363Size = 2 * kCoordSize;
// SEQUENCE { INTEGER r, INTEGER s } with 33-byte integers (leading zero) is the longest DER
// encoding for P-256; anything longer cannot be canonical.
constexpr std::size_t kMaxDerSize = 72;
constexpr std::size_t kJtiBytes = 16;
// The issuer stays within what the default verifier accepts, so it never mints a token that
// every verifier would then refuse.
constexpr std::size_t kMaxIssuedTokenSize = 8192;
constexpr std::size_t kMaxRoles = 100;
constexpr std::int64_t kMicrosPerSecond = 1'000'000;

constexpr char kIndexFile[] = "jwt-es256.keys";
constexpr char kLockFile[] = "jwt-es256.lock";
constexpr char kIndexMagic[] = "sechex-jwt-keys/v1";
// A ring only ever holds the current key plus those retired within one token lifetime; an index
// much larger than that was not written by us.
constexpr std::size_t kMaxIndexSize = 64 * 1024;

using ledger::ossl::Bio;
using ledger::ossl::Bn;
using ledger::ossl::EcdsaSig;
using ledger::ossl::ErrorQueueScope;
using ledger::ossl::File;
using ledger::ossl::MdCtx;
using ledger::ossl::Pkey;
using ledger::ossl::PkeyCtx;

std::shared_ptr<evp_pkey_st> share(EVP_PKEY* pkey) {
  if (pkey == nullptr) return nullptr;
  return std::shared_ptr<evp_pkey_st>(pkey, EVP_PKEY_free);
}

ByteView bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string string_of(const Bytes& b) { return {b.begin(), b.end()}; }

// Whole seconds since the epoch, rounding towards the past so a token is never considered
// expired late.
std::int64_t seconds_of(std::int64_t micros) {
  std::int64_t s = micros / kMicrosPerSecond;
  if (micros % kMicrosPerSecond < 0) --s;
  return s;
}

std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  if (b > 0 && a > std::numeric_limits<std::int64_t>::max() - b) {
    return std::numeric_limits<std::int64_t>::max();
  }
  if (b < 0 && a < std::numeric_limits<std::int64_t>::min() - b) {
    return std::numeric_limits<std::int64_t>::min();
  }
  return a + b;
}

bool digest_verify(EVP_PKEY* pkey, ByteView message, const std::uint8_t* der, std::size_t size) {
  MdCtx ctx(EVP_MD_CTX_new());
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey) == 1 &&
         EVP_DigestVerify(ctx.get(), der, size, message.data(), message.size()) == 1;
}

// The order n of P-256 (SEC 2 section 2.4.2) and floor(n / 2), big-endian.
constexpr std::array<std::uint8_t, 32> kP256Order = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
constexpr std::array<std::uint8_t, 32> kP256HalfOrder = {
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8};

// Whether the s half of a 64-byte r||s signature is at most n/2 (public values: no need for a
// constant-time comparison).
bool is_low_s(ByteView sig) {
  return !std::lexicographical_compare(kP256HalfOrder.begin(), kP256HalfOrder.end(),
                                       sig.begin() + kCoordSize, sig.begin() + 2 * kCoordSize);
}

// DER of (r, s) built from two 32-byte big-endian halves; false if OpenSSL cannot encode it.
bool p1363_to_der(ByteView sig, std::array<std::uint8_t, kMaxDerSize>& der, std::size_t& size) {
  Bn r(BN_bin2bn(sig.data(), static_cast<int>(kCoordSize), nullptr));
  Bn s(BN_bin2bn(sig.data() + kCoordSize, static_cast<int>(kCoordSize), nullptr));
  EcdsaSig ecdsa(ECDSA_SIG_new());
  if (!r || !s || !ecdsa || ECDSA_SIG_set0(ecdsa.get(), r.get(), s.get()) != 1) return false;
  r.release();  // owned by `ecdsa` now
  s.release();
  const int len = i2d_ECDSA_SIG(ecdsa.get(), nullptr);
  if (len <= 0 || static_cast<std::size_t>(len) > der.size()) return false;
  std::uint8_t* out = der.data();
  if (i2d_ECDSA_SIG(ecdsa.get(), &out) != len) return false;
  size = static_cast<std::size_t>(len);
  return true;
}

bool verify_p1363_with(EVP_PKEY* pkey, ByteView message, ByteView signature) {
  if (pkey == nullptr || signature.size() != kP1363Size) return false;
  ErrorQueueScope errors;
  std::array<std::uint8_t, kMaxDerSize> der{};
  std::size_t size = 0;
  return p1363_to_der(signature, der, size) && digest_verify(pkey, message, der.data(), size);
}

bool verify_der_with(EVP_PKEY* pkey, ByteView message, ByteView signature) {
  if (pkey == nullptr || signature.empty() || signature.size() > kMaxDerSize) return false;
  ErrorQueueScope errors;
  // d2i accepts some BER and stops at the end of the SEQUENCE; only the one canonical encoding is
  // a signature here, so the parse must consume everything and re-encode to the same bytes.
  // OpenSSL 3's ECDSA_verify happens to check the same; doing it here keeps the guarantee (and
  // the Wycheproof results) independent of the provider.
  const std::uint8_t* p = signature.data();
  const EcdsaSig ecdsa(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(signature.size())));
  if (!ecdsa || p != signature.data() + signature.size()) return false;
  const int len = i2d_ECDSA_SIG(ecdsa.get(), nullptr);
  if (len <= 0 || static_cast<std::size_t>(len) != signature.size()) return false;
  std::array<std::uint8_t, kMaxDerSize> canonical{};
  std::uint8_t* out = canonical.data();
  if (i2d_ECDSA_SIG(ecdsa.get(), &out) != len ||
      std::memcmp(canonical.data(), signature.data(), signature.size()) != 0) {
    return false;
  }
  return digest_verify(pkey, message, signature.data(), signature.size());
}

// Refuses to ask for a passphrase: the default callback would prompt on the terminal, which
// hangs a daemon.
int no_passphrase(char*, int, int, void*) { return -1; }

// ---- error category ----

constexpr std::array<std::string_view, 20> kReasonCodes = {
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
};
static_assert(kReasonCodes.size() == static_cast<std::size_t>(JoseErrc::high_s_signature) + 1);

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
        return "token algorithm is not ES256";
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
    }
    return "unknown token error";
  }
};

// ---- JSON ----

Result<nlohmann::json> parse_object(std::string_view text) {
  // Spelled out as failure(): nlohmann::json converts from almost anything, which makes the
  // implicit error construction of Result<json> ambiguous.
  auto parsed = parse_json_input(text);
  if (!parsed) {
    return boost::outcome_v2::failure(make_error_code(
        parsed.error().reason == "duplicate_key" ? JoseErrc::duplicate_key : JoseErrc::bad_json));
  }
  if (!parsed.value().is_object()) {
    return boost::outcome_v2::failure(make_error_code(JoseErrc::bad_json));
  }
  return std::move(parsed).value();
}

Result<void> string_claim(const nlohmann::json& claims, const char* name, std::string& out) {
  const auto it = claims.find(name);
  if (it == claims.end()) return JoseErrc::missing_claim;
  if (!it->is_string()) return JoseErrc::bad_claim;
  out = it->get<std::string>();
  if (out.empty()) return JoseErrc::bad_claim;
  return boost::outcome_v2::success();
}

// RFC 7519 NumericDate, restricted to integers (we only issue integers, and fractional seconds
// would only add rounding questions).
Result<std::optional<std::int64_t>> time_claim(const nlohmann::json& claims, const char* name) {
  const auto it = claims.find(name);
  if (it == claims.end()) return std::optional<std::int64_t>();
  if (!it->is_number_integer()) return JoseErrc::bad_claim;
  if (it->is_number_unsigned() &&
      it->get<std::uint64_t>() >
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return JoseErrc::bad_claim;
  }
  return std::optional<std::int64_t>(it->get<std::int64_t>());
}

// ---- key directory ----

struct IndexEntry {
  std::string kid;
  std::optional<std::int64_t> retired_at;  // empty for the current key
};

// A kid is a base64url SHA-256 (43 characters); checking the shape before building a path from
// the index keeps a tampered index from naming files outside the directory.
bool valid_kid(std::string_view kid) {
  if (kid.size() != 43) return false;
  return std::all_of(kid.begin(), kid.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

std::string key_path(const std::string& dir, const std::string& kid) {
  return dir + "/jwt-es256-" + kid + ".pem";
}

bool parse_seconds(std::string_view text, std::int64_t& out) {
  if (text.empty() || text.size() > 18) return false;
  std::int64_t v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

// The index, or nullopt when it does not exist yet.
Result<std::optional<std::vector<IndexEntry>>> read_index(const std::string& dir) {
  const std::string path = dir + "/" + kIndexFile;
  const File f(std::fopen(path.c_str(), "rbe"));
  if (!f) {
    if (errno == ENOENT) return std::optional<std::vector<IndexEntry>>();
    return Errc::io_error;
  }
  std::string text;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), f.get())) > 0) {
    text.append(buf, n);
    if (text.size() > kMaxIndexSize) return Errc::corruption;
  }
  if (std::ferror(f.get()) != 0) return Errc::io_error;

  std::vector<std::string_view> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    if (nl == std::string_view::npos) return Errc::corruption;  // torn or hand-edited
    lines.push_back(rest.substr(0, nl));
    rest.remove_prefix(nl + 1);
  }
  if (lines.size() < 2 || lines[0] != kIndexMagic) return Errc::corruption;
  std::vector<IndexEntry> entries;
  std::set<std::string_view> seen;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto space = lines[i].find(' ');
    if (space == std::string_view::npos) return Errc::corruption;
    const std::string_view kid = lines[i].substr(0, space);
    const std::string_view when = lines[i].substr(space + 1);
    if (!valid_kid(kid) || !seen.insert(kid).second) return Errc::corruption;
    IndexEntry e{std::string(kid), std::nullopt};
    if (i == 1) {
      if (when != "-") return Errc::corruption;
    } else {
      std::int64_t t = 0;
      if (!parse_seconds(when, t)) return Errc::corruption;
      e.retired_at = t;
    }
    entries.push_back(std::move(e));
  }
  return std::optional<std::vector<IndexEntry>>(std::move(entries));
}

Result<void> write_index(const std::string& dir, const std::vector<IndexEntry>& entries) {
  std::string text = std::string(kIndexMagic) + "\n";
  for (const auto& e : entries) {
    text += e.kid + " " + (e.retired_at ? std::to_string(*e.retired_at) : std::string("-")) + "\n";
  }
  // Replaced in one step: readers see the old or the new list, never a mix.
  return ledger::ossl::write_private_file(dir + "/" + kIndexFile, text,
                                          ledger::ossl::Replace::atomically);
}

// Whoever can write to the key directory decides which keys sign and verify: they could plant a
// key of their own under a new index, or a symlink or FIFO where a key file is expected. So the
// directory must belong to us and be closed to writes by group and others (load_or_create makes
// it 0700; an existing one is not silently "fixed", the operator has to look at it).
Result<void> check_dir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return Errc::io_error;
  if (st.st_uid != ::geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Errc::key_invalid;
  }
  return boost::outcome_v2::success();
}

// flock() on the directory's lock file for as long as the object lives. Checks the directory
// first: every reader and writer of the directory takes this lock.
class DirLock {
 public:
  static Result<DirLock> acquire(const std::string& dir, bool exclusive) {
    SECHEX_TRYV(check_dir(dir));
    const std::string path = dir + "/" + kLockFile;
    // O_NOFOLLOW: O_CREAT through a planted symlink would create a file wherever it points.
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return Errc::io_error;
    int rc = 0;
    do {
      rc = ::flock(fd, exclusive ? LOCK_EX : LOCK_SH);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      ::close(fd);
      return Errc::io_error;
    }
    return DirLock(fd);
  }
  DirLock(DirLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  DirLock& operator=(DirLock&&) = delete;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
  }

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

std::int64_t retention_seconds(const KeyRingOptions& o) {
  return saturating_add(o.max_token_ttl.count(), std::max<std::int64_t>(0, o.clock_skew.count()));
}

bool still_verifying(const IndexEntry& e, std::int64_t now_s, const KeyRingOptions& o) {
  return !e.retired_at || saturating_add(*e.retired_at, retention_seconds(o)) > now_s;
}

Result<std::shared_ptr<KeyRing::Snapshot>> load_snapshot(const std::string& dir,
                                                         const std::vector<IndexEntry>& entries,
                                                         std::int64_t now_s,
                                                         const KeyRingOptions& options) {
  std::optional<SigningKey> current;
  PublicKeys keys;
  std::vector<std::string> kids;
  for (const auto& e : entries) {
    if (!still_verifying(e, now_s, options)) continue;
    SECHEX_TRY(auto key, SigningKey::load_pem(key_path(dir, e.kid)));
    // A file swapped for another key (or a copy gone wrong) must not verify under this name.
    if (key.kid() != e.kid) return Errc::key_invalid;
    keys.emplace(e.kid, key.public_key());
    kids.push_back(e.kid);
    if (!e.retired_at) current.emplace(std::move(key));
  }
  if (!current) return Errc::corruption;
  return std::make_shared<KeyRing::Snapshot>(
      KeyRing::Snapshot{std::move(*current), std::move(keys), std::move(kids), 0});
}

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

// ---- EcPublicKey ----

Result<EcPublicKey> EcPublicKey::from_coordinates(ByteView x, ByteView y) {
  if (x.size() != kCoordSize || y.size() != kCoordSize) return Errc::key_invalid;
  std::array<std::uint8_t, kSec1Size> point{};
  point[0] = 0x04;
  std::copy(x.begin(), x.end(), point.begin() + 1);
  std::copy(y.begin(), y.end(), point.begin() + 1 + kCoordSize);
  return from_sec1(point);
}

Result<EcPublicKey> EcPublicKey::from_sec1(ByteView point) {
  if (point.size() != kSec1Size || point[0] != 0x04) return Errc::key_invalid;
  ErrorQueueScope errors;
  // OSSL_PARAM wants mutable pointers although fromdata only reads.
  std::array<std::uint8_t, kSec1Size> octets{};
  std::copy(point.begin(), point.end(), octets.begin());
  char group[] = "prime256v1";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, octets.data(), octets.size()),
      OSSL_PARAM_construct_end()};
  const PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    EVP_PKEY_free(raw);
    return Errc::key_invalid;
  }
  auto pkey = share(raw);
  // Off-curve points must never reach the verifier (invalid-curve attacks). The import already
  // refuses them in OpenSSL 3.0; the explicit check keeps that true whatever the provider does.
  const PkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) return Errc::key_invalid;
  Coordinate x{}, y{};
  std::copy(point.begin() + 1, point.begin() + 1 + kCoordSize, x.begin());
  std::copy(point.begin() + 1 + kCoordSize, point.end(), y.begin());
  return EcPublicKey(std::move(pkey), {x, y});
}

Result<EcPublicKey> EcPublicKey::from_jwk(const nlohmann::json& jwk) {
  if (!jwk.is_object()) return Errc::key_invalid;
  auto member = [&](const char* name) -> const nlohmann::json* {
    const auto it = jwk.find(name);
    return it == jwk.end() ? nullptr : &*it;
  };
  auto is = [](const nlohmann::json* v, std::string_view want) {
    return v != nullptr && v->is_string() && v->get_ref<const std::string&>() == want;
  };
  if (!is(member("kty"), "EC") || !is(member("crv"), "P-256")) return Errc::key_invalid;
  if (const auto* use = member("use"); use != nullptr && !is(use, "sig")) return Errc::key_invalid;
  if (const auto* alg = member("alg"); alg != nullptr && !is(alg, "ES256")) {
    return Errc::key_invalid;
  }
  if (const auto* ops = member("key_ops"); ops != nullptr) {
    if (!ops->is_array()) return Errc::key_invalid;
    bool verify = false;
    for (const auto& op : *ops) {
      if (!op.is_string()) return Errc::key_invalid;
      verify = verify || op.get_ref<const std::string&>() == "verify";
    }
    if (!verify) return Errc::key_invalid;
  }
  const auto* x = member("x");
  const auto* y = member("y");
  Bytes xb, yb;
  if (x == nullptr || y == nullptr || !x->is_string() || !y->is_string() ||
      !base64url_decode(x->get_ref<const std::string&>(), xb) ||
      !base64url_decode(y->get_ref<const std::string&>(), yb)) {
    return Errc::key_invalid;
  }
  return from_coordinates(xb, yb);
}

Bytes EcPublicKey::sec1() const {
  Bytes out;
  out.reserve(kSec1Size);
  out.push_back(0x04);
  out.insert(out.end(), x_.begin(), x_.end());
  out.insert(out.end(), y_.begin(), y_.end());
  return out;
}

std::string EcPublicKey::thumbprint() const {
  // RFC 7638 §3: the required members only, lexicographic order, no whitespace. Every value is
  // ASCII without characters JSON would escape, so plain concatenation is the canonical form.
  const std::string canonical = R"({"crv":"P-256","kty":"EC","x":")" + base64url_encode(x_) +
                                R"(","y":")" + base64url_encode(y_) + R"("})";
  const Hash digest = crypto::sha256(bytes_of(canonical));
  return base64url_encode(digest);
}

nlohmann::ordered_json EcPublicKey::jwk(std::string_view kid) const {
  nlohmann::ordered_json j;
  j["kty"] = "EC";
  j["crv"] = "P-256";
  j["x"] = base64url_encode(x_);
  j["y"] = base64url_encode(y_);
  j["kid"] = std::string(kid);
  j["alg"] = "ES256";
  j["use"] = "sig";
  return j;
}

bool EcPublicKey::verify_p1363(ByteView message, ByteView signature) const {
  return verify_p1363_with(pkey_.get(), message, signature);
}

bool EcPublicKey::verify_der(ByteView message, ByteView signature) const {
  return verify_der_with(pkey_.get(), message, signature);
}

bool ecdsa_p256_verify_p1363(ByteView public_key_sec1, ByteView message, ByteView signature) {
  auto key = EcPublicKey::from_sec1(public_key_sec1);
  return key && key.value().verify_p1363(message, signature);
}

bool ecdsa_p256_verify_der(ByteView public_key_sec1, ByteView message, ByteView signature) {
  auto key = EcPublicKey::from_sec1(public_key_sec1);
  return key && key.value().verify_der(message, signature);
}

// ---- SigningKey ----

SigningKey::SigningKey(std::shared_ptr<evp_pkey_st> pkey, EcPublicKey pub)
    : pkey_(std::move(pkey)), public_(std::move(pub)), kid_(public_.thumbprint()) {}

Result<SigningKey> SigningKey::from_pkey(std::shared_ptr<evp_pkey_st> pkey) {
  ErrorQueueScope errors;
  if (!pkey || EVP_PKEY_is_a(pkey.get(), "EC") != 1) return Errc::key_invalid;
  // Named P-256 only: explicit curve parameters in a key file are how invalid-curve keys get in.
  char group[64] = {};
  std::size_t group_len = 0;
  if (EVP_PKEY_get_group_name(pkey.get(), group, sizeof(group), &group_len) != 1) {
    return Errc::key_invalid;
  }
  int nid = OBJ_sn2nid(group);
  if (nid == NID_undef) nid = EC_curve_nist2nid(group);
  if (nid != NID_X9_62_prime256v1) return Errc::key_invalid;

  BIGNUM* raw_x = nullptr;
  BIGNUM* raw_y = nullptr;
  const bool got_x = EVP_PKEY_get_bn_param(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, &raw_x) == 1;
  const Bn bx(raw_x);
  const bool got_y = EVP_PKEY_get_bn_param(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &raw_y) == 1;
  const Bn by(raw_y);
  Coordinate x{}, y{};
  if (!got_x || !got_y || BN_bn2binpad(bx.get(), x.data(), static_cast<int>(x.size())) < 0 ||
      BN_bn2binpad(by.get(), y.data(), static_cast<int>(y.size())) < 0) {
    return Errc::key_invalid;
  }
  SECHEX_TRY(auto pub, EcPublicKey::from_coordinates(x, y));
  return SigningKey(std::move(pkey), std::move(pub));
}

Result<SigningKey> SigningKey::generate() {
  ErrorQueueScope errors;
  const PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") != 1 ||
      EVP_PKEY_generate(ctx.get(), &raw) != 1) {
    EVP_PKEY_free(raw);
    return Errc::crypto_failure;
  }
  auto key = from_pkey(share(raw));
  if (!key) return Errc::crypto_failure;
  return key;
}

Result<SigningKey> SigningKey::load_pem(const std::string& path) {
  ErrorQueueScope errors;
  // "e" = O_CLOEXEC: children spawned by the process must not inherit a key file descriptor.
  const File f(std::fopen(path.c_str(), "rbe"));
  if (!f) return errno == ENOENT || errno == ENOTDIR ? Errc::key_missing : Errc::io_error;
  struct stat st {};
  if (::fstat(::fileno(f.get()), &st) != 0) return Errc::io_error;
  // A key others can read may already be someone else's key: refuse it loudly at startup.
  if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) return Errc::key_invalid;
  Pkey pkey(PEM_read_PrivateKey(f.get(), nullptr, no_passphrase, nullptr));
  if (!pkey) return Errc::key_invalid;
  // Full consistency check (private scalar matches the public point): a damaged file would
  // otherwise sign tokens nobody can verify.
  const PkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!check || EVP_PKEY_check(check.get()) != 1) return Errc::key_invalid;
  return from_pkey(share(pkey.release()));
}

Result<void> SigningKey::save_pem(const std::string& path) const {
  return ledger::ossl::save_private_key_pem(pkey_.get(), path);
}

Result<Bytes> SigningKey::sign_p1363(ByteView message) const {
  ErrorQueueScope errors;
  MdCtx ctx(EVP_MD_CTX_new());
  std::array<std::uint8_t, kMaxDerSize> der{};
  std::size_t der_len = der.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), der.data(), &der_len, message.data(), message.size()) != 1) {
    return Errc::crypto_failure;
  }
  const std::uint8_t* p = der.data();
  const EcdsaSig ecdsa(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len)));
  if (!ecdsa) return Errc::crypto_failure;
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(ecdsa.get(), &r, &s);
  Bytes out(kP1363Size);
  if (BN_bn2binpad(r, out.data(), static_cast<int>(kCoordSize)) < 0 ||
      BN_bn2binpad(s, out.data() + kCoordSize, static_cast<int>(kCoordSize)) < 0) {
    return Errc::crypto_failure;
  }
  if (!is_low_s(out)) {
    // The canonical form (JwsPolicy::require_low_s): s' = n - s verifies the same message.
    const Bn n(BN_bin2bn(kP256Order.data(), static_cast<int>(kP256Order.size()), nullptr));
    Bn low(BN_new());
    if (!n || !low || BN_sub(low.get(), n.get(), s) != 1 ||
        BN_bn2binpad(low.get(), out.data() + kCoordSize, static_cast<int>(kCoordSize)) < 0) {
      return Errc::crypto_failure;
    }
  }
  return out;
}

// ---- JWS ----

Result<std::string> jws_sign_es256(const SigningKey& key, std::string_view header_json,
                                   std::string_view payload) {
  std::string out = base64url_encode(header_json) + "." + base64url_encode(payload);
  SECHEX_TRY(auto sig, key.sign_p1363(bytes_of(out)));
  out += ".";
  out += base64url_encode(sig);
  return out;
}

Result<VerifiedJws> jws_verify_es256(std::string_view compact, const PublicKeys& keys,
                                     const JwsPolicy& policy) {
  if (compact.size() > policy.max_size) return JoseErrc::too_large;
  const auto dot1 = compact.find('.');
  if (dot1 == std::string_view::npos) return JoseErrc::malformed;
  const auto dot2 = compact.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || compact.find('.', dot2 + 1) != std::string_view::npos) {
    return JoseErrc::malformed;
  }
  const std::string_view header_b64 = compact.substr(0, dot1);
  const std::string_view payload_b64 = compact.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view sig_b64 = compact.substr(dot2 + 1);

  Bytes header_bytes;
  if (!base64url_decode(header_b64, header_bytes)) return JoseErrc::bad_base64;
  SECHEX_TRY(auto header, parse_object(string_of(header_bytes)));

  // RFC 7515 §4.1.11: an extension we do not implement might change what the signature means.
  if (header.contains("crit")) return JoseErrc::crit_not_supported;
  // The key must come from our ring. A key carried in (or fetched because of) the token would
  // let its author sign with a key of their own.
  for (const char* name : {"jku", "x5u", "jwk", "x5c"}) {
    if (header.contains(name)) return JoseErrc::embedded_key_rejected;
  }
  // Allowlist of exactly one algorithm, compared before any key is chosen: "none", HMAC keyed
  // with the public key, RSA and other curves never get as far as a verifier.
  const auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string() || alg->get_ref<const std::string&>() != "ES256") {
    return JoseErrc::alg_not_allowed;
  }
  if (policy.typ) {
    const auto typ = header.find("typ");
    if (typ == header.end() || !typ->is_string() ||
        typ->get_ref<const std::string&>() != *policy.typ) {
      return JoseErrc::bad_typ;
    }
  }
  const EcPublicKey* key = nullptr;
  std::string kid;
  if (const auto k = header.find("kid"); k != header.end()) {
    if (!k->is_string()) return JoseErrc::unknown_kid;
    kid = k->get<std::string>();
    const auto found = keys.find(kid);
    if (found == keys.end()) return JoseErrc::unknown_kid;
    key = &found->second;
  } else {
    if (policy.require_kid || keys.size() != 1) return JoseErrc::missing_kid;
    key = &keys.begin()->second;
  }

  Bytes payload;
  if (!base64url_decode(payload_b64, payload)) return JoseErrc::bad_base64;
  Bytes sig;
  if (!base64url_decode(sig_b64, sig)) return JoseErrc::bad_base64;
  // RFC 7518 §3.4: exactly 64 bytes; shorter or padded encodings of r and s are not ES256.
  if (sig.size() != kP1363Size) return JoseErrc::bad_signature;
  if (policy.require_low_s && !is_low_s(sig)) return JoseErrc::high_s_signature;
  if (!key->verify_p1363(bytes_of(compact.substr(0, dot2)), sig)) return JoseErrc::bad_signature;
  return VerifiedJws{std::move(header), string_of(payload), std::move(kid)};
}

// ---- KeyRing ----

KeyRing::KeyRing(std::string dir, const Clock& clock, KeyRingOptions options)
    : dir_(std::move(dir)), clock_(clock), options_(options) {}

Result<std::unique_ptr<KeyRing>> KeyRing::load_or_create(const std::string& dir, const Clock& clock,
                                                         KeyRingOptions options) {
  if (dir.empty() || options.max_token_ttl.count() <= 0 || options.clock_skew.count() < 0) {
    return Errc::invalid_argument;
  }
  std::error_code ec;
  const bool created = std::filesystem::create_directories(dir, ec);
  if (ec) return Errc::io_error;
  if (created && ::chmod(dir.c_str(), 0700) != 0) return Errc::io_error;

  std::unique_ptr<KeyRing> ring(new KeyRing(dir, clock, options));
  SECHEX_TRY(auto lock, DirLock::acquire(dir, /*exclusive=*/true));
  SECHEX_TRY(auto entries, read_index(dir));
  if (!entries) {
    SECHEX_TRY(auto key, SigningKey::generate());
    SECHEX_TRYV(key.save_pem(key_path(dir, key.kid())));
    entries.emplace(std::vector<IndexEntry>{{key.kid(), std::nullopt}});
    SECHEX_TRYV(write_index(dir, *entries));
  }
  SECHEX_TRY(auto snap, load_snapshot(dir, *entries, seconds_of(clock.now_micros()), options));
  ring->install(std::move(snap));
  return ring;
}

Result<void> KeyRing::rotate(Retire retire) {
  const std::lock_guard change(change_mu_);
  SECHEX_TRY(auto lock, DirLock::acquire(dir_, /*exclusive=*/true));
  // Re-read rather than trust memory: another process may have rotated since we loaded.
  SECHEX_TRY(auto entries, read_index(dir_));
  if (!entries) return Errc::key_missing;
  const std::int64_t now_s = seconds_of(clock_.now_micros());

  SECHEX_TRY(auto key, SigningKey::generate());
  SECHEX_TRYV(key.save_pem(key_path(dir_, key.kid())));
  std::vector<IndexEntry> next{{key.kid(), std::nullopt}};
  std::vector<std::string> dropped;
  for (const auto& e : *entries) {
    IndexEntry retired{e.kid, e.retired_at.value_or(now_s)};
    if (retire == Retire::after_token_ttl && still_verifying(retired, now_s, options_)) {
      next.push_back(std::move(retired));
    } else {
      dropped.push_back(e.kid);
    }
  }
  SECHEX_TRYV(write_index(dir_, next));
  // Only once the index no longer names them: a crash before this leaves unused files, never an
  // index pointing at missing keys. Failure to delete is not worth failing the rotation for.
  for (const auto& kid : dropped) ::unlink(key_path(dir_, kid).c_str());
  SECHEX_TRY(auto snap, load_snapshot(dir_, next, now_s, options_));
  install(std::move(snap));
  return boost::outcome_v2::success();
}

Result<void> KeyRing::reload() {
  const std::lock_guard change(change_mu_);
  SECHEX_TRY(auto lock, DirLock::acquire(dir_, /*exclusive=*/false));
  SECHEX_TRY(auto entries, read_index(dir_));
  if (!entries) return Errc::key_missing;
  SECHEX_TRY(auto snap, load_snapshot(dir_, *entries, seconds_of(clock_.now_micros()), options_));
  install(std::move(snap));
  return boost::outcome_v2::success();
}

void KeyRing::install(std::shared_ptr<Snapshot> next) {
  const std::lock_guard lock(mu_);
  // Same keys, same generation: a periodic reload must not flush every verifier's cache.
  if (snapshot_ && snapshot_->kids == next->kids) {
    next->generation = snapshot_->generation;
  } else {
    next->generation = snapshot_ ? snapshot_->generation + 1 : 1;
  }
  snapshot_ = std::move(next);
}

std::shared_ptr<const KeyRing::Snapshot> KeyRing::snapshot() const {
  const std::lock_guard lock(mu_);
  return snapshot_;
}

std::string KeyRing::jwks_json() const {
  const auto snap = snapshot();
  nlohmann::ordered_json keys = nlohmann::ordered_json::array();
  for (const auto& kid : snap->kids) keys.push_back(snap->keys.at(kid).jwk(kid));
  nlohmann::ordered_json doc;
  doc["keys"] = std::move(keys);
  return doc.dump();
}

// ---- access tokens ----

TokenIssuer::TokenIssuer(const KeyRing& ring, const Clock& clock, IssuerConfig config)
    : ring_(ring), clock_(clock), config_(std::move(config)) {}

Result<IssuedToken> TokenIssuer::issue(const TokenSubject& claims, std::chrono::seconds ttl) const {
  if (ttl.count() <= 0 || ttl > ring_.options().max_token_ttl || claims.sub.empty() ||
      claims.sid.empty() || claims.roles.size() > kMaxRoles) {
    return Errc::invalid_argument;
  }
  const auto snap = ring_.snapshot();
  SECHEX_TRY(auto jti, crypto::random_bytes(kJtiBytes));
  const std::int64_t now_s = seconds_of(clock_.now_micros());
  AccessClaims c;
  c.iss = config_.issuer;
  c.sub = claims.sub;
  c.aud = config_.audience;
  c.iat = now_s;
  c.exp = saturating_add(now_s, ttl.count());
  c.jti = base64url_encode(jti);
  c.sid = claims.sid;
  c.roles = claims.roles;
  c.operator_token = claims.operator_token;

  nlohmann::ordered_json header;
  header["alg"] = "ES256";
  header["kid"] = snap->current.kid();
  header["typ"] = config_.typ;
  nlohmann::ordered_json payload;
  payload["iss"] = c.iss;
  payload["sub"] = c.sub;
  payload["aud"] = c.aud;
  payload["iat"] = c.iat;
  payload["exp"] = c.exp;
  payload["jti"] = c.jti;
  payload["sid"] = c.sid;
  payload["roles"] = c.roles;
  if (c.operator_token) payload["operator"] = true;
  std::string header_text, payload_text;
  try {
    header_text = header.dump();
    payload_text = payload.dump();
  } catch (const nlohmann::json::exception&) {
    return Errc::invalid_argument;  // a string that is not UTF-8
  }
  SECHEX_TRY(auto token, jws_sign_es256(snap->current, header_text, payload_text));
  if (token.size() > kMaxIssuedTokenSize) return Errc::invalid_argument;
  return IssuedToken{std::move(token), std::move(c), snap->current.kid()};
}

Result<VerifiedToken> verify_access_token(std::string_view token, const PublicKeys& keys,
                                          const VerifierConfig& config, std::int64_t now_micros) {
  JwsPolicy policy;
  policy.max_size = config.max_token_size;
  policy.require_kid = true;
  policy.typ = config.typ;
  policy.require_low_s = true;
  SECHEX_TRY(auto jws, jws_verify_es256(token, keys, policy));
  // Parsed only after the signature verified: unauthenticated bytes never reach the parser
  // beyond the (small) header.
  SECHEX_TRY(const auto payload, parse_object(jws.payload));

  AccessClaims c;
  SECHEX_TRYV(string_claim(payload, "iss", c.iss));
  if (c.iss != config.issuer) return JoseErrc::wrong_issuer;

  const auto aud = payload.find("aud");
  if (aud == payload.end()) return JoseErrc::missing_claim;
  bool audience_ok = false;
  if (aud->is_string()) {
    audience_ok = aud->get_ref<const std::string&>() == config.audience;
  } else if (aud->is_array() && !aud->empty()) {
    for (const auto& a : *aud) {
      if (!a.is_string()) return JoseErrc::bad_claim;
      audience_ok = audience_ok || a.get_ref<const std::string&>() == config.audience;
    }
  } else {
    return JoseErrc::bad_claim;
  }
  if (!audience_ok) return JoseErrc::wrong_audience;
  c.aud = config.audience;

  SECHEX_TRY(const auto exp, time_claim(payload, "exp"));
  SECHEX_TRY(const auto iat, time_claim(payload, "iat"));
  SECHEX_TRY(c.nbf, time_claim(payload, "nbf"));
  if (!exp || !iat) return JoseErrc::missing_claim;
  c.exp = *exp;
  c.iat = *iat;
  const std::int64_t now_s = seconds_of(now_micros);
  const std::int64_t latest =
      saturating_add(now_s, std::max<std::int64_t>(0, config.clock_skew.count()));
  if (now_s >= c.exp) return JoseErrc::expired;
  if ((c.nbf && *c.nbf > latest) || c.iat > latest) return JoseErrc::not_yet_valid;

  SECHEX_TRYV(string_claim(payload, "sub", c.sub));
  SECHEX_TRYV(string_claim(payload, "sid", c.sid));
  SECHEX_TRYV(string_claim(payload, "jti", c.jti));
  const auto roles = payload.find("roles");
  if (roles == payload.end()) return JoseErrc::missing_claim;
  if (!roles->is_array()) return JoseErrc::bad_claim;
  for (const auto& r : *roles) {
    if (!r.is_string()) return JoseErrc::bad_claim;
    c.roles.push_back(r.get<std::string>());
  }
  if (const auto op = payload.find("operator"); op != payload.end()) {
    if (!op->is_boolean()) return JoseErrc::bad_claim;
    c.operator_token = op->get<bool>();
  }
  return VerifiedToken{std::move(c), std::move(jws.kid)};
}

std::size_t VerifiedTokenCache::HashOfHash::operator()(const ledger::Hash& h) const noexcept {
  // Already a uniform digest: any slice of it is as good a hash as any.
  std::size_t v = 0;
  std::memcpy(&v, h.data(), sizeof(v));
  return v;
}

std::optional<VerifiedToken> VerifiedTokenCache::find(std::string_view token,
                                                      std::int64_t now_micros,
                                                      std::uint64_t generation) const {
  if (capacity_ == 0) return std::nullopt;
  const Hash key = crypto::sha256(bytes_of(token));
  const std::lock_guard lock(mu_);
  const auto it = entries_.find(key);
  // A stale entry stays until evicted or overwritten: removing it here would make the eviction
  // order and the map disagree, and verification will refuse or replace it anyway.
  if (it == entries_.end() || it->second.generation != generation ||
      now_micros >= it->second.expires_micros) {
    return std::nullopt;
  }
  return it->second.verified;
}

void VerifiedTokenCache::insert(std::string_view token, const VerifiedToken& verified,
                                std::uint64_t generation) {
  if (capacity_ == 0) return;
  const Hash key = crypto::sha256(bytes_of(token));
  const std::int64_t exp = verified.claims.exp;
  // Saturating both ways: exp is whatever the (verified) token said, and a public caller may pass
  // any value; exp * 10^6 must not overflow for a date before 1677 either.
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  const std::int64_t expires = exp >= kMax / kMicrosPerSecond   ? kMax
                               : exp <= kMin / kMicrosPerSecond ? kMin
                                                                : exp * kMicrosPerSecond;
  Entry entry{verified, expires, generation};
  const std::lock_guard lock(mu_);
  const auto [it, inserted] = entries_.try_emplace(key, std::move(entry));
  if (!inserted) {
    it->second = std::move(entry);
    return;
  }
  order_.push_back(key);
  while (entries_.size() > capacity_) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
}

std::size_t VerifiedTokenCache::size() const {
  const std::lock_guard lock(mu_);
  return entries_.size();
}

TokenVerifier::TokenVerifier(const KeyRing& ring, const Clock& clock, VerifierConfig config)
    : ring_(ring), clock_(clock), config_(std::move(config)), cache_(config_.cache_capacity) {}

Result<VerifiedToken> TokenVerifier::verify(std::string_view token) const {
  // Before hashing for the cache: an oversized token costs nothing beyond its length check.
  if (token.size() > config_.max_token_size) return JoseErrc::too_large;
  const auto snap = ring_.snapshot();
  const std::int64_t now = clock_.now_micros();
  if (auto hit = cache_.find(token, now, snap->generation)) return std::move(*hit);
  SECHEX_TRY(auto verified, verify_access_token(token, snap->keys, config_, now));
  cache_.insert(token, verified, snap->generation);
  return verified;
}

}  // namespace sechex::api::jose
