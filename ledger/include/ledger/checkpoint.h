// Signed checkpoints in the C2SP signed-note / tlog-checkpoint format.
//
// Note text (every line ends in "\n"):
//
//   <origin>                      "sechex-ledger/<ledger id>/<partition>"
//   <size>                        number of records covered (decimal)
//   <base64 root>                 RFC 6962 Merkle tree root over the partition's first <size>
//                                 records (leaf data = the stored record bytes, record.h)
//   chain <base64 hash>           extension line: hash[size-1] of the partition's chain
//   <blank line>
//   — <key name> <base64(key id (4 bytes, big-endian) || Ed25519 signature (64 bytes))>
//
// So a C2SP tlog-checkpoint reader sees (origin, size, root hash) and our verifier also gets the
// chain head. Checkpoints written before the tree existed (and those of the Kafka log, which
// keeps no tree yet) have no extension line and the chain head on the third line; they parse
// with `root` unset.
//
// The signature covers the text up to and including the blank line's preceding "\n" (the
// note body). key id = first 4 bytes of SHA-256(name || "\n" || 0x01 || public key), where 0x01
// is the signed-note algorithm byte for Ed25519. Verifier keys are written as
// "<name>+<8 hex digits key id>+<base64(0x01 || public key)>", one per line in a key file, so
// a third party holding only that line can check an exported checkpoint.
//
// Rotation: a new signing key gets a new name or id; verifiers keep the old verifier key lines,
// so checkpoints signed before the rotation stay verifiable.
//
// Thread-safety: CheckpointSigner and TrustedKeys are immutable after construction and safe to
// share between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/crypto.h"
#include "ledger/result.h"
#include "ledger/types.h"

namespace sechex::ledger {

struct Checkpoint {
  std::string origin;
  std::uint64_t size = 0;
  Hash hash{};               // chain head: hash[size-1]
  std::optional<Hash> root;  // Merkle tree root at `size`, when the log keeps a tree
};

std::string checkpoint_origin(std::string_view ledger_id, Partition partition);
std::string checkpoint_body(const Checkpoint& cp);
// Parses the body (with or without signatures after it): the three-line legacy form or the
// four-line form with the chain extension line; anything else is nullopt.
std::optional<Checkpoint> parse_checkpoint_body(std::string_view note);

// A key name is non-empty, printable ASCII, with no spaces and no '+'.
bool valid_key_name(std::string_view name);
std::uint32_t note_key_id(std::string_view name, ByteView public_key);
std::string verifier_key_text(std::string_view name, ByteView public_key);

class CheckpointSigner {
 public:
  // Loads an Ed25519 PEM private key; Errc::key_missing / key_invalid on failure.
  static Result<CheckpointSigner> load(const std::string& pem_path, std::string name);
  CheckpointSigner(std::string name, crypto::Ed25519KeyPair key);

  // The complete signed note for `cp`.
  Result<std::string> sign(const Checkpoint& cp) const;
  // Signs any note text (non-empty, ending in "\n"): returns text, a blank line, the signature.
  Result<std::string> sign_text(std::string_view text) const;
  const std::string& name() const { return name_; }
  std::uint32_t key_id() const { return key_id_; }
  std::string verifier_key() const;

 private:
  std::string name_;
  crypto::Ed25519KeyPair key_;
  std::uint32_t key_id_ = 0;
};

class TrustedKeys {
 public:
  // Adds one verifier key line; Errc::key_invalid when it is not well-formed or its id does
  // not match its name and key.
  Result<void> add(std::string_view verifier_key);
  // One verifier key per line; blank lines and lines starting with '#' are ignored.
  static Result<TrustedKeys> load_file(const std::string& path);
  bool empty() const { return keys_.empty(); }
  std::size_t size() const { return keys_.size(); }

  enum class Status { ok, malformed, unknown_key, bad_signature };
  struct NoteCheck {
    Status status = Status::malformed;
    Checkpoint checkpoint;
    std::string key_name;  // the trusted key that signed it (ok) or the first unknown name
  };
  // Accepts the note when at least one signature is by a trusted key and verifies; a
  // signature by a trusted key that does not verify makes the note bad_signature.
  // verify() also requires the body to be a three-line checkpoint.
  NoteCheck verify(std::string_view note) const;

  // Why a checked note is refused, for reports: {reason code, sentence naming the note as
  // `what`}, e.g. {"checkpoint_unknown_key", "<what> is signed only by keys you do not trust
  // ('name')"}; nullopt for Status::ok. The codes are verify's and verify-proof's.
  static std::optional<std::pair<std::string, std::string>> refusal(const NoteCheck& check,
                                                                    const std::string& what);

  struct NoteResult {
    Status status = Status::malformed;
    std::string text;  // the signed body
    std::string key_name;
  };
  NoteResult verify_note(std::string_view note) const;

 private:
  struct Key {
    std::string name;
    std::uint32_t id;
    Bytes public_key;
  };
  std::vector<Key> keys_;
};

const char* to_string(TrustedKeys::Status s);

}  // namespace sechex::ledger
