// Crypto wrappers against published known answers (FIPS 180-2, RFC 4231, RFC 4648, RFC 8032,
// the GCM specification's test cases) and the strictness the ledger relies on: malformed input
// is refused, never half-accepted.
#include "ledger/crypto.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/temp_dir.h"

namespace sechex::ledger::crypto {
namespace {

Bytes h(std::string_view hex) {
  Bytes out;
  EXPECT_TRUE(from_hex(hex, out)) << hex;
  return out;
}

Bytes b(std::string_view s) { return Bytes(s.begin(), s.end()); }

// Self-contained so this test needs nothing but the crypto wrappers.
using sechex::testing::read_file;
using sechex::testing::TempDir;
using sechex::testing::write_file;

// ---------------------------------------------------------------------------------------------
// SHA-256

TEST(Sha256, MatchesFips180Examples) {
  EXPECT_EQ(to_hex(sha256(b("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(to_hex(sha256(b("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(to_hex(sha256({})), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, IncrementalEqualsOneShotForEverySplit) {
  const Bytes msg = b("The quick brown fox jumps over the lazy dog, repeatedly, 0123456789");
  const Hash expected = sha256(msg);
  for (std::size_t split = 0; split <= msg.size(); ++split) {
    Sha256 inc;
    inc.update(ByteView(msg).first(split));
    inc.update({});
    inc.update(ByteView(msg).subspan(split));
    EXPECT_EQ(inc.finish(), expected) << "split at " << split;
  }
}

TEST(Sha256, FinishStartsAFreshMessage) {
  Sha256 inc;
  inc.update(b("first message"));
  (void)inc.finish();
  inc.update(b("abc"));
  EXPECT_EQ(inc.finish(), sha256(b("abc")));
  EXPECT_EQ(inc.finish(), sha256({}));
}

// ---------------------------------------------------------------------------------------------
// HMAC-SHA-256

TEST(HmacSha256, MatchesRfc4231TestCases1And2) {
  EXPECT_EQ(to_hex(hmac_sha256(Bytes(20, 0x0b), b("Hi There")).value()),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(to_hex(hmac_sha256(b("Jefe"), b("what do ya want for nothing?")).value()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// The keyed context (crypto.h) gives exactly the one-shot HMAC: RFC 4231 cases 1, 2 and 6, the
// empty key, and many keys and lengths, also with one key used from several threads.
TEST(HmacSha256, AKeyedContextMatchesRfc4231AndTheOneShotHmac) {
  const auto keyed = [](const Bytes& key) { return HmacSha256Key::create(key).value(); };
  EXPECT_EQ(to_hex(keyed(Bytes(20, 0x0b)).mac(b("Hi There")).value()),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(to_hex(keyed(b("Jefe")).mac(b("what do ya want for nothing?")).value()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(to_hex(keyed(Bytes(131, 0xaa))
                       .mac(b("Test Using Larger Than Block-Size Key - Hash Key First"))
                       .value()),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  EXPECT_EQ(keyed({}).mac(b("x")).value(), hmac_sha256({}, b("x")).value());
  for (std::size_t key_len : {1u, 32u, 64u, 65u, 200u}) {
    const Bytes key(key_len, static_cast<std::uint8_t>(key_len));
    const auto k = keyed(key);
    for (std::size_t len : {0u, 1u, 55u, 56u, 64u, 1000u}) {
      const Bytes data(len, 0x5c);
      EXPECT_EQ(k.mac(data).value(), hmac_sha256(key, data).value()) << key_len << "/" << len;
    }
  }
  const auto shared = keyed(b("shared key"));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const auto data = b("message " + std::to_string(t * 1000 + i));
        const auto copy = shared;  // copies share the keyed context
        if (copy.mac(data).value() != hmac_sha256(b("shared key"), data).value()) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(HmacSha256, HashesKeysLongerThanABlockPerRfc4231TestCase6) {
  EXPECT_EQ(to_hex(hmac_sha256(Bytes(131, 0xaa),
                               b("Test Using Larger Than Block-Size Key - Hash Key First"))
                       .value()),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(HmacSha256, AcceptsAnEmptyKey) {
  // An empty key is legal HMAC (it is zero-padded to the block size), and must not be confused
  // with "no key given".
  EXPECT_EQ(to_hex(hmac_sha256({}, {}).value()),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  EXPECT_EQ(hmac_sha256({}, b("x")).value(), hmac_sha256(Bytes(64, 0), b("x")).value());
}

// ---------------------------------------------------------------------------------------------
// Hex

TEST(Hex, RoundTripsEveryByteValueAsLowercase) {
  Bytes all(256);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint8_t>(i);
  const std::string hex = to_hex(all);
  EXPECT_EQ(hex.size(), 512u);
  EXPECT_EQ(hex.substr(0, 8), "00010203");
  EXPECT_EQ(hex.substr(504), "fcfdfeff");
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos);
  Bytes back;
  ASSERT_TRUE(from_hex(hex, back));
  EXPECT_EQ(back, all);
  EXPECT_EQ(to_hex({}), "");
}

TEST(Hex, AcceptsUpperAndMixedCase) {
  Bytes out;
  ASSERT_TRUE(from_hex("00fFaBCD", out));
  EXPECT_EQ(out, (Bytes{0x00, 0xff, 0xab, 0xcd}));
  ASSERT_TRUE(from_hex("", out));
  EXPECT_TRUE(out.empty());
}

TEST(Hex, RejectsOddLengthAndNonHexAndLeavesOutputUntouched) {
  const std::string_view kBad[] = {"a",
                                   "abc",
                                   "zz",
                                   "0g",
                                   "g0",
                                   " 00",
                                   "00 ",
                                   "0x00",
                                   "-1",
                                   "+1",
                                   "ab\ncd",
                                   "\xc3\xa9\xc3\xa9",
                                   std::string_view("00\0"
                                                    "0",
                                                    4)};
  for (const auto bad : kBad) {
    Bytes out{7};
    EXPECT_FALSE(from_hex(bad, out)) << bad;
    EXPECT_EQ(out, Bytes{7}) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// Base64

TEST(Base64, MatchesRfc4648Section10) {
  const std::pair<const char*, const char*> cases[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : cases) {
    EXPECT_EQ(base64_encode(b(plain)), encoded);
    Bytes out{1, 2, 3};
    ASSERT_TRUE(base64_decode(encoded, out)) << encoded;
    EXPECT_EQ(out, b(plain)) << encoded;
  }
}

TEST(Base64, RoundTripsEveryLengthAndAllSixtyFourSymbols) {
  const Bytes data = random_bytes(200).value();
  for (std::size_t n = 0; n <= data.size(); ++n) {
    const auto slice = ByteView(data).first(n);
    const std::string text = base64_encode(slice);
    EXPECT_EQ(text.size(), (n + 2) / 3 * 4);
    Bytes back;
    ASSERT_TRUE(base64_decode(text, back)) << text;
    EXPECT_EQ(back, Bytes(slice.begin(), slice.end()));
  }
  // 0x00 0x10 0x83 ... encodes to the alphabet in order, so every symbol maps both ways.
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  Bytes decoded;
  ASSERT_TRUE(base64_decode(alphabet, decoded));
  EXPECT_EQ(base64_encode(decoded), alphabet);
}

TEST(Base64, RejectsAnythingButCanonicalPaddedStandardBase64) {
  const std::string_view kBad[] = {
      "Zg",                          // missing padding
      "Zg=",                         // short padding
      "Zg===",                       // too much padding, bad length
      "Z===",                        // three padding characters
      "====",                        // nothing but padding
      "=Zg=",                        // padding first
      "Zm=v",                        // padding inside a quantum
      "Zm9vYg=x",                    // data after padding
      "Zg==Zm9v",                    // padding before the end
      "Zm9 ",                        // whitespace
      "Zm9v\nYg==",                  // line break
      "Zm9v Yg==",                   // space
      " Zm9vYg==",                   // leading space
      "Zm9vYg==\n",                  // trailing newline
      "ab-_",                        // URL-safe alphabet
      "Zm9*",                        // not in any alphabet
      "Zh==",                        // unused bits set (non-canonical "f")
      "Zm9=",                        // unused bits set (non-canonical "fo")
      "\xc3\xa9\xc3\xa9",            // non-ASCII
      std::string_view("Zm9\0", 4),  // embedded NUL
  };
  for (const auto bad : kBad) {
    Bytes out{7};
    EXPECT_FALSE(base64_decode(bad, out)) << '"' << bad << '"';
    EXPECT_EQ(out, Bytes{7}) << "output changed for " << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// constant_time_equal, random_bytes

TEST(ConstantTimeEqual, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal(Bytes{1, 2, 3}, Bytes{1, 2, 3}));
  EXPECT_TRUE(constant_time_equal({}, {}));
  EXPECT_FALSE(constant_time_equal(Bytes{1, 2, 3}, Bytes{0, 2, 3}));
  EXPECT_FALSE(constant_time_equal(Bytes{1, 2, 3}, Bytes{1, 2, 4}));
  EXPECT_FALSE(constant_time_equal(Bytes{1, 2}, Bytes{1, 2, 3}));
  EXPECT_FALSE(constant_time_equal(Bytes{1, 2, 3}, Bytes{1, 2}));
  EXPECT_FALSE(constant_time_equal({}, Bytes{0}));
}

TEST(RandomBytes, GivesDistinctValuesOfTheRequestedSize) {
  for (const std::size_t n : {0u, 1u, 16u, 32u, 1000u}) {
    EXPECT_EQ(random_bytes(n).value().size(), n);
  }
  std::set<Bytes> seen;
  for (int i = 0; i < 100; ++i) seen.insert(random_bytes(16).value());
  EXPECT_EQ(seen.size(), 100u);
  // A CSPRNG that returned zeros would still give "the right size".
  EXPECT_NE(random_bytes(32).value(), Bytes(32, 0));
}

// ---------------------------------------------------------------------------------------------
// Ed25519

struct Rfc8032Case {
  const char* name;
  const char* seed;
  const char* public_key;
  const char* message;
  const char* signature;
};

// RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2 (the single byte 0x72).
constexpr Rfc8032Case kRfc8032[] = {
    {"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
     "1cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f36"
     "13d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
};

TEST(Ed25519, DerivesPublicKeyAndSignsPerRfc8032Tests1And2) {
  for (const auto& c : kRfc8032) {
    SCOPED_TRACE(c.name);
    const auto key = ed25519_from_seed(h(c.seed)).value();
    EXPECT_EQ(to_hex(key.seed.view()), c.seed);
    EXPECT_EQ(to_hex(key.public_key), c.public_key);
    const Bytes msg = h(c.message);
    const auto sig = ed25519_sign(key, msg).value();
    EXPECT_EQ(to_hex(sig), c.signature);
    EXPECT_TRUE(ed25519_verify(h(c.public_key), msg, h(c.signature)));
  }
}

TEST(Ed25519, VerifyRejectsAnyChangeToKeyMessageOrSignature) {
  const auto& c = kRfc8032[1];
  const Bytes pub = h(c.public_key), msg = h(c.message), sig = h(c.signature);
  ASSERT_TRUE(ed25519_verify(pub, msg, sig));
  EXPECT_FALSE(ed25519_verify(h(kRfc8032[0].public_key), msg, sig));
  EXPECT_FALSE(ed25519_verify(pub, Bytes{0x73}, sig));
  EXPECT_FALSE(ed25519_verify(pub, {}, sig));
  for (std::size_t i = 0; i < sig.size(); ++i) {
    Bytes bad = sig;
    bad[i] ^= 0x01;
    EXPECT_FALSE(ed25519_verify(pub, msg, bad)) << "bit flipped in byte " << i;
  }
}

TEST(Ed25519, VerifyReturnsFalseForMalformedKeysAndSignatures) {
  const auto& c = kRfc8032[1];
  const Bytes pub = h(c.public_key), msg = h(c.message), sig = h(c.signature);
  for (const std::size_t n : {0u, 1u, 31u, 33u, 64u}) {
    Bytes key = pub;
    key.resize(n, 0);
    EXPECT_FALSE(ed25519_verify(key, msg, sig)) << "key of " << n << " bytes";
  }
  for (const std::size_t n : {0u, 32u, 63u, 65u, 128u}) {
    Bytes s = sig;
    s.resize(n, 0);
    EXPECT_FALSE(ed25519_verify(pub, msg, s)) << "signature of " << n << " bytes";
  }
  // All-ones is not a valid curve point encoding.
  EXPECT_FALSE(ed25519_verify(Bytes(32, 0xff), msg, sig));
}

TEST(Ed25519, RefusesSeedsOfTheWrongSize) {
  for (const std::size_t n : {0u, 31u, 33u, 64u}) {
    const auto r = ed25519_from_seed(Bytes(n, 1));
    ASSERT_FALSE(r) << n;
    EXPECT_EQ(r.error(), Errc::key_invalid) << n;
  }
  const Ed25519KeyPair broken{SecretBytes(Bytes(31, 1)), Bytes(32, 0)};
  EXPECT_EQ(ed25519_sign(broken, b("m")).error(), Errc::key_invalid);
}

TEST(Ed25519, GeneratedKeysAreDistinctAndSignVerifiably) {
  const auto k1 = ed25519_generate().value(), k2 = ed25519_generate().value();
  EXPECT_EQ(k1.seed.size(), 32u);
  EXPECT_EQ(k1.public_key.size(), 32u);
  EXPECT_NE(k1.public_key, k2.public_key);
  EXPECT_EQ(ed25519_from_seed(k1.seed.view()).value().public_key, k1.public_key);
  const Bytes msg = b("checkpoint body");
  const auto sig = ed25519_sign(k1, msg).value();
  EXPECT_TRUE(ed25519_verify(k1.public_key, msg, sig));
  EXPECT_FALSE(ed25519_verify(k2.public_key, msg, sig));
}

// ---------------------------------------------------------------------------------------------
// Ed25519 PEM files

TEST(Ed25519Pem, RoundTripsThroughAPrivatePkcs8File) {
  TempDir dir;
  const auto path = dir.sub("signing.pem");
  const auto key = ed25519_from_seed(h(kRfc8032[0].seed)).value();
  // Even with a permissive umask the file must come out owner-only.
  const mode_t old_umask = ::umask(0);
  const auto saved = ed25519_save_pem(key, path);
  ::umask(old_umask);
  ASSERT_TRUE(saved) << saved.error().message();

  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(read_file(path).rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u) << "not PKCS#8";

  const auto loaded = ed25519_load_pem(path).value();
  EXPECT_EQ(to_hex(loaded.seed.view()), kRfc8032[0].seed);
  EXPECT_EQ(loaded.public_key, key.public_key);

  // Nothing else (no temporary file) is left in the directory.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1u);
}

TEST(Ed25519Pem, SavedFileIsReadableByOpenSsl) {
  TempDir dir;
  const auto path = dir.sub("k.pem");
  const auto key = ed25519_generate().value();
  ASSERT_TRUE(ed25519_save_pem(key, path));
  std::FILE* f = std::fopen(path.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  EVP_PKEY* pkey = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  ASSERT_NE(pkey, nullptr);
  EXPECT_EQ(EVP_PKEY_is_a(pkey, "ED25519"), 1);
  Bytes pub(32);
  std::size_t len = pub.size();
  EXPECT_EQ(EVP_PKEY_get_raw_public_key(pkey, pub.data(), &len), 1);
  EVP_PKEY_free(pkey);
  EXPECT_EQ(pub, key.public_key);
}

TEST(Ed25519Pem, SaveNeverReplacesAnExistingFile) {
  TempDir dir;
  const auto path = dir.sub("k.pem");
  const auto key = ed25519_generate().value();
  ASSERT_TRUE(ed25519_save_pem(key, path));
  const std::string before = read_file(path);
  EXPECT_FALSE(ed25519_save_pem(ed25519_generate().value(), path));
  EXPECT_EQ(read_file(path), before);
  EXPECT_EQ(ed25519_load_pem(path).value().public_key, key.public_key);

  write_file(dir.sub("other"), "not a key");
  EXPECT_FALSE(ed25519_save_pem(key, dir.sub("other")));
  EXPECT_EQ(read_file(dir.sub("other")), "not a key");
}

TEST(Ed25519Pem, SaveIntoAMissingDirectoryIsAnIoError) {
  TempDir dir;
  const auto r = ed25519_save_pem(ed25519_generate().value(), dir.sub("no/such/dir/k.pem"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::io_error);
}

TEST(Ed25519Pem, LoadReportsMissingFilesAsKeyMissing) {
  TempDir dir;
  EXPECT_EQ(ed25519_load_pem(dir.sub("missing.pem")).error(), Errc::key_missing);
  EXPECT_EQ(ed25519_load_pem(dir.sub("missing/dir.pem")).error(), Errc::key_missing);
}

TEST(Ed25519Pem, LoadRefusesGarbageAndOtherKeyTypes) {
  TempDir dir;
  write_file(dir.sub("empty.pem"), "");
  write_file(dir.sub("garbage.pem"),
             "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  EXPECT_EQ(ed25519_load_pem(dir.sub("empty.pem")).error(), Errc::key_invalid);
  EXPECT_EQ(ed25519_load_pem(dir.sub("garbage.pem")).error(), Errc::key_invalid);

  // A well-formed X25519 key is still not a signing key.
  EVP_PKEY* x25519 = EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519");
  ASSERT_NE(x25519, nullptr);
  std::FILE* f = std::fopen(dir.sub("x25519.pem").c_str(), "wb");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(PEM_write_PrivateKey(f, x25519, nullptr, nullptr, 0, nullptr, nullptr), 1);
  std::fclose(f);
  EVP_PKEY_free(x25519);
  EXPECT_EQ(ed25519_load_pem(dir.sub("x25519.pem")).error(), Errc::key_invalid);
}

TEST(Ed25519Pem, LoadRefusesEncryptedKeysWithoutPromptingForAPassphrase) {
  TempDir dir;
  const auto key = ed25519_generate().value();
  EVP_PKEY* pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, key.seed.view().data(),
                                                key.seed.size());
  ASSERT_NE(pkey, nullptr);
  const std::string path = dir.sub("encrypted.pem");
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  char pass[] = "correct horse";
  EXPECT_EQ(PEM_write_PKCS8PrivateKey(f, pkey, EVP_aes_256_cbc(), pass, sizeof(pass) - 1, nullptr,
                                      nullptr),
            1);
  std::fclose(f);
  EVP_PKEY_free(pkey);
  ASSERT_NE(read_file(path).find("ENCRYPTED"), std::string::npos);
  // Would block on the terminal here if the default passphrase prompt were used.
  EXPECT_EQ(ed25519_load_pem(path).error(), Errc::key_invalid);
}

// ---------------------------------------------------------------------------------------------
// OpenSSL error queue

TEST(OpenSslErrors, FailuresLeaveNothingOnTheThreadErrorQueue) {
  // A stale entry would be picked up by the next OpenSSL user on this thread (e.g. SSL_get_error).
  ERR_clear_error();
  TempDir dir;
  write_file(dir.sub("garbage.pem"),
             "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  EXPECT_FALSE(ed25519_load_pem(dir.sub("garbage.pem")));
  EXPECT_FALSE(ed25519_verify(Bytes(32, 0xff), b("m"), Bytes(64, 0)));
  EXPECT_FALSE(aes_gcm_open(Bytes(32, 1), Bytes(12, 0), {}, Bytes(20, 0)));
  EXPECT_EQ(ERR_peek_error(), 0ul);

  // Entries the caller had queued before are not ours to drop.
  ERR_raise(ERR_LIB_USER, 42);
  EXPECT_FALSE(ed25519_load_pem(dir.sub("garbage.pem")));
  EXPECT_EQ(ERR_GET_REASON(ERR_peek_last_error()), 42);
  ERR_clear_error();
}

// ---------------------------------------------------------------------------------------------
// AES-256-GCM

TEST(AesGcm, MatchesGcmSpecTestCases13And14) {
  // McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13 and 14: AES-256 with an
  // all-zero key and 96-bit all-zero IV.
  const Bytes key(32, 0), iv(12, 0);
  EXPECT_EQ(to_hex(aes_gcm_seal(key, iv, {}, {}).value()), "530f8afbc74536b9a963b4f1c4cb738b");
  EXPECT_EQ(to_hex(aes_gcm_seal(key, iv, {}, Bytes(16, 0)).value()),
            "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
  EXPECT_EQ(aes_gcm_open(key, iv, {},
                         h("cea7403d4d606b6e074ec5d3baf39d18"
                           "d0d1c8a799996bf0265b98b5d48ab919"))
                .value(),
            Bytes(16, 0));
}

TEST(AesGcm, RoundTripsWithCiphertextPlusSixteenByteTag) {
  const Bytes key = random_bytes(32).value(), nonce = random_bytes(12).value(), aad = b("subject");
  for (const std::size_t n : {0u, 1u, 15u, 16u, 17u, 1000u}) {
    const Bytes text = random_bytes(n).value();
    const auto sealed = aes_gcm_seal(key, nonce, aad, text).value();
    EXPECT_EQ(sealed.size(), n + 16);
    EXPECT_EQ(aes_gcm_open(key, nonce, aad, sealed).value(), text) << n;
  }
}

TEST(AesGcm, AcceptsNoncesFromOneTo128Bytes) {
  const Bytes key(32, 3), text = b("personal data");
  std::set<Bytes> distinct;
  for (const std::size_t n : {1u, 8u, 12u, 16u, 64u, 128u}) {
    const Bytes nonce(n, 5);
    const auto sealed = aes_gcm_seal(key, nonce, {}, text).value();
    EXPECT_EQ(aes_gcm_open(key, nonce, {}, sealed).value(), text) << n;
    distinct.insert(sealed);
  }
  // Each length is a different IV (non-96-bit IVs are hashed), not a truncation or padding.
  EXPECT_EQ(distinct.size(), 6u);
}

TEST(AesGcm, RefusesNoncesLongerThanOpenSslSupports) {
  const Bytes key(32, 3), nonce(129, 5), text = b("personal data");
  EXPECT_EQ(aes_gcm_seal(key, nonce, {}, text).error(), Errc::invalid_argument);
  EXPECT_EQ(aes_gcm_open(key, nonce, {}, Bytes(32, 0)).error(), Errc::invalid_argument);
}

TEST(AesGcm, OpenFailsAuthenticationOnAnyTamperedByte) {
  const Bytes key(32, 1), nonce(12, 2), aad{1, 2, 3};
  const Bytes text = b("personal data");
  const auto sealed = aes_gcm_seal(key, nonce, aad, text).value();
  ASSERT_EQ(sealed.size(), text.size() + 16);
  for (std::size_t i = 0; i < sealed.size(); ++i) {
    Bytes bad = sealed;
    bad[i] ^= 0x80;
    const auto r = aes_gcm_open(key, nonce, aad, bad);
    ASSERT_FALSE(r) << (i < text.size() ? "ciphertext" : "tag") << " byte " << i;
    EXPECT_EQ(r.error(), Errc::authentication_failed) << i;
  }
}

TEST(AesGcm, OpenFailsAuthenticationForWrongKeyNonceOrAad) {
  const Bytes key(32, 1), nonce(12, 2), aad{1, 2, 3};
  const auto sealed = aes_gcm_seal(key, nonce, aad, b("personal data")).value();
  EXPECT_EQ(aes_gcm_open(key, nonce, Bytes{1, 2}, sealed).error(), Errc::authentication_failed);
  EXPECT_EQ(aes_gcm_open(key, nonce, Bytes{1, 2, 4}, sealed).error(), Errc::authentication_failed);
  EXPECT_EQ(aes_gcm_open(key, nonce, {}, sealed).error(), Errc::authentication_failed);
  EXPECT_EQ(aes_gcm_open(Bytes(32, 9), nonce, aad, sealed).error(), Errc::authentication_failed);
  EXPECT_EQ(aes_gcm_open(key, Bytes(12, 3), aad, sealed).error(), Errc::authentication_failed);
  EXPECT_EQ(aes_gcm_open(key, Bytes(13, 2), aad, sealed).error(), Errc::authentication_failed);
}

TEST(AesGcm, OpenRefusesInputShorterThanATag) {
  const Bytes key(32, 1), nonce(12, 2);
  const auto sealed = aes_gcm_seal(key, nonce, {}, b("0123456789")).value();
  for (std::size_t n = 0; n < 16; ++n) {
    EXPECT_EQ(aes_gcm_open(key, nonce, {}, ByteView(sealed).first(n)).error(),
              Errc::authentication_failed)
        << n;
  }
  // Dropping bytes from the end (a truncated tag) must not verify either.
  EXPECT_EQ(aes_gcm_open(key, nonce, {}, ByteView(sealed).first(sealed.size() - 1)).error(),
            Errc::authentication_failed);
}

TEST(AesGcm, RefusesKeysOtherThan256BitsAndEmptyNonces) {
  const Bytes nonce(12, 2), text = b("x");
  const auto sealed = aes_gcm_seal(Bytes(32, 1), nonce, {}, text).value();
  for (const std::size_t n : {0u, 16u, 24u, 31u, 33u, 64u}) {
    EXPECT_EQ(aes_gcm_seal(Bytes(n, 1), nonce, {}, text).error(), Errc::invalid_argument) << n;
    EXPECT_EQ(aes_gcm_open(Bytes(n, 1), nonce, {}, sealed).error(), Errc::invalid_argument) << n;
  }
  EXPECT_EQ(aes_gcm_seal(Bytes(32, 1), {}, {}, text).error(), Errc::invalid_argument);
  EXPECT_EQ(aes_gcm_open(Bytes(32, 1), {}, {}, sealed).error(), Errc::invalid_argument);
}

}  // namespace
}  // namespace sechex::ledger::crypto
