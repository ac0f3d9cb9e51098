// Projections: read models derived only from the log.
//
// A projection owns a set of RocksDB column families and changes them only in apply(), which
// the ProjectionStore calls for each record, in log order per partition, inside the WriteBatch
// that also stores the new position. The same code path serves inline apply after an append,
// catch-up after a restart, a full rebuild and point-in-time replay, so rebuilding from the log
// yields byte-identical state (tests assert it over a digest of every column family).
//
// Rules for implementations: apply() is a pure function of the event, its position and the
// state it reads through the Txn. It never reads the wall clock, a random source or anything
// outside the Txn, and it encodes values deterministically.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/record.h"
#include "ledger/result.h"
#include "schemas/events.h"

namespace sechex::projections {

// Reads see the store plus the writes earlier in the same batch (read-your-writes).
class Txn {
 public:
  virtual ~Txn() = default;
  virtual Result<std::optional<std::string>> get(std::string_view cf, std::string_view key) = 0;
  virtual void put(std::string_view cf, std::string_view key, std::string_view value) = 0;
  virtual void del(std::string_view cf, std::string_view key) = 0;
};

class Projection {
 public:
  virtual ~Projection() = default;
  virtual std::string name() const = 0;
  // Column families this projection owns; names are global, so prefix them with name().
  virtual std::vector<std::string> column_families() const = 0;
  // `env` is verified; `pos` is the record's position in the log.
  virtual Result<void> apply(const schema::Envelope& env, const ledger::Position& pos,
                             Txn& txn) = 0;
};

}  // namespace sechex::projections
