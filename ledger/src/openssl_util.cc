#include "ledger/openssl_util.h"

#include <fcntl.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace sechex::ledger::ossl {
namespace {

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

std::string parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Result<void> write_private_file(const std::string& path, std::string_view content, Replace mode) {
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return Errc::io_error;
  const bool written =
      ::fchmod(fd, 0600) == 0 && write_all(fd, content.data(), content.size()) && ::fsync(fd) == 0;
  const bool closed = ::close(fd) == 0;
  if (!written || !closed) {
    ::unlink(tmp.c_str());
    return Errc::io_error;
  }
  if (mode == Replace::never) {
    // link() fails on an existing name, so an existing file is never silently replaced.
    const int linked = ::link(tmp.c_str(), path.c_str());
    const int link_errno = errno;
    ::unlink(tmp.c_str());
    if (linked != 0) return link_errno == EEXIST ? Errc::invalid_argument : Errc::io_error;
  } else if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Errc::io_error;
  }
  // The new directory entry must survive a crash too.
  const int dir = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return Errc::io_error;
  const bool synced = ::fsync(dir) == 0;
  ::close(dir);
  if (!synced) return Errc::io_error;
  return boost::outcome_v2::success();
}

Result<void> save_private_key_pem(EVP_PKEY* key, const std::string& path) {
  ErrorQueueScope errors;
  const Bio mem(BIO_new(BIO_s_secmem()));  // wiped when freed
  if (key == nullptr || !mem ||
      PEM_write_bio_PrivateKey(mem.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Errc::crypto_failure;
  }
  char* pem = nullptr;
  const long pem_len = BIO_get_mem_data(mem.get(), &pem);
  if (pem == nullptr || pem_len <= 0) return Errc::crypto_failure;
  return write_private_file(path, std::string_view(pem, static_cast<std::size_t>(pem_len)),
                            Replace::never);
}

}  // namespace sechex::ledger::ossl
