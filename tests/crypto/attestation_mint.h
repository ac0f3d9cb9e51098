// Synthetic WebAuthn attestation objects from a test CA, for the negative cases no published
// vector covers (issue 14): a wrong challenge, origin or RP, UV unset, an untrusted root, an
// expired chain, a tampered signature, a wrong key type, an extension that does not match.
//
// Everything is built with OpenSSL (keys, certificates, signatures) and libcbor (the attestation
// object); the one hand-written encoding is the Android KeyDescription, whose DER is spelled out
// field by field below because that is the test data. Test-only; not thread-safe.
#pragma once

#include <cbor.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ledger/crypto.h"
#include "ledger/types.h"

namespace sechex::testing::attest {

using Bytes = ledger::Bytes;

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Key = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct X509Free {
  void operator()(X509* c) const { X509_free(c); }
};
using Cert = std::unique_ptr<X509, X509Free>;

inline Key ec_key(const char* curve = "P-256") { return Key(EVP_EC_gen(curve)); }

// The uncompressed point 04 || x || y of an EC key.
inline Bytes point_of(EVP_PKEY* key) {
  Bytes out(133);
  std::size_t n = 0;
  EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out.data(), out.size(),
                                  &n);
  out.resize(n);
  return out;
}

// An ECDSA-SHA256 signature, DER.
inline Bytes sign(EVP_PKEY* key, const Bytes& message) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t n = 0;
  EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key);
  EVP_DigestSign(ctx.get(), nullptr, &n, message.data(), message.size());
  Bytes sig(n);
  EVP_DigestSign(ctx.get(), sig.data(), &n, message.data(), message.size());
  sig.resize(n);
  return sig;
}

struct CertSpec {
  std::string cn = "Test Leaf";
  std::string ou = "Authenticator Attestation";
  bool is_ca = false;
  std::int64_t not_before = 1'700'000'000;                // 2023-11
  std::int64_t not_after = 2'000'000'000;                 // 2033-05
  std::vector<std::pair<std::string, Bytes>> extensions;  // (OID, DER of the value)
};

// A certificate for `subject_key`, signed by `issuer_key` under `issuer` (self-signed when null).
inline Cert certificate(EVP_PKEY* subject_key, EVP_PKEY* issuer_key, X509* issuer,
                        const CertSpec& spec) {
  static long serial = 1;
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_NAME* name = X509_get_subject_name(cert.get());
  const auto add = [&](const char* field, const std::string& value) {
    if (!value.empty()) {
      X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0);
    }
  };
  add("C", "DE");
  add("O", "Sechex Test");
  add("OU", spec.ou);
  add("CN", spec.cn);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(spec.not_before));
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(spec.not_after));
  X509_set_pubkey(cert.get(), subject_key);
  BASIC_CONSTRAINTS* bc = BASIC_CONSTRAINTS_new();
  bc->ca = spec.is_ca ? 1 : 0;
  X509_add1_ext_i2d(cert.get(), NID_basic_constraints, bc, 1, 0);
  BASIC_CONSTRAINTS_free(bc);
  if (spec.is_ca) {
    ASN1_BIT_STRING* usage = ASN1_BIT_STRING_new();
    ASN1_BIT_STRING_set_bit(usage, 5, 1);  // keyCertSign
    ASN1_BIT_STRING_set_bit(usage, 6, 1);  // cRLSign
    X509_add1_ext_i2d(cert.get(), NID_key_usage, usage, 1, 0);
    ASN1_BIT_STRING_free(usage);
  }
  for (const auto& [oid, value] : spec.extensions) {
    ASN1_OBJECT* obj = OBJ_txt2obj(oid.c_str(), 1);
    ASN1_OCTET_STRING* data = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(data, value.data(), static_cast<int>(value.size()));
    X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(nullptr, obj, 0, data);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(data);
    ASN1_OBJECT_free(obj);
  }
  X509_sign(cert.get(), issuer_key, EVP_sha256());
  return cert;
}

inline Bytes der_of(X509* cert) {
  unsigned char* p = nullptr;
  const int n = i2d_X509(cert, &p);
  Bytes out(p, p + n);
  OPENSSL_free(p);
  return out;
}

inline std::string pem_of(X509* cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// A root CA (P-256) and what it signs.
struct TestCa {
  Key key = ec_key();
  Cert cert;
  explicit TestCa(std::int64_t not_after = 2'000'000'000) {
    CertSpec spec;
    spec.cn = "Sechex Test Attestation Root";
    spec.ou = "";
    spec.is_ca = true;
    spec.not_after = not_after;
    cert = certificate(key.get(), key.get(), nullptr, spec);
  }
  Cert issue(EVP_PKEY* subject, const CertSpec& spec) const {
    return certificate(subject, key.get(), cert.get(), spec);
  }
};

// ---- DER, for the Android KeyDescription ----
inline Bytes tlv(Bytes tag, const Bytes& body) {
  Bytes out = std::move(tag);
  if (body.size() < 128) {
    out.push_back(static_cast<std::uint8_t>(body.size()));
  } else if (body.size() < 256) {
    out.insert(out.end(), {0x81, static_cast<std::uint8_t>(body.size())});
  } else {
    out.insert(out.end(), {0x82, static_cast<std::uint8_t>(body.size() >> 8),
                           static_cast<std::uint8_t>(body.size())});
  }
  out.insert(out.end(), body.begin(), body.end());
  return out;
}
inline Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct KeyDescriptionSpec {
  std::uint8_t security_level = 1;  // TEE
  Bytes challenge;
  std::vector<std::uint8_t> hardware_purposes = {2};  // SIGN
  std::optional<std::uint8_t> hardware_origin = 0;    // GENERATED
  bool all_applications = false;                      // in the software list
};
inline Bytes key_description(const KeyDescriptionSpec& s) {
  Bytes purposes;
  for (const auto p : s.hardware_purposes) purposes = cat({purposes, tlv({0x02}, {p})});
  Bytes hardware;
  if (!s.hardware_purposes.empty()) hardware = tlv({0xa1}, tlv({0x31}, purposes));  // [1] SET
  if (s.hardware_origin) {
    hardware =
        cat({hardware, tlv({0xbf, 0x85, 0x3e}, tlv({0x02}, {*s.hardware_origin}))});  // [702]
  }
  const Bytes software =
      s.all_applications ? tlv({0xbf, 0x84, 0x58}, tlv({0x05}, {})) : Bytes{};  // [600] NULL
  return tlv({0x30}, cat({tlv({0x02}, {0x01, 0x90}), tlv({0x0a}, {s.security_level}),
                          tlv({0x02}, {0x01, 0x90}), tlv({0x0a}, {s.security_level}),
                          tlv({0x04}, s.challenge), tlv({0x04}, {}), tlv({0x30}, software),
                          tlv({0x30}, hardware)}));
}

// ---- CBOR: authenticator data and the attestation object ----
struct ItemFree {
  void operator()(cbor_item_t* i) const { cbor_decref(&i); }
};
using Item = std::unique_ptr<cbor_item_t, ItemFree>;

inline Bytes encode(cbor_item_t* item) {
  unsigned char* buffer = nullptr;
  std::size_t size = 0;
  const auto n = cbor_serialize_alloc(item, &buffer, &size);
  Bytes out(buffer, buffer + n);
  std::free(buffer);  // NOLINT(cppcoreguidelines-no-malloc): libcbor's malloc
  return out;
}
inline cbor_item_t* bytes_item(const Bytes& b) { return cbor_build_bytestring(b.data(), b.size()); }
inline cbor_item_t* int_item(std::int64_t v) {
  return v >= 0 ? cbor_build_uint64(static_cast<std::uint64_t>(v))
                : cbor_build_negint64(static_cast<std::uint64_t>(-1 - v));
}
inline void put(cbor_item_t* map, cbor_item_t* key, cbor_item_t* value) {
  cbor_map_add(map, {cbor_move(key), cbor_move(value)});
}

// COSE_Key EC2 of an EC key (crv 1 = P-256; pass 2 for a P-384 key).
inline Bytes cose_key(EVP_PKEY* key, std::int64_t crv = 1, std::int64_t alg = -7) {
  const auto point = point_of(key);
  const std::size_t n = (point.size() - 1) / 2;
  Item map(cbor_new_definite_map(5));
  put(map.get(), int_item(1), int_item(2));
  put(map.get(), int_item(3), int_item(alg));
  put(map.get(), int_item(-1), int_item(crv));
  put(map.get(), int_item(-2), bytes_item(Bytes(point.begin() + 1, point.begin() + 1 + n)));
  put(map.get(), int_item(-3), bytes_item(Bytes(point.begin() + 1 + n, point.end())));
  return encode(map.get());
}

struct AuthDataSpec {
  std::string rp_id = "example.org";
  std::uint8_t flags = 0x45;  // UP | UV | AT
  Bytes aaguid = Bytes(16, 0x2a);
  Bytes credential_id = Bytes(16, 0x07);
  std::uint32_t counter = 1;  // App Attest: 0
};
inline Bytes auth_data(const AuthDataSpec& s, const Bytes& cose) {
  const auto rp = ledger::crypto::sha256(ledger::as_bytes(s.rp_id));
  Bytes out(rp.begin(), rp.end());
  out.push_back(s.flags);
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(s.counter >> (8 * i)));
  out.insert(out.end(), s.aaguid.begin(), s.aaguid.end());
  out.push_back(static_cast<std::uint8_t>(s.credential_id.size() >> 8));
  out.push_back(static_cast<std::uint8_t>(s.credential_id.size()));
  out.insert(out.end(), s.credential_id.begin(), s.credential_id.end());
  out.insert(out.end(), cose.begin(), cose.end());
  return out;
}

// attStmt entries: alg (when set), sig (when not empty), x5c (when not empty).
struct Statement {
  std::optional<std::int64_t> alg = -7;
  Bytes sig;
  std::vector<Bytes> x5c;
};
inline Bytes attestation_object(const std::string& fmt, const Statement& st, const Bytes& auth) {
  Item stmt(cbor_new_definite_map(3));
  if (st.alg) put(stmt.get(), cbor_build_string("alg"), int_item(*st.alg));
  if (!st.sig.empty()) put(stmt.get(), cbor_build_string("sig"), bytes_item(st.sig));
  if (!st.x5c.empty()) {
    cbor_item_t* chain = cbor_new_definite_array(st.x5c.size());
    for (const auto& der : st.x5c) cbor_array_push(chain, cbor_move(bytes_item(der)));
    put(stmt.get(), cbor_build_string("x5c"), chain);
  }
  Item obj(cbor_new_definite_map(3));
  put(obj.get(), cbor_build_string("fmt"), cbor_build_string(fmt.c_str()));
  cbor_map_add(obj.get(), {cbor_move(cbor_build_string("attStmt")), stmt.get()});
  put(obj.get(), cbor_build_string("authData"), bytes_item(auth));
  return encode(obj.get());
}

inline Bytes concat(const Bytes& a, const Bytes& b) { return cat({a, b}); }

}  // namespace sechex::testing::attest
