#include "ledger/result.h"

namespace sechex::ledger {
namespace {

class LedgerCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sechex.ledger"; }
  std::string message(int code) const override {
    switch (static_cast<Errc>(code)) {
      case Errc::ok:
        return "ok";
      case Errc::invalid_argument:
        return "invalid argument";
      case Errc::io_error:
        return "storage I/O error";
      case Errc::corruption:
        return "stored data is corrupt";
      case Errc::chain_broken:
        return "hash chain is broken";
      case Errc::not_found:
        return "not found";
      case Errc::store_locked:
        return "the ledger is locked by another writer (is ledgerd running?)";
      case Errc::store_missing:
        return "no ledger at this path";
      case Errc::unsupported_version:
        return "written by a newer format or schema version";
      case Errc::key_missing:
        return "key is missing";
      case Errc::key_invalid:
        return "key is invalid or does not match";
      case Errc::crypto_failure:
        return "cryptographic operation failed";
      case Errc::authentication_failed:
        return "authentication failed";
      case Errc::erased:
        return "subject erased";
      case Errc::writer_failed:
        return "an earlier durable write failed; reopen the ledger";
      case Errc::closed:
        return "ledger is closed";
      case Errc::pruned:
        return "record pruned by retention";
      case Errc::not_supported:
        return "not supported by this log";
    }
    return "unknown ledger error";
  }
};

}  // namespace

const std::error_category& ledger_category() noexcept {
  static const LedgerCategory category;
  return category;
}

}  // namespace sechex::ledger
