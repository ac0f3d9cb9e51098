#include "device.h"

#include <cbor.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "api/crypto/dpop.h"
#include "api/crypto/jose.h"
#include "ledger/crypto.h"

namespace sechex::ops {
namespace {

namespace po = boost::program_options;
using api::jose::base64url_encode;
using api::jose::SigningKey;
using ledger::Bytes;
using ledger::ByteView;

constexpr int kOk = 0;
constexpr int kCannotRun = 2;

int usage_error(const std::string& message) {
  std::cerr << "ledgerctl device: " << message << "\n";
  return kCannotRun;
}

Bytes as_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

// CBOR through libcbor; each builder owns its item until encoded.
struct CborDeleter {
  void operator()(cbor_item_t* item) const { cbor_decref(&item); }
};
using Cbor = std::unique_ptr<cbor_item_t, CborDeleter>;

Bytes encode(cbor_item_t* item) {
  unsigned char* buffer = nullptr;
  std::size_t size = 0;
  const auto written = cbor_serialize_alloc(item, &buffer, &size);
  Bytes out(buffer, buffer + written);
  free(buffer);  // NOLINT(cppcoreguidelines-no-malloc): libcbor allocates with malloc
  return out;
}
void put(cbor_item_t* map, cbor_item_t* key, cbor_item_t* value) {
  cbor_map_add(map, {.key = cbor_move(key), .value = cbor_move(value)});
}
cbor_item_t* int_item(std::int64_t v) {
  return v >= 0 ? cbor_build_uint64(static_cast<std::uint64_t>(v))
                : cbor_build_negint64(static_cast<std::uint64_t>(-1 - v));
}
cbor_item_t* bytes_item(const Bytes& b) { return cbor_build_bytestring(b.data(), b.size()); }

// COSE_Key of a P-256 key (RFC 9053): kty EC2, alg ES256, crv P-256, x, y.
Bytes cose_key(const api::jose::EcPublicKey& key) {
  const Cbor map(cbor_new_definite_map(5));
  put(map.get(), int_item(1), int_item(2));
  put(map.get(), int_item(3), int_item(-7));
  put(map.get(), int_item(-1), int_item(1));
  put(map.get(), int_item(-2), bytes_item(Bytes(key.x().begin(), key.x().end())));
  put(map.get(), int_item(-3), bytes_item(Bytes(key.y().begin(), key.y().end())));
  return encode(map.get());
}

// WebAuthn signatures are ASN.1 DER (§6.5.5), JWS ones raw r || s.
Bytes der_of_p1363(const Bytes& raw) {
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(raw.data(), 32, nullptr);
  BIGNUM* s = BN_bin2bn(raw.data() + 32, 32, nullptr);
  ECDSA_SIG_set0(sig, r, s);
  unsigned char* der = nullptr;
  const int n = i2d_ECDSA_SIG(sig, &der);
  Bytes out(der, der + std::max(n, 0));
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
  return out;
}

int device_new(const std::string& path) {
  auto key = SigningKey::generate();
  if (!key) return usage_error("cannot generate a key");
  if (auto saved = key.value().save_pem(path); !saved) {
    return usage_error("cannot write " + path + ": " + saved.error().message());
  }
  std::cout << key.value().public_key().thumbprint() << "\n";
  return kOk;
}

int device_attest(const SigningKey& key, const std::string& challenge, const std::string& origin,
                  const std::string& rp_id, const std::string& name) {
  const std::string client_data = nlohmann::json{
      {"type", "webauthn.create"},
      {"challenge", challenge},
      {"origin", origin}}.dump();
  const auto& pub = key.public_key();
  const auto point = pub.sec1();
  const auto credential_id = ledger::crypto::sha256(point);
  const auto rp_hash = ledger::crypto::sha256(as_bytes(rp_id));
  Bytes auth(rp_hash.begin(), rp_hash.end());
  auth.push_back(0x45);            // UP | UV | AT: present, verified, with a credential
  auth.insert(auth.end(), 4, 0);   // sign count
  auth.insert(auth.end(), 16, 0);  // aaguid: none (a software key)
  auth.push_back(0);
  auth.push_back(static_cast<std::uint8_t>(credential_id.size()));
  auth.insert(auth.end(), credential_id.begin(), credential_id.end());
  const auto cose = cose_key(pub);
  auth.insert(auth.end(), cose.begin(), cose.end());

  const auto client_hash = ledger::crypto::sha256(as_bytes(client_data));
  Bytes signed_data(auth);
  signed_data.insert(signed_data.end(), client_hash.begin(), client_hash.end());
  auto sig = key.sign_p1363(ByteView(signed_data));
  if (!sig) return usage_error("cannot sign");

  const Cbor statement(cbor_new_definite_map(2));
  put(statement.get(), cbor_build_string("alg"), int_item(-7));
  put(statement.get(), cbor_build_string("sig"), bytes_item(der_of_p1363(sig.value())));
  const Cbor object(cbor_new_definite_map(3));
  put(object.get(), cbor_build_string("fmt"), cbor_build_string("packed"));
  put(object.get(), cbor_build_string("attStmt"), cbor_incref(statement.get()));
  put(object.get(), cbor_build_string("authData"), bytes_item(auth));
  nlohmann::json body{{"deviceAttestation", base64url_encode(ByteView(encode(object.get())))},
                      {"clientDataJSON", base64url_encode(std::string_view(client_data))}};
  if (!name.empty()) body["deviceName"] = name;
  std::cout << body.dump() << "\n";
  return kOk;
}

int device_proof(const SigningKey& key, const std::string& token, const std::string& url,
                 const std::string& method, std::string jti, std::int64_t iat) {
  if (jti.empty()) {
    auto raw = ledger::crypto::random_bytes(16);
    if (!raw) return usage_error("no randomness");
    jti = base64url_encode(ByteView(raw.value()));
  }
  auto jwk = key.public_key().jwk("");
  for (const char* member : {"kid", "alg", "use"}) jwk.erase(member);
  const nlohmann::json header{{"typ", "dpop+jwt"}, {"alg", "ES256"}, {"jwk", jwk}};
  const nlohmann::json claims{
      {"jti", jti}, {"htm", method}, {"htu", url}, {"iat", iat}, {"ath", api::dpop::ath_of(token)}};
  auto proof = api::jose::jws_sign_es256(key, header.dump(), claims.dump());
  if (!proof) return usage_error("cannot sign");
  std::cout << proof.value() << "\n";
  return kOk;
}

}  // namespace

int cmd_device(const std::vector<std::string>& args) {
  if (args.empty()) return usage_error("device new | attest | proof (see ledgerctl --help)");
  const auto& action = args[0];
  std::string key_path, challenge, origin, rp_id, name, token, url, method, jti;
  std::int64_t iat = 0;
  po::options_description d("ledgerctl device " + action);
  d.add_options()("key", po::value(&key_path)->required(), "the device key file (PEM)")(
      "challenge", po::value(&challenge), "attest: the challenge ledgerd issued")(
      "origin", po::value(&origin), "attest: ledgerd's --public-url origin")(
      "rp-id", po::value(&rp_id), "attest: ledgerd's --rp-id (default: the origin's host)")(
      "name", po::value(&name), "attest: a device name")("token", po::value(&token),
                                                         "proof: the session token")(
      "url", po::value(&url), "proof: --public-url plus the request's path")(
      "method", po::value(&method)->default_value("POST"), "proof: the request's method")(
      "jti", po::value(&jti), "proof: the proof's id (default: random)")(
      "iat", po::value(&iat), "proof: its time, Unix seconds (default: now)");
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(std::vector<std::string>(args.begin() + 1, args.end()))
                  .options(d)
                  .run(),
              vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(e.what());
  }
  if (action == "new") return device_new(key_path);
  auto key = SigningKey::load_pem(key_path);
  if (!key) return usage_error("cannot read the key " + key_path);
  if (action == "attest") {
    if (challenge.empty() || origin.empty())
      return usage_error("attest needs --challenge, --origin");
    if (rp_id.empty()) {
      const auto host = origin.find("://");
      rp_id = host == std::string::npos ? origin : origin.substr(host + 3);
      rp_id = rp_id.substr(0, rp_id.find_first_of(":/"));
    }
    return device_attest(key.value(), challenge, origin, rp_id, name);
  }
  if (action == "proof") {
    if (token.empty() || url.empty()) return usage_error("proof needs --token and --url");
    if (iat == 0) {
      iat = std::chrono::duration_cast<std::chrono::seconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
    }
    return device_proof(key.value(), token, url, method, jti, iat);
  }
  return usage_error("unknown action '" + action + "': new, attest or proof");
}

}  // namespace sechex::ops
