// The server's signing keys on disk (the key directory of jose.h), rotation and JWKS.
#include "jose_internal.h"

namespace sechex::api::jose {

using namespace detail;

namespace {

constexpr char kIndexFile[] = "jwt-es256.keys";
constexpr char kLockFile[] = "jwt-es256.lock";
constexpr char kIndexMagic[] = "sechex-jwt-keys/v1";
// A ring only ever holds the current key plus those retired within one token lifetime; an index
// much larger than that was not written by us.
constexpr std::size_t kMaxIndexSize = 64 * 1024;

// ---- key directory ----

struct IndexEntry {
  std::string kid;
  std::optional<std::int64_t> retired_at;  // empty for the current key
};

// A kid is a base64url SHA-256 (43 characters); checking the shape before building a path from
// the index keeps a tampered index from naming files outside the directory.
bool valid_kid(std::string_view kid) {
  if (kid.size() != 43) return false;
  return std::all_of(kid.begin(), kid.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

std::string key_path(const std::string& dir, const std::string& kid) {
  return dir + "/jwt-es256-" + kid + ".pem";
}

bool parse_seconds(std::string_view text, std::int64_t& out) {
  if (text.empty() || text.size() > 18) return false;
  std::int64_t v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

// The index, or nullopt when it does not exist yet.
Result<std::optional<std::vector<IndexEntry>>> read_index(const std::string& dir) {
  const std::string path = dir + "/" + kIndexFile;
  const File f(std::fopen(path.c_str(), "rbe"));
  if (!f) {
    if (errno == ENOENT) return std::optional<std::vector<IndexEntry>>();
    return Errc::io_error;
  }
  std::string text;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), f.get())) > 0) {
    text.append(buf, n);
    if (text.size() > kMaxIndexSize) return Errc::corruption;
  }
  if (std::ferror(f.get()) != 0) return Errc::io_error;

  std::vector<std::string_view> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    if (nl == std::string_view::npos) return Errc::corruption;  // torn or hand-edited
    lines.push_back(rest.substr(0, nl));
    rest.remove_prefix(nl + 1);
  }
  if (lines.size() < 2 || lines[0] != kIndexMagic) return Errc::corruption;
  std::vector<IndexEntry> entries;
  std::set<std::string_view> seen;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto space = lines[i].find(' ');
    if (space == std::string_view::npos) return Errc::corruption;
    const std::string_view kid = lines[i].substr(0, space);
    const std::string_view when = lines[i].substr(space + 1);
    if (!valid_kid(kid) || !seen.insert(kid).second) return Errc::corruption;
    IndexEntry e{std::string(kid), std::nullopt};
    if (i == 1) {
      if (when != "-") return Errc::corruption;
    } else {
      std::int64_t t = 0;
      if (!parse_seconds(when, t)) return Errc::corruption;
      e.retired_at = t;
    }
    entries.push_back(std::move(e));
  }
  return std::optional<std::vector<IndexEntry>>(std::move(entries));
}

Result<void> write_index(const std::string& dir, const std::vector<IndexEntry>& entries) {
  std::string text = std::string(kIndexMagic) + "\n";
  for (const auto& e : entries) {
    text += e.kid + " " + (e.retired_at ? std::to_string(*e.retired_at) : std::string("-")) + "\n";
  }
  // Replaced in one step: readers see the old or the new list, never a mix.
  return ledger::ossl::write_private_file(dir + "/" + kIndexFile, text,
                                          ledger::ossl::Replace::atomically);
}

// Whoever can write to the key directory decides which keys sign and verify: they could plant a
// key of their own under a new index, or a symlink or FIFO where a key file is expected. So the
// directory must belong to us and be closed to writes by group and others (load_or_create makes
// it 0700; an existing one is not silently "fixed", the operator has to look at it).
Result<void> check_dir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return Errc::io_error;
  if (st.st_uid != ::geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Errc::key_invalid;
  }
  return boost::outcome_v2::success();
}

// flock() on the directory's lock file for as long as the object lives. Checks the directory
// first: every reader and writer of the directory takes this lock.
class DirLock {
 public:
  static Result<DirLock> acquire(const std::string& dir, bool exclusive) {
    SECHEX_TRYV(check_dir(dir));
    const std::string path = dir + "/" + kLockFile;
    // O_NOFOLLOW: O_CREAT through a planted symlink would create a file wherever it points.
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return Errc::io_error;
    int rc = 0;
    do {
      rc = ::flock(fd, exclusive ? LOCK_EX : LOCK_SH);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      ::close(fd);
      return Errc::io_error;
    }
    return DirLock(fd);
  }
  DirLock(DirLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  DirLock& operator=(DirLock&&) = delete;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
  }

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

std::int64_t retention_seconds(const KeyRingOptions& o) {
  return saturating_add(o.max_token_ttl.count(), std::max<std::int64_t>(0, o.clock_skew.count()));
}

bool still_verifying(const IndexEntry& e, std::int64_t now_s, const KeyRingOptions& o) {
  return !e.retired_at || saturating_add(*e.retired_at, retention_seconds(o)) > now_s;
}

Result<std::shared_ptr<KeyRing::Snapshot>> load_snapshot(const std::string& dir,
                                                         const std::vector<IndexEntry>& entries,
                                                         std::int64_t now_s,
                                                         const KeyRingOptions& options) {
  std::optional<SigningKey> current;
  PublicKeys keys;
  std::vector<std::string> kids;
  for (const auto& e : entries) {
    if (!still_verifying(e, now_s, options)) continue;
    SECHEX_TRY(auto key, SigningKey::load_pem(key_path(dir, e.kid)));
    // A file swapped for another key (or a copy gone wrong) must not verify under this name.
    if (key.kid() != e.kid) return Errc::key_invalid;
    keys.emplace(e.kid, key.public_key());
    kids.push_back(e.kid);
    if (!e.retired_at) current.emplace(std::move(key));
  }
  if (!current) return Errc::corruption;
  return std::make_shared<KeyRing::Snapshot>(
      KeyRing::Snapshot{std::move(*current), std::move(keys), std::move(kids), 0});
}

}  // namespace

// ---- KeyRing ----

KeyRing::KeyRing(std::string dir, const Clock& clock, KeyRingOptions options)
    : dir_(std::move(dir)), clock_(clock), options_(options) {}

Result<std::unique_ptr<KeyRing>> KeyRing::load_or_create(const std::string& dir, const Clock& clock,
                                                         KeyRingOptions options) {
  if (dir.empty() || options.max_token_ttl.count() <= 0 || options.clock_skew.count() < 0) {
    return Errc::invalid_argument;
  }
  std::error_code ec;
  const bool created = std::filesystem::create_directories(dir, ec);
  if (ec) return Errc::io_error;
  if (created && ::chmod(dir.c_str(), 0700) != 0) return Errc::io_error;

  std::unique_ptr<KeyRing> ring(new KeyRing(dir, clock, options));
  SECHEX_TRY(auto lock, DirLock::acquire(dir, /*exclusive=*/true));
  SECHEX_TRY(auto entries, read_index(dir));
  if (!entries) {
    SECHEX_TRY(auto key, SigningKey::generate());
    SECHEX_TRYV(key.save_pem(key_path(dir, key.kid())));
    entries.emplace(std::vector<IndexEntry>{{key.kid(), std::nullopt}});
    SECHEX_TRYV(write_index(dir, *entries));
  }
  SECHEX_TRY(auto snap, load_snapshot(dir, *entries, seconds_of(clock.now_micros()), options));
  ring->install(std::move(snap));
  return ring;
}

Result<void> KeyRing::rotate(Retire retire) {
  const std::lock_guard change(change_mu_);
  SECHEX_TRY(auto lock, DirLock::acquire(dir_, /*exclusive=*/true));
  // Re-read rather than trust memory: another process may have rotated since we loaded.
  SECHEX_TRY(auto entries, read_index(dir_));
  if (!entries) return Errc::key_missing;
  const std::int64_t now_s = seconds_of(clock_.now_micros());

  SECHEX_TRY(auto key, SigningKey::generate());
  SECHEX_TRYV(key.save_pem(key_path(dir_, key.kid())));
  std::vector<IndexEntry> next{{key.kid(), std::nullopt}};
  std::vector<std::string> dropped;
  for (const auto& e : *entries) {
    IndexEntry retired{e.kid, e.retired_at.value_or(now_s)};
    if (retire == Retire::after_token_ttl && still_verifying(retired, now_s, options_)) {
      next.push_back(std::move(retired));
    } else {
      dropped.push_back(e.kid);
    }
  }
  SECHEX_TRYV(write_index(dir_, next));
  // Only once the index no longer names them: a crash before this leaves unused files, never an
  // index pointing at missing keys. Failure to delete is not worth failing the rotation for.
  for (const auto& kid : dropped) ::unlink(key_path(dir_, kid).c_str());
  SECHEX_TRY(auto snap, load_snapshot(dir_, next, now_s, options_));
  install(std::move(snap));
  return boost::outcome_v2::success();
}

Result<void> KeyRing::reload() {
  const std::lock_guard change(change_mu_);
  SECHEX_TRY(auto lock, DirLock::acquire(dir_, /*exclusive=*/false));
  SECHEX_TRY(auto entries, read_index(dir_));
  if (!entries) return Errc::key_missing;
  SECHEX_TRY(auto snap, load_snapshot(dir_, *entries, seconds_of(clock_.now_micros()), options_));
  install(std::move(snap));
  return boost::outcome_v2::success();
}

void KeyRing::install(std::shared_ptr<Snapshot> next) {
  const std::lock_guard lock(mu_);
  // Same keys, same generation: a periodic reload must not flush every verifier's cache.
  if (snapshot_ && snapshot_->kids == next->kids) {
    next->generation = snapshot_->generation;
  } else {
    next->generation = snapshot_ ? snapshot_->generation + 1 : 1;
  }
  snapshot_ = std::move(next);
}

std::shared_ptr<const KeyRing::Snapshot> KeyRing::snapshot() const {
  const std::lock_guard lock(mu_);
  return snapshot_;
}

std::string KeyRing::jwks_json() const {
  const auto snap = snapshot();
  nlohmann::ordered_json keys = nlohmann::ordered_json::array();
  for (const auto& kid : snap->kids) keys.push_back(snap->keys.at(kid).jwk(kid));
  nlohmann::ordered_json doc;
  doc["keys"] = std::move(keys);
  return doc.dump();
}

}  // namespace sechex::api::jose
