#include "ledger/data_dir.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace sechex::ledger {
namespace {
namespace fs = std::filesystem;

Result<void> append_line(const std::string& path, const std::string& line) {
  std::ofstream out(path, std::ios::app);
  if (!out) return Errc::io_error;
  out << line << "\n";
  out.flush();
  if (!out) return Errc::io_error;
  return boost::outcome_v2::success();
}

}  // namespace

Result<void> init_data_dir(const DataDir& dir, std::uint32_t partitions,
                           const std::string& key_name, std::string* log, bool embedded_log) {
  auto say = [&](const std::string& s) {
    if (log != nullptr) *log += s + "\n";
  };
  std::error_code ec;
  fs::create_directories(dir.keys_dir(), ec);
  if (ec) return Errc::io_error;
  ::chmod(dir.keys_dir().c_str(), 0700);

  if (!fs::exists(dir.signing_key())) {
    SECHEX_TRY(auto key, crypto::ed25519_generate());
    SECHEX_TRYV(crypto::ed25519_save_pem(key, dir.signing_key()));
    const CheckpointSigner signer(key_name, std::move(key));
    SECHEX_TRYV(append_line(dir.verifier_keys(), signer.verifier_key()));
    say("created checkpoint signing key " + dir.signing_key() + " (" + signer.verifier_key() + ")");
  }
  const char* env = std::getenv("SECHEX_KEK");
  if ((env == nullptr || *env == '\0') && !fs::exists(dir.kek_file())) {
    SECHEX_TRYV(Kek::generate_file(dir.kek_file()));
    say("created key-encryption key " + dir.kek_file() +
        " (back it up: without it sealed data "
        "is unreadable)");
  }
  const char* lookup_env = std::getenv("SECHEX_LOOKUP_KEY");
  if ((lookup_env == nullptr || *lookup_env == '\0') && !fs::exists(dir.lookup_key_file())) {
    SECHEX_TRYV(Kek::generate_file(dir.lookup_key_file()));
    say("created lookup-hash key " + dir.lookup_key_file() +
        " (back it up and give every node the same one: without it no email can be found)");
  }
  if (embedded_log && !fs::exists(fs::path(dir.log_path()) / "CURRENT")) {
    LogOptions o;
    o.path = dir.log_path();
    o.create_if_missing = true;
    o.partitions = partitions;
    SECHEX_TRY(auto store, LogStore::open(o));
    SECHEX_TRY(auto kek, load_kek(dir));
    SECHEX_TRY(auto keys, KeyStore::open(*store, std::move(kek)));
    say("created ledger " + dir.log_path() + " (id " + store->ledger_id() + ", " +
        std::to_string(store->partition_count()) + " partitions)");
  }
  return boost::outcome_v2::success();
}

Result<Kek> load_kek(const DataDir& dir, const std::string& kek_file) {
  const char* env = std::getenv("SECHEX_KEK");
  if (env != nullptr && *env != '\0') return Kek::from_env("SECHEX_KEK");
  return Kek::from_file(kek_file.empty() ? dir.kek_file() : kek_file);
}

namespace {
bool lookup_key_from_env() {
  const char* env = std::getenv("SECHEX_LOOKUP_KEY");
  return env != nullptr && *env != '\0';
}
}  // namespace

Result<Kek> load_lookup_key(const DataDir& dir) {
  if (lookup_key_from_env()) return Kek::from_env("SECHEX_LOOKUP_KEY");
  return Kek::from_file(dir.lookup_key_file());
}

std::string lookup_key_source(const DataDir& dir) {
  return lookup_key_from_env() ? "SECHEX_LOOKUP_KEY"
                               : "the lookup-hash key file " + dir.lookup_key_file();
}

Result<std::string> rotate_signing_key(const DataDir& dir, const std::string& key_name) {
  SECHEX_TRY(auto old_signer, CheckpointSigner::load(dir.signing_key(), key_name));
  char id[9];
  std::snprintf(id, sizeof(id), "%08x", old_signer.key_id());
  const auto retired = dir.keys_dir() + "/checkpoint-ed25519." + id + ".retired.pem";
  std::error_code ec;
  fs::rename(dir.signing_key(), retired, ec);
  if (ec) return Errc::io_error;
  SECHEX_TRY(auto key, crypto::ed25519_generate());
  SECHEX_TRYV(crypto::ed25519_save_pem(key, dir.signing_key()));
  const CheckpointSigner signer(key_name, std::move(key));
  SECHEX_TRYV(append_line(dir.verifier_keys(), signer.verifier_key()));
  return signer.verifier_key();
}

SecretRead read_secret_file(const std::string& path) {
  const auto refused = [](std::string why) { return SecretRead{"", std::move(why)}; };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return refused("cannot read " + path);
  if ((st.st_mode & 077) != 0) {
    return refused(path + " is readable by group or others (chmod 600 it)");
  }
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return refused("cannot read " + path);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
    line.pop_back();
  }
  if (line.empty()) return refused(path + " holds no secret on its first line");
  return SecretRead{std::move(line), ""};
}

}  // namespace sechex::ledger
