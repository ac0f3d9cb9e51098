// The data directory shared by `ledgerd` and `ledgerctl`:
//
//   <data-dir>/log/                          RocksDB database (see log_store.h)
//   <data-dir>/projections/                  RocksDB database of read models (projections/)
//   <data-dir>/keys/                         mode 0700
//   <data-dir>/keys/checkpoint-ed25519.pem   checkpoint signing key (PKCS#8, mode 0600)
//   <data-dir>/keys/checkpoint-verifiers.txt trusted verifier keys, one per line; rotation
//                                            appends, so old checkpoints stay verifiable
//   <data-dir>/keys/kek                      key-encryption key (base64, mode 0600), unless
//                                            SECHEX_KEK is set in the environment
//   <data-dir>/keys/lookup-key               key of the keyed lookup hashes (email, IP, one-time
//                                            codes and tokens: HMAC-SHA-256), same format as the
//                                            KEK, unless SECHEX_LOOKUP_KEY is set. Every node of
//                                            one ledger needs the same one (like the KEK): with
//                                            another, known emails look unknown. So the ledger
//                                            stores a check of the first one and ledgerd refuses
//                                            another (KeyStore::check_lookup_key).
#pragma once

#include <cstdint>
#include <string>

#include "ledger/checkpoint.h"
#include "ledger/key_store.h"
#include "ledger/result.h"

namespace sechex::ledger {

struct DataDir {
  std::string root = "./data";
  std::string log_path() const { return root + "/log"; }
  std::string projections_path() const { return root + "/projections"; }
  std::string keys_dir() const { return root + "/keys"; }
  std::string signing_key() const { return keys_dir() + "/checkpoint-ed25519.pem"; }
  std::string verifier_keys() const { return keys_dir() + "/checkpoint-verifiers.txt"; }
  std::string kek_file() const { return keys_dir() + "/kek"; }
  std::string lookup_key_file() const { return keys_dir() + "/lookup-key"; }
};

inline constexpr const char* kDefaultKeyName = "sechex-ledger";

// Creates whatever is missing: directories, the signing key (and its verifier line), the KEK
// file (unless SECHEX_KEK is set), the lookup key file (unless SECHEX_LOOKUP_KEY is set) and, with
// `embedded_log`, the embedded ledger with `partitions` partitions (a Kafka ledger is created by
// KafkaLog::open instead). Never replaces an existing key. `log` receives one human-readable line
// per thing created.
Result<void> init_data_dir(const DataDir& dir, std::uint32_t partitions,
                           const std::string& key_name, std::string* log, bool embedded_log = true);

// SECHEX_KEK from the environment when set, else `kek_file` (default dir.kek_file()).
Result<Kek> load_kek(const DataDir& dir, const std::string& kek_file = {});
// The lookup-hash key: SECHEX_LOOKUP_KEY when set, else dir.lookup_key_file(). A 32-byte secret
// with the KEK's file rules (base64, mode 0600), hence the same type; it never wraps keys.
Result<Kek> load_lookup_key(const DataDir& dir);
// Where load_lookup_key reads the key from, for messages: "SECHEX_LOOKUP_KEY" or
// "the lookup-hash key file <path>".
std::string lookup_key_source(const DataDir& dir);

// Rotates the checkpoint signing key: the old PEM is kept as
// checkpoint-ed25519.<keyid>.retired.pem, the new key's verifier line is appended to the
// trusted list. The ledger must not be open for writing.
Result<std::string> rotate_signing_key(const DataDir& dir, const std::string& key_name);

// The secret on the first line of a file given to ledgerd by path (an SMTP password, a webhook
// signing secret, an OIDC client secret): the file must be a regular file only its owner may
// read (mode 0600 or stricter); trailing CR, spaces and tabs are dropped. On failure, a
// sentence naming the file and what to do ("<path> is readable by group or others (chmod 600
// it)", "cannot read <path>", "<path> holds no secret on its first line").
struct SecretRead {
  std::string secret;
  std::string error;  // empty on success
  explicit operator bool() const { return error.empty(); }
};
SecretRead read_secret_file(const std::string& path);

}  // namespace sechex::ledger
