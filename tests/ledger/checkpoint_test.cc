// Signed-note checkpoints (C2SP signed-note, tlog-checkpoint) and key rotation.
#include "ledger/checkpoint.h"

#include <gtest/gtest.h>

#include "ledger/data_dir.h"
#include "ledger/verify.h"
#include "support/test_util.h"

namespace sechex::ledger {
namespace {

// Reference vector of the signed-note format: golang.org/x/mod/sumdb/note note_test.go (the
// PeterNeumann key). Ed25519 is deterministic, so signing the same text with the same seed
// must give the same bytes as the reference implementation.
constexpr const char* kGoVerifierKey =
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
constexpr const char* kGoSeedKeyData = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
constexpr const char* kGoText =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
constexpr const char* kGoSignatureLine =
    "\xE2\x80\x94 PeterNeumann "
    "x08go/ZJkuBS9UG/"
    "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

CheckpointSigner go_signer() {
  Bytes keydata;
  EXPECT_TRUE(crypto::base64_decode(kGoSeedKeyData, keydata));
  EXPECT_EQ(keydata.size(), 33u);
  auto kp = crypto::ed25519_from_seed(ByteView(keydata).subspan(1)).value();
  return CheckpointSigner("PeterNeumann", std::move(kp));
}

TEST(SignedNote, SigningMatchesTheGoReferenceVectorByteForByte) {
  const auto signer = go_signer();
  EXPECT_EQ(signer.verifier_key(), kGoVerifierKey);
  EXPECT_EQ(signer.key_id(), 0xc74f20a3u);
  EXPECT_EQ(signer.sign_text(kGoText).value(), std::string(kGoText) + "\n" + kGoSignatureLine);
}

TEST(SignedNote, VerifiesTheReferenceNoteAndRejectsAlteredOnes) {
  TrustedKeys keys;
  ASSERT_TRUE(keys.add(kGoVerifierKey));
  const std::string note = std::string(kGoText) + "\n" + kGoSignatureLine;
  const auto ok = keys.verify_note(note);
  EXPECT_EQ(ok.status, TrustedKeys::Status::ok);
  EXPECT_EQ(ok.text, kGoText);
  EXPECT_EQ(ok.key_name, "PeterNeumann");

  auto altered = note;
  altered[3] = 'X';
  EXPECT_EQ(keys.verify_note(altered).status, TrustedKeys::Status::bad_signature);
  EXPECT_EQ(keys.verify_note(kGoText).status, TrustedKeys::Status::malformed);
  EXPECT_EQ(keys.verify_note(note.substr(0, note.size() - 1)).status,
            TrustedKeys::Status::malformed);
  TrustedKeys none;
  ASSERT_TRUE(none.add(testing::make_signer("other").verifier_key()));
  EXPECT_EQ(none.verify_note(note).status, TrustedKeys::Status::unknown_key);
}

TEST(SignedNote, VerifierKeyLinesAreCheckedStrictly) {
  TrustedKeys keys;
  EXPECT_FALSE(keys.add("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"));
  EXPECT_FALSE(keys.add("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T"));
  EXPECT_FALSE(keys.add("PeterNeumann+c74f20a3"));
  EXPECT_FALSE(keys.add("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"));
  EXPECT_TRUE(keys.empty());
}

TEST(Checkpoint, LegacyBodyIsOriginSizeAndBase64ChainHash) {
  Checkpoint cp{"sechex-ledger/abc/3", 42, Hash{}, {}};
  cp.hash[0] = 0xff;
  const auto body = checkpoint_body(cp);
  EXPECT_EQ(body, "sechex-ledger/abc/3\n42\n/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
  const auto parsed = parse_checkpoint_body(body);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->size, 42u);
  EXPECT_EQ(parsed->hash, cp.hash);
  EXPECT_FALSE(parse_checkpoint_body("o\n042\n" + crypto::base64_encode(cp.hash) + "\n"));
  EXPECT_FALSE(parse_checkpoint_body("o\n-1\n" + crypto::base64_encode(cp.hash) + "\n"));
  EXPECT_FALSE(parse_checkpoint_body("o\n1\nAAAA\n"));
}

// C2SP tlog-checkpoint: the third line is the Merkle root; the chain head rides in an extension
// line, so a generic checkpoint reader gets (origin, size, root) and we get both.
TEST(Checkpoint, BodyWithATreeIsOriginSizeRootThenTheChainExtensionLine) {
  Checkpoint cp{"sechex-ledger/abc/3", 42, Hash{}, Hash{}};
  cp.hash[0] = 0xff;
  (*cp.root)[31] = 0x01;
  const auto body = checkpoint_body(cp);
  EXPECT_EQ(body,
            "sechex-ledger/abc/3\n42\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=\n"
            "chain /wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
  const auto parsed = parse_checkpoint_body(body);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->hash, cp.hash);
  ASSERT_TRUE(parsed->root);
  EXPECT_EQ(*parsed->root, *cp.root);
  // Signed, it still verifies and parses; a fifth line or another extension is refused.
  auto signer = CheckpointSigner("k", crypto::ed25519_generate().value());
  TrustedKeys keys;
  ASSERT_TRUE(keys.add(signer.verifier_key()));
  const auto check = keys.verify(signer.sign(cp).value());
  EXPECT_EQ(check.status, TrustedKeys::Status::ok);
  EXPECT_EQ(check.checkpoint.root, cp.root);
  EXPECT_FALSE(parse_checkpoint_body(body + "more\n"));
  EXPECT_FALSE(parse_checkpoint_body("o\n1\n" + crypto::base64_encode(cp.hash) + "\nother x\n"));
  EXPECT_EQ(keys.verify(signer.sign_text(body + "more\n").value()).status,
            TrustedKeys::Status::malformed);
}

TEST(Checkpoint, RotationKeepsOldCheckpointsVerifiable) {
  testing::TempDir dir;
  DataDir dd{dir.path()};
  ASSERT_TRUE(init_data_dir(dd, 2, "rot", nullptr));
  auto open_writer = [&](const CheckpointSigner& signer) {
    LogOptions o;
    o.path = dd.log_path();
    o.signer = &signer;
    o.checkpoints.every_records = 2;
    return LogStore::open(o).value();
  };
  {
    const auto old_signer = CheckpointSigner::load(dd.signing_key(), "rot").value();
    auto log = open_writer(old_signer);
    testing::append_n(*log, "s", 4);
  }
  const auto new_key = rotate_signing_key(dd, "rot");
  ASSERT_TRUE(new_key);
  {
    const auto new_signer = CheckpointSigner::load(dd.signing_key(), "rot").value();
    EXPECT_EQ(new_signer.verifier_key(), new_key.value());
    auto log = open_writer(new_signer);
    testing::append_n(*log, "s", 4);
  }
  const auto trusted = TrustedKeys::load_file(dd.verifier_keys()).value();
  EXPECT_EQ(trusted.size(), 2u);
  LogOptions ro;
  ro.path = dd.log_path();
  ro.mode = LogOptions::Mode::read_only;
  auto log = LogStore::open(ro).value();
  VerifyOptions vo;
  vo.trusted = &trusted;
  const auto report = verify_log(*log, vo);
  EXPECT_EQ(report.outcome, VerifyReport::Outcome::verified);
  EXPECT_EQ(report.checkpoints, 4u);
  // With only the new key, the old checkpoints are flagged, not silently accepted.
  TrustedKeys only_new;
  ASSERT_TRUE(only_new.add(new_key.value()));
  vo.trusted = &only_new;
  EXPECT_EQ(verify_log(*log, vo).fault->reason, "checkpoint_unknown_key");
}

}  // namespace
}  // namespace sechex::ledger
