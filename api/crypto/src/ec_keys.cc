// P-256 keys (EcPublicKey, SigningKey) and the raw ECDSA checks.
#include <deque>
#include <mutex>
#include <unordered_map>

#include "jose_internal.h"

namespace sechex::api::jose {

using namespace detail;

// ---- EcPublicKey ----

namespace {

// Imported keys by their SEC1 point. A DPoP proof carries its key in every request, and
// importing it (EVP_PKEY_fromdata, then the on-curve check) cost about half of verifying the
// proof's signature; a device signs all its requests with one key. Only keys that passed the
// checks are kept, under the exact bytes they were imported from, so a lookup can only return
// what a fresh import of those bytes would. They are public keys: keeping them discloses
// nothing. Bounded: a full shard forgets its oldest key (a key seen again is imported again).
// Thread-safety: any thread; a shard's map is guarded by its mutex. The EVP_PKEYs are shared
// read-only (OpenSSL 3 allows concurrent verifications with one key, each with its own context).
class ImportedKeys {
 public:
  static constexpr std::size_t kShards = 16;
  // 16,384 keys; each costs about 2 KB of RSS (bench/README.md, "Exclusive mode"), so ~32 MB.
  static constexpr std::size_t kPerShard = 1024;

  std::shared_ptr<evp_pkey_st> find(std::string_view point) {
    auto& s = shard(point);
    std::lock_guard lock(s.mu);
    const auto it = s.keys.find(point);
    return it == s.keys.end() ? nullptr : it->second;
  }

  void put(std::string_view point, std::shared_ptr<evp_pkey_st> key) {
    auto& s = shard(point);
    std::lock_guard lock(s.mu);
    if (s.keys.contains(point)) return;
    if (s.order.size() >= kPerShard) {
      s.keys.erase(s.order.front());
      s.order.pop_front();
    }
    s.order.emplace_back(point);
    s.keys.emplace(s.order.back(), std::move(key));
  }

 private:
  struct Shard {
    std::mutex mu;
    // Views into `order`, whose strings outlive their entries (a deque never moves them).
    std::unordered_map<std::string_view, std::shared_ptr<evp_pkey_st>> keys;
    std::deque<std::string> order;
  };
  Shard& shard(std::string_view point) {
    return shards_[std::hash<std::string_view>{}(point) % kShards];
  }
  std::array<Shard, kShards> shards_;
};

ImportedKeys& imported_keys() {
  static ImportedKeys keys;
  return keys;
}

}  // namespace

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
  Coordinate x{}, y{};
  std::copy(point.begin() + 1, point.begin() + 1 + kCoordSize, x.begin());
  std::copy(point.begin() + 1 + kCoordSize, point.end(), y.begin());
  const std::string_view cache_key(reinterpret_cast<const char*>(point.data()), point.size());
  if (auto known = imported_keys().find(cache_key)) return EcPublicKey(std::move(known), {x, y});
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
  // The quick check (on the curve, not the point at infinity) is the whole check for P-256: its
  // cofactor is 1, so every such point has order n, and the full check's n*Q multiplication
  // cost as much as the signature verification itself (a DPoP proof imports its jwk each time).
  const PkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!check || EVP_PKEY_public_check_quick(check.get()) != 1) return Errc::key_invalid;
  imported_keys().put(cache_key, pkey);
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

}  // namespace sechex::api::jose
