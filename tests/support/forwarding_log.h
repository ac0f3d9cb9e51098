// ForwardingLog: a ledger::Log that passes every call to another log, for test doubles that
// change one behaviour (a failing append, a read held on a gate) and keep the rest real.
// Lifecycle: the inner log must outlive it. Thread-safety: as the inner log's.
#pragma once

#include "ledger/log.h"

namespace sechex::testing {

class ForwardingLog : public ledger::Log {
 public:
  explicit ForwardingLog(ledger::Log& inner) : inner_(inner) {}

  std::uint32_t partition_count() const override { return inner_.partition_count(); }
  const std::string& ledger_id() const override { return inner_.ledger_id(); }
  Result<ledger::AppendResult> append(ledger::Partition p,
                                      std::span<const ledger::ByteView> events) override {
    return inner_.append(p, events);
  }
  ledger::Head head(ledger::Partition p) const override { return inner_.head(p); }
  Result<std::vector<ledger::Record>> read_range(ledger::Partition p, ledger::Seq from,
                                                 ledger::Seq to, std::size_t max) const override {
    return inner_.read_range(p, from, to, max);
  }
  Result<std::vector<ledger::Record>> wait_for(ledger::Partition p, ledger::Seq from,
                                               std::chrono::milliseconds timeout,
                                               std::size_t max) const override {
    return inner_.wait_for(p, from, timeout, max);
  }
  Result<std::size_t> checkpoint_due(bool force) override { return inner_.checkpoint_due(force); }
  Result<std::optional<std::string>> latest_checkpoint(ledger::Partition p) const override {
    return inner_.latest_checkpoint(p);
  }
  ledger::LogStats stats() const override { return inner_.stats(); }

 private:
  ledger::Log& inner_;
};

}  // namespace sechex::testing
