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
//
// Expiring state (sessions, rate-limit windows, replay caches, timed lockouts): every value
// carries its own end time, so expired() can judge it from the value alone, readers compare it
// with their own clock, and ProjectionStore::cleanup() deletes it later on a schedule. For a
// cleaned store to stay equivalent to a rebuilt one, apply() must treat an entry that is
// expired at the event's own time exactly as if it were absent (never extend, revive or read
// anything from it). Then deleting it early cannot change what any later event computes, as
// long as cleanup's `now` is not later than the time of events applied afterwards (store.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ledger/clock.h"
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
  // Keys and values of `cf` starting with `prefix`, in key order, including this batch's
  // writes. For small per-subject indexes (a user's sessions), not for whole column families.
  virtual Result<std::vector<std::pair<std::string, std::string>>> scan(
      std::string_view cf, std::string_view prefix) = 0;
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
  // Column families holding entries that expire; cleanup() and digest(now) visit only these.
  virtual std::vector<std::string> expiring_column_families() const { return {}; }
  // Whether an entry of `cf` is over at `now_micros`: no reader may treat it as in force any
  // more, and it stays over at every later time (expiry is monotone). Pure: decides from the
  // value alone. Unreadable values are never expired (cleanup must not destroy evidence).
  virtual bool expired(std::string_view cf, std::string_view key, std::string_view value,
                       std::int64_t now_micros) const {
    (void)cf, (void)key, (void)value, (void)now_micros;
    return false;
  }
};

}  // namespace sechex::projections
