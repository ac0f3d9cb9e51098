#include "ledger/checkpoint.h"

#include <charconv>
#include <fstream>
#include <sstream>

#include "endian.h"

namespace sechex::ledger {
namespace {

constexpr std::uint8_t kAlgEd25519 = 0x01;
constexpr std::string_view kSigPrefix = "\xE2\x80\x94 ";  // U+2014 EM DASH, then a space

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    if (nl == std::string_view::npos) {
      lines.push_back(text);
      break;
    }
    lines.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  return lines;
}

constexpr std::string_view kChainLine = "chain ";

bool decode_hash(std::string_view text, Hash& out) {
  Bytes bytes;
  if (!crypto::base64_decode(text, bytes) || bytes.size() != out.size()) return false;
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return true;
}

}  // namespace

std::string checkpoint_origin(std::string_view ledger_id, Partition partition) {
  return "sechex-ledger/" + std::string(ledger_id) + "/" + std::to_string(partition.value);
}

std::string checkpoint_body(const Checkpoint& cp) {
  auto body = cp.origin + "\n" + std::to_string(cp.size) + "\n";
  if (!cp.root) return body + crypto::base64_encode(cp.hash) + "\n";
  return body + crypto::base64_encode(*cp.root) + "\n" + std::string(kChainLine) +
         crypto::base64_encode(cp.hash) + "\n";
}

std::optional<Checkpoint> parse_checkpoint_body(std::string_view note) {
  // The body ends at the first blank line (signatures follow it in a signed note).
  const auto blank = note.find("\n\n");
  if (blank != std::string_view::npos) note = note.substr(0, blank + 1);
  const auto lines = split_lines(note);
  if ((lines.size() != 3 && lines.size() != 4) || lines[0].empty()) return std::nullopt;
  Checkpoint cp;
  cp.origin = std::string(lines[0]);
  const auto size_line = lines[1];
  // Decimal without leading zeros (as tlog-checkpoint requires), so one size has one text.
  if (size_line.empty() || (size_line.size() > 1 && size_line[0] == '0')) return std::nullopt;
  const auto [ptr, ec] =
      std::from_chars(size_line.data(), size_line.data() + size_line.size(), cp.size);
  if (ec != std::errc() || ptr != size_line.data() + size_line.size()) return std::nullopt;
  Hash third{};
  if (!decode_hash(lines[2], third)) return std::nullopt;
  if (lines.size() == 3) {
    cp.hash = third;
    return cp;
  }
  if (lines[3].substr(0, kChainLine.size()) != kChainLine ||
      !decode_hash(lines[3].substr(kChainLine.size()), cp.hash)) {
    return std::nullopt;
  }
  cp.root = third;
  return cp;
}

bool valid_key_name(std::string_view name) {
  if (name.empty()) return false;
  for (const char c : name) {
    if (c <= ' ' || c > '~' || c == '+') return false;
  }
  return true;
}

std::uint32_t note_key_id(std::string_view name, ByteView public_key) {
  Bytes buf(name.begin(), name.end());
  buf.push_back('\n');
  buf.push_back(kAlgEd25519);
  buf.insert(buf.end(), public_key.begin(), public_key.end());
  const auto digest = crypto::sha256(buf);
  return detail::get_be32(digest.data());
}

std::string verifier_key_text(std::string_view name, ByteView public_key) {
  Bytes keydata{kAlgEd25519};
  keydata.insert(keydata.end(), public_key.begin(), public_key.end());
  char id_hex[9];
  std::snprintf(id_hex, sizeof(id_hex), "%08x", note_key_id(name, public_key));
  return std::string(name) + "+" + id_hex + "+" + crypto::base64_encode(keydata);
}

Result<CheckpointSigner> CheckpointSigner::load(const std::string& pem_path, std::string name) {
  if (!valid_key_name(name)) return Errc::invalid_argument;
  SECHEX_TRY(auto key, crypto::ed25519_load_pem(pem_path));
  return CheckpointSigner(std::move(name), std::move(key));
}

CheckpointSigner::CheckpointSigner(std::string name, crypto::Ed25519KeyPair key)
    : name_(std::move(name)), key_(std::move(key)), key_id_(note_key_id(name_, key_.public_key)) {}

std::string CheckpointSigner::verifier_key() const {
  return verifier_key_text(name_, key_.public_key);
}

Result<std::string> CheckpointSigner::sign(const Checkpoint& cp) const {
  return sign_text(checkpoint_body(cp));
}

Result<std::string> CheckpointSigner::sign_text(std::string_view text) const {
  if (text.empty() || text.back() != '\n') return Errc::invalid_argument;
  const std::string body(text);
  SECHEX_TRY(auto sig, crypto::ed25519_sign(key_, as_bytes(body)));
  Bytes blob(4);
  detail::put_be32(blob.data(), key_id_);
  blob.insert(blob.end(), sig.begin(), sig.end());
  return body + "\n" + std::string(kSigPrefix) + name_ + " " + crypto::base64_encode(blob) + "\n";
}

Result<void> TrustedKeys::add(std::string_view line) {
  const auto p1 = line.find('+');
  const auto p2 = p1 == std::string_view::npos ? p1 : line.find('+', p1 + 1);
  if (p2 == std::string_view::npos) return Errc::key_invalid;
  const auto name = line.substr(0, p1);
  const auto id_hex = line.substr(p1 + 1, p2 - p1 - 1);
  Bytes keydata;
  if (!valid_key_name(name) || id_hex.size() != 8 ||
      !crypto::base64_decode(line.substr(p2 + 1), keydata) || keydata.size() != 33 ||
      keydata[0] != kAlgEd25519) {
    return Errc::key_invalid;
  }
  Bytes id_bytes;
  if (!from_hex(id_hex, id_bytes)) return Errc::key_invalid;
  Bytes pub(keydata.begin() + 1, keydata.end());
  const auto id = detail::get_be32(id_bytes.data());
  if (id != note_key_id(name, pub)) return Errc::key_invalid;
  keys_.push_back(Key{std::string(name), id, std::move(pub)});
  return boost::outcome_v2::success();
}

Result<TrustedKeys> TrustedKeys::load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Errc::key_missing;
  TrustedKeys keys;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    SECHEX_TRYV(keys.add(line));
  }
  if (keys.empty()) return Errc::key_missing;
  return keys;
}

TrustedKeys::NoteCheck TrustedKeys::verify(std::string_view note) const {
  NoteCheck result;
  const auto n = verify_note(note);
  const auto cp = parse_checkpoint_body(n.text);
  if (n.status == Status::malformed || !cp) return result;
  result.status = n.status;
  result.checkpoint = *cp;
  result.key_name = n.key_name;
  return result;
}

TrustedKeys::NoteResult TrustedKeys::verify_note(std::string_view note) const {
  NoteResult result;
  // The body ends at the last blank line; everything after it is signature lines.
  const auto sep = note.rfind("\n\n");
  if (sep == std::string_view::npos || note.back() != '\n') return result;
  const std::string body(note.substr(0, sep + 1));
  const auto sig_block = note.substr(sep + 2);
  bool any_signature = false;
  bool verified = false;
  bool bad = false;
  std::string first_unknown;
  std::string signer;
  for (const auto line : split_lines(sig_block)) {
    if (line.substr(0, kSigPrefix.size()) != kSigPrefix) return result;  // not a signature
    const auto rest = line.substr(kSigPrefix.size());
    const auto space = rest.find(' ');
    if (space == std::string_view::npos) return result;
    const auto name = rest.substr(0, space);
    Bytes blob;
    if (!valid_key_name(name) || !crypto::base64_decode(rest.substr(space + 1), blob) ||
        blob.size() < 5) {
      return result;
    }
    any_signature = true;
    const auto id = detail::get_be32(blob.data());
    const Key* key = nullptr;
    for (const auto& k : keys_) {
      if (k.id == id && k.name == name) key = &k;
    }
    if (key == nullptr) {
      if (first_unknown.empty()) first_unknown = std::string(name);
      continue;
    }
    const ByteView sig(blob.data() + 4, blob.size() - 4);
    if (crypto::ed25519_verify(key->public_key, as_bytes(body), sig)) {
      verified = true;
      signer = key->name;
    } else {
      bad = true;
    }
  }
  if (!any_signature) return result;
  result.text = body;
  if (bad) {
    result.status = Status::bad_signature;
  } else if (verified) {
    result.status = Status::ok;
    result.key_name = signer;
  } else {
    result.status = Status::unknown_key;
    result.key_name = first_unknown;
  }
  return result;
}

const char* to_string(TrustedKeys::Status s) {
  switch (s) {
    case TrustedKeys::Status::ok:
      return "ok";
    case TrustedKeys::Status::malformed:
      return "malformed";
    case TrustedKeys::Status::unknown_key:
      return "signed by an unknown key";
    case TrustedKeys::Status::bad_signature:
      return "signature does not verify";
  }
  return "unknown";
}

std::optional<std::pair<std::string, std::string>> TrustedKeys::refusal(const NoteCheck& check,
                                                                        const std::string& what) {
  switch (check.status) {
    case Status::ok:
      return std::nullopt;
    case Status::malformed:
      return std::pair<std::string, std::string>{"checkpoint_malformed",
                                                 what + " is not a well-formed signed checkpoint"};
    case Status::unknown_key:
      return std::pair<std::string, std::string>{
          "checkpoint_unknown_key",
          what + " is signed only by keys you do not trust ('" + check.key_name + "')"};
    case Status::bad_signature:
      return std::pair<std::string, std::string>{
          "checkpoint_bad_signature",
          what + " has a signature that does not verify (forged or altered)"};
  }
  return std::pair<std::string, std::string>{"checkpoint_malformed",
                                             what + " could not be checked"};
}

}  // namespace sechex::ledger
