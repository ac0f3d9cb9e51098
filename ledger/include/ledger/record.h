// The on-disk record and the hash chain.
//
// Record value layout (column family `log`, key = be32(partition) || be64(seq)):
//
//   +--------+---------------+-----------+----------------+---------------------------+
//   | format | be32 partition| be64 seq  | hash[seq] (32) | event bytes (FlatBuffers) |
//   | 1 byte |   4 bytes     |  8 bytes  |   32 bytes     |   rest of the value       |
//   +--------+---------------+-----------+----------------+---------------------------+
//
// A record whose payload retention removed keeps its place as a stub (format 2):
//
//   +--------+---------------+-----------+----------------+-------------------+---------------+
//   | 2      | be32 partition| be64 seq  | hash[seq] (32) | SHA-256(event) 32 | leaf hash (32)|
//   +--------+---------------+-----------+----------------+-------------------+---------------+
//
// The event digest keeps the chain checkable link by link and the leaf hash (RFC 6962 leaf hash
// of the record's format-1 bytes, merkle.h) keeps the Merkle tree and every proof made before
// the cut; the event bytes, and with them the sealed personal data, are gone.
//
// The partition and seq in the value repeat the key. The hash already binds both, so they add
// no security; they let `verify` say *what* happened (a record copied from another partition,
// two records swapped) instead of only "hash mismatch".
//
// Chain (ARCHITECTURE.md, fixed):
//   hash[seq] = SHA-256("sechex-ledger/v1" || be32(partition) || be64(seq) || hash[seq-1]
//                       || SHA-256(event_bytes))
//   hash[-1]  = 32 zero bytes, or the anchor hash of a retention cut.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ledger/result.h"
#include "ledger/types.h"

namespace sechex::ledger {

inline constexpr std::uint8_t kRecordFormatV1 = 1;
inline constexpr std::uint8_t kRecordFormatPruned = 2;
inline constexpr std::size_t kRecordHeaderSize = 1 + 4 + 8 + 32;
inline constexpr std::size_t kPrunedRecordSize = kRecordHeaderSize + 32 + 32;
inline constexpr std::size_t kLogKeySize = 12;
inline constexpr std::string_view kChainDomain = "sechex-ledger/v1";

Hash chain_hash(Partition partition, Seq seq, const Hash& prev, ByteView event_bytes);
// Same, with SHA-256(event_bytes) already computed.
Hash chain_hash_from_digest(Partition partition, Seq seq, const Hash& prev,
                            const Hash& event_digest);

std::string encode_log_key(Partition partition, Seq seq);
// Fails unless `key` is exactly 12 bytes.
bool decode_log_key(std::string_view key, Position& out);

std::string encode_record(Partition partition, Seq seq, const Hash& hash, ByteView event_bytes);
// The stub that replaces a format-1 record `value` when retention prunes it.
std::string encode_pruned_record(Partition partition, Seq seq, const Hash& hash,
                                 const Hash& event_digest, const Hash& leaf);

// A decoded view into a record value; valid while the underlying string lives.
struct RecordView {
  std::uint8_t format = 0;
  Partition partition;
  Seq seq;
  Hash hash{};
  ByteView event;  // empty for a pruned stub
  bool pruned = false;
  Hash event_digest{};  // pruned stubs only
  Hash leaf{};          // pruned stubs only
};
// Fails with Errc::corruption when the value is shorter than the header (or a stub is not
// exactly kPrunedRecordSize) and Errc::unsupported_version for an unknown format byte.
Result<RecordView> decode_record(std::string_view value);

// A record as returned by readers (owning).
struct Record {
  Position position;
  Hash hash{};
  Bytes event;
};

// The RFC 6962 leaf hash (merkle.h) of a whole record: SHA-256(0x00 || its stored bytes).
Hash record_leaf(const Record& record);

}  // namespace sechex::ledger
