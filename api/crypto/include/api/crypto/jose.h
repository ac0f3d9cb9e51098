// ES256 access tokens: JWS compact serialization (RFC 7515) signed with ECDSA P-256 / SHA-256,
// carrying the JWT claims of API.md "Authentication schemes" (RFC 7519, `typ` per RFC 9068).
//
// Layers, each usable on its own:
//   base64url_*              RFC 4648 §5 without padding, strict (one spelling per byte string).
//   ecdsa_p256_verify_*      raw signature checks (P1363 r||s and DER), for the Wycheproof tests.
//   EcPublicKey, SigningKey  P-256 keys; kid = RFC 7638 JWK thumbprint of the public key.
//   jws_sign_es256 /         generic compact JWS; the verifier enforces the header rules below.
//   jws_verify_es256
//   KeyRing                  the server's signing keys on disk, with rotation and JWKS.
//   TokenIssuer /            access tokens: claims, lifetimes, audience, issuer, cache.
//   TokenVerifier
// Each layer has its own source in api/crypto/src (base64url.cc, ec_keys.cc, jws.cc, key_ring.cc,
// access_tokens.cc; jose_errors.cc for JoseErrc; jose_internal.h what they share).
//
// Verification rules (each failure has its own JoseErrc so the API can log the reason; the HTTP
// answer is the same 401 for all of them):
//   - the token is at most `max_size` bytes (8 KiB) and has exactly three '.'-separated segments;
//   - every segment is strict base64url; header and payload are JSON objects parsed with the API's
//     input limits (api/json_input.h), duplicate keys refused;
//   - `alg` is exactly "ES256" (never "none", HS*, RS*, PS*: every key in a ring is an EC P-256
//     key used only for ES256, so an HMAC keyed with the public key can never be checked);
//   - `crit` is refused (no extension is understood), and so are `jku`, `x5u`, `jwk`, `x5c`: the
//     key always comes from the ring, never from the token;
//   - `kid` is present and names a key of the ring; `typ` equals the expected value exactly;
//   - the signature is 64 bytes, in low-S form (s <= n/2, which the issuer always produces) and
//     verifies (OpenSSL EVP, no early-exit comparison of secrets);
//   - claims: `exp` required, the token is refused from second `exp` on (no leeway: the skew only
//     forgives clocks that run behind the issuer's, never a token's expiry); `nbf` (optional) and
//     `iat` (required) may be at most `clock_skew` in the future; `iss` equals the configured
//     issuer, `aud` equals (or, as an array, contains) the configured audience; `sub`, `sid`, `jti`
//     are non-empty strings and `roles` an array of strings; `operator`, when present, a
//     boolean. NumericDates must be integers.
// Nothing here throws: failures are Result errors (std::bad_alloc aside).
//
// Key directory (KeyRing), one per deployment, mode 0700 (suggested: <data-dir>/keys/jwt); a
// directory not owned by the effective user or writable by group or others is refused
// (Errc::key_invalid), since whoever can write there chooses the keys:
//   jwt-es256-<kid>.pem   PKCS#8 PEM of one key, mode 0600, written once through a temporary file
//                         and link(), never overwritten (same scheme as the checkpoint key).
//   jwt-es256.keys        the index, replaced atomically (rename) on rotation:
//                           line 1   "sechex-jwt-keys/v1"
//                           line 2   "<kid> -"            the current signing key
//                           line 3+  "<kid> <retired_at>" earlier keys, newest first; retired_at is
//                                    the Unix time (s) the key stopped signing.
//                         A retired key keeps verifying until retired_at + max_token_ttl +
//                         clock_skew (the last token it signed has expired by then); after that
//                         the next rotation drops it from the index and deletes its file.
//   jwt-es256.lock        empty; flock()ed while the directory is read or changed, so two
//                         processes (ledgerd, ledgerctl) never rotate over each other.
// PEM files not named in the index (e.g. left by a crash between writing a key and the index)
// are ignored.
//
// Lifecycle and thread-safety:
//   - EcPublicKey and SigningKey are immutable values (copies share the OpenSSL key); all their
//     methods may be called concurrently.
//   - KeyRing: all methods are safe to call concurrently. sign/verify work on a snapshot taken
//     under a short mutex, so a rotate() in progress never blocks or tears a verification. A
//     process sees rotations made by another process only after reload(); until then tokens
//     signed with the other process's new key fail with unknown_kid. Processes sharing a key
//     directory should therefore call reload() periodically (more often than they rotate).
//   - TokenIssuer and TokenVerifier keep a reference to their KeyRing and Clock, which must
//     outlive them; their methods are safe to call concurrently.
//   - VerifiedTokenCache: one mutex around a hash map; the critical section is a lookup and a
//     copy of the claims. An entry is used only while now < exp and only with the key-ring
//     generation it was verified under, so the cache never extends a token's life nor outlives
//     an emergency key retirement. It caches the signature and claim checks only: session
//     revocation is checked by the caller on every request.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "ledger/clock.h"
#include "ledger/result.h"
#include "ledger/types.h"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY, kept out of this header

namespace sechex::api::jose {

using ledger::Bytes;
using ledger::ByteView;

// Why a token (or JWS) was refused. Key-file and argument errors use ledger::Errc instead
// (io_error, key_missing, key_invalid, corruption, invalid_argument, crypto_failure).
enum class JoseErrc {
  ok = 0,
  malformed = 1,          // not exactly three '.'-separated segments
  too_large,              // longer than the size limit
  bad_base64,             // a segment is not strict unpadded base64url
  bad_json,               // header or payload is not a JSON object within the input limits
  duplicate_key,          // header or payload repeats an object key
  alg_not_allowed,        // `alg` missing or not allowed (ES256; ID tokens also RS256)
  missing_kid,            // no `kid` in the header
  unknown_kid,            // `kid` names no key of the ring
  crit_not_supported,     // the header has `crit`
  embedded_key_rejected,  // the header has `jku`, `x5u`, `jwk` or `x5c`
  bad_typ,                // `typ` missing or not the expected value
  bad_signature,          // wrong length or does not verify
  missing_claim,          // a required claim is absent
  bad_claim,              // a claim has the wrong type or an empty value
  expired,                // now >= exp
  not_yet_valid,          // nbf or iat is further in the future than the allowed skew
  wrong_audience,
  wrong_issuer,
  high_s_signature,        // s > n/2: the malleated twin of a canonical signature (JwsPolicy)
  wrong_nonce,             // an ID token's nonce is not the one its sign-in sent (oidc.h)
  wrong_authorized_party,  // an ID token's azp is another client, or missing with several aud
};

const std::error_category& jose_category() noexcept;
inline std::error_code make_error_code(JoseErrc e) noexcept {
  return {static_cast<int>(e), jose_category()};
}
// Stable snake_case name ("bad_signature") for logs and metric labels; "internal_error" for
// codes of other categories.
std::string_view reason_code(const std::error_code& ec) noexcept;

// ---- base64url (RFC 4648 §5) ----
std::string base64url_encode(ByteView data);
std::string base64url_encode(std::string_view data);
// Only the unpadded, canonical spelling: false on '=', '+', '/', whitespace, a length of 1 mod
// 4, or non-zero unused trailing bits. `out` is unchanged on failure.
bool base64url_decode(std::string_view text, Bytes& out);

// ---- keys ----
using Coordinate = std::array<std::uint8_t, 32>;

// An EC P-256 public key; only points on the curve can be constructed.
class EcPublicKey {
 public:
  // Big-endian affine coordinates of exactly 32 bytes each.
  static Result<EcPublicKey> from_coordinates(ByteView x, ByteView y);
  // SEC1 uncompressed point: 0x04 || x || y (65 bytes). Compressed points are refused. Up
  // to 16,384 recently imported keys are kept by their exact bytes (a DPoP key comes with every
  // request): importing one of them again returns the same OpenSSL key without the import.
  static Result<EcPublicKey> from_sec1(ByteView point);
  // A JWK (RFC 7517/7518) to verify ES256 with: kty "EC", crv "P-256", x and y strict base64url
  // of 32 bytes; when present, `use` must be "sig", `key_ops` must contain "verify" and `alg`
  // must be "ES256" (a key published for encryption must not verify signatures). A private
  // member `d` is ignored. Errc::key_invalid otherwise.
  static Result<EcPublicKey> from_jwk(const nlohmann::json& jwk);

  const Coordinate& x() const { return x_; }
  const Coordinate& y() const { return y_; }
  Bytes sec1() const;
  // RFC 7638 thumbprint: base64url(SHA-256({"crv":"P-256","kty":"EC","x":..,"y":..})).
  std::string thumbprint() const;
  // {"kty","crv","x","y","kid","alg":"ES256","use":"sig"} in that order, for a JWKS.
  nlohmann::ordered_json jwk(std::string_view kid) const;

  // Raw ECDSA-SHA256 checks. False for anything but a valid signature: wrong length, r or s out
  // of [1, n-1], DER that is not the unique canonical encoding (BER, padding, trailing bytes).
  bool verify_p1363(ByteView message, ByteView signature) const;
  bool verify_der(ByteView message, ByteView signature) const;

 private:
  struct Point {
    Coordinate x;
    Coordinate y;
  };
  EcPublicKey(std::shared_ptr<evp_pkey_st> pkey, const Point& point)
      : pkey_(std::move(pkey)), x_(point.x), y_(point.y) {}
  friend class SigningKey;
  std::shared_ptr<evp_pkey_st> pkey_;
  Coordinate x_{};
  Coordinate y_{};
};

// The same checks with the key as a SEC1 uncompressed point; false (never a crash) for a
// malformed key too.
bool ecdsa_p256_verify_p1363(ByteView public_key_sec1, ByteView message, ByteView signature);
bool ecdsa_p256_verify_der(ByteView public_key_sec1, ByteView message, ByteView signature);

// An EC P-256 private key and its kid.
class SigningKey {
 public:
  static Result<SigningKey> generate();
  // Errc::key_missing when the file is absent; key_invalid when it is not an unencrypted EC
  // P-256 key with a named curve, fails OpenSSL's key check, or is readable by group or others.
  static Result<SigningKey> load_pem(const std::string& path);
  // PKCS#8 PEM, mode 0600, atomically; Errc::invalid_argument when `path` already exists.
  Result<void> save_pem(const std::string& path) const;

  const EcPublicKey& public_key() const { return public_; }
  const std::string& kid() const { return kid_; }
  // ECDSA-SHA256 over `message`, as 64 bytes r||s (randomized: two calls differ).
  Result<Bytes> sign_p1363(ByteView message) const;

 private:
  SigningKey(std::shared_ptr<evp_pkey_st> pkey, EcPublicKey pub);
  static Result<SigningKey> from_pkey(std::shared_ptr<evp_pkey_st> pkey);
  std::shared_ptr<evp_pkey_st> pkey_;
  EcPublicKey public_;
  std::string kid_;
};

// Verification keys by kid. std::less<> so lookups take the header's string_view.
using PublicKeys = std::map<std::string, EcPublicKey, std::less<>>;

// ---- generic compact JWS ----
struct JwsPolicy {
  std::size_t max_size = 8192;
  // When false, a header without `kid` is checked against the only key of `keys` (there must be
  // exactly one); for foreign JWS such as RFC 7515's examples, never for access tokens.
  bool require_kid = true;
  std::optional<std::string> typ;  // when set, the header's `typ` must equal it
  // ECDSA signatures are malleable: when (r, s) verifies, so does (r, n - s), a second text of
  // the same token. Our signer always emits the low-S form (s <= n/2); with this set the high-S
  // twin is refused, so a token has exactly one valid text and nothing keyed by the text (the
  // verified-token cache) can be fooled by a twin. Off for foreign JWS (RFC and Wycheproof
  // vectors, later DPoP proofs, whose replay set is keyed by jkt and jti, never by the text).
  bool require_low_s = false;
};

struct VerifiedJws {
  nlohmann::json header;
  std::string payload;  // decoded bytes, not parsed
  std::string kid;      // empty when require_kid was false and the header had none
};

// Signs `header_json` and `payload` as they are (the caller decides the bytes, so tests can sign
// deliberately odd headers). Errc::crypto_failure if OpenSSL fails.
Result<std::string> jws_sign_es256(const SigningKey& key, std::string_view header_json,
                                   std::string_view payload);
// Applies the header rules above and checks the signature; does not look at the payload.
Result<VerifiedJws> jws_verify_es256(std::string_view compact, const PublicKeys& keys,
                                     const JwsPolicy& policy = {});

// ---- the server's key ring ----
struct KeyRingOptions {
  std::chrono::seconds max_token_ttl{3600};  // TokenIssuer refuses longer lifetimes
  std::chrono::seconds clock_skew{60};
};

enum class Retire {
  after_token_ttl,  // normal rotation: earlier keys verify until their tokens have expired
  immediately,      // key compromise: earlier keys are dropped and their files deleted at once
};

class KeyRing {
 public:
  struct Snapshot {
    SigningKey current;
    PublicKeys keys;                // the current key and the retired keys still verifying
    std::vector<std::string> kids;  // newest first, for the JWKS
    std::uint64_t generation = 0;   // changes whenever `keys` changes
  };

  // Opens `dir` (created 0700 if missing) and loads the keys its index names; on first start
  // generates a key and writes the index. Errc::corruption for an index that does not parse,
  // key_missing / key_invalid when a named key file is absent or does not match its kid.
  static Result<std::unique_ptr<KeyRing>> load_or_create(const std::string& dir, const Clock& clock,
                                                         KeyRingOptions options = {});
  KeyRing(const KeyRing&) = delete;
  KeyRing& operator=(const KeyRing&) = delete;

  // Generates a new current key, retires the current one as `retire` says, rewrites the index
  // and switches this ring to the result (also picking up rotations made by others).
  Result<void> rotate(Retire retire = Retire::after_token_ttl);
  // Re-reads the directory (after a rotation by another process).
  Result<void> reload();

  std::shared_ptr<const Snapshot> snapshot() const;
  std::string current_kid() const { return snapshot()->current.kid(); }
  // {"keys":[jwk, ...]} with the current key first: the body of GET /.well-known/jwks.json.
  std::string jwks_json() const;
  const KeyRingOptions& options() const { return options_; }
  const std::string& dir() const { return dir_; }

 private:
  KeyRing(std::string dir, const Clock& clock, KeyRingOptions options);
  void install(std::shared_ptr<Snapshot> next);

  const std::string dir_;
  const Clock& clock_;
  const KeyRingOptions options_;
  std::mutex change_mu_;  // serialises rotate/reload within the process (flock across)
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> snapshot_;
};

// ---- access tokens ----
struct AccessClaims {
  std::string iss;
  std::string sub;
  std::string aud;  // the audience the token was checked against
  std::int64_t iat = 0;
  std::int64_t exp = 0;
  std::optional<std::int64_t> nbf;
  std::string jti;
  std::string sid;
  std::vector<std::string> roles;
  // Claim "operator": true on tokens `ledgerctl tokens issue` makes for operators and
  // applications (absent on users' tokens). Such a token is never accepted as a user.
  bool operator_token = false;
  // Claim "cnf": {"jkt": RFC 7638 thumbprint} (RFC 9449 §6.1) on exclusive-mode session tokens:
  // the token is bound to that key and is never valid without a DPoP proof signed by it.
  std::string cnf_jkt;
};

struct VerifiedToken {
  AccessClaims claims;
  std::string kid;
};

// What the caller decides about a token; the issuer adds iss, aud, iat, exp and jti.
struct TokenSubject {
  std::string sub;
  std::string sid;
  std::vector<std::string> roles;
  bool operator_token = false;  // AccessClaims::operator_token
  std::string cnf_jkt{};        // AccessClaims::cnf_jkt; empty: not key-bound
};

struct IssuedToken {
  std::string token;
  AccessClaims claims;
  std::string kid;
};

struct IssuerConfig {
  std::string issuer;
  std::string audience;
  std::string typ = "at+jwt";
};

class TokenIssuer {
 public:
  TokenIssuer(const KeyRing& ring, const Clock& clock, IssuerConfig config);
  // Header {"alg":"ES256","kid":<current>,"typ":"at+jwt"}; jti = 16 random bytes, base64url.
  // Errc::invalid_argument when ttl is not in (0, max_token_ttl], sub or sid is empty, or a
  // string is not valid UTF-8.
  Result<IssuedToken> issue(const TokenSubject& claims, std::chrono::seconds ttl) const;

 private:
  const KeyRing& ring_;
  const Clock& clock_;
  const IssuerConfig config_;
};

struct VerifierConfig {
  std::string issuer;
  std::string audience;
  std::string typ = "at+jwt";
  std::chrono::seconds clock_skew{60};
  std::size_t max_token_size = 8192;
  std::size_t cache_capacity = 10000;  // verified tokens remembered; 0 disables the cache
};

// Stateless check of one token against a key set at time `now_micros`.
Result<VerifiedToken> verify_access_token(std::string_view token, const PublicKeys& keys,
                                          const VerifierConfig& config, std::int64_t now_micros);

// Remembers tokens that passed verify_access_token, keyed by SHA-256 of the token. Bounded:
// when full, the oldest entry goes (tokens share one TTL, so that is also the one expiring
// first).
class VerifiedTokenCache {
 public:
  explicit VerifiedTokenCache(std::size_t capacity) : capacity_(capacity) {}
  // The cached result, only while now_micros < exp and for the same ring generation.
  std::optional<VerifiedToken> find(std::string_view token, std::int64_t now_micros,
                                    std::uint64_t generation) const;
  void insert(std::string_view token, const VerifiedToken& verified, std::uint64_t generation);
  std::size_t size() const;

 private:
  struct Entry {
    VerifiedToken verified;
    std::int64_t expires_micros = 0;
    std::uint64_t generation = 0;
  };
  struct HashOfHash {
    std::size_t operator()(const ledger::Hash& h) const noexcept;
  };
  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<ledger::Hash, Entry, HashOfHash> entries_;
  std::deque<ledger::Hash> order_;  // insertion order; always the same keys as entries_
};

class TokenVerifier {
 public:
  TokenVerifier(const KeyRing& ring, const Clock& clock, VerifierConfig config);
  Result<VerifiedToken> verify(std::string_view token) const;
  const VerifiedTokenCache& cache() const { return cache_; }

 private:
  const KeyRing& ring_;
  const Clock& clock_;
  const VerifierConfig config_;
  mutable VerifiedTokenCache cache_;
};

}  // namespace sechex::api::jose

template <>
struct std::is_error_code_enum<sechex::api::jose::JoseErrc> : std::true_type {};
