#include "ledger/record.h"

#include <cstring>

#include "endian.h"
#include "ledger/crypto.h"
#include "ledger/merkle.h"

namespace sechex::ledger {

Hash chain_hash_from_digest(Partition partition, Seq seq, const Hash& prev,
                            const Hash& event_digest) {
  // One contiguous buffer and one SHA-256 call: this runs for every record on append and
  // verify, and the incremental EVP interface costs more than the hashing itself here.
  std::uint8_t buf[kChainDomain.size() + 4 + 8 + 32 + 32];
  std::uint8_t* p = buf;
  std::memcpy(p, kChainDomain.data(), kChainDomain.size());
  p += kChainDomain.size();
  detail::put_be32(p, partition.value);
  p += 4;
  detail::put_be64(p, seq.value);
  p += 8;
  std::memcpy(p, prev.data(), prev.size());
  p += prev.size();
  std::memcpy(p, event_digest.data(), event_digest.size());
  return crypto::sha256(ByteView(buf, sizeof(buf)));
}

Hash chain_hash(Partition partition, Seq seq, const Hash& prev, ByteView event_bytes) {
  return chain_hash_from_digest(partition, seq, prev, crypto::sha256(event_bytes));
}

std::string encode_log_key(Partition partition, Seq seq) {
  std::string key;
  key.reserve(kLogKeySize);
  detail::put_be32(key, partition.value);
  detail::put_be64(key, seq.value);
  return key;
}

bool decode_log_key(std::string_view key, Position& out) {
  if (key.size() != kLogKeySize) return false;
  out.partition = Partition{detail::get_be32(key.data())};
  out.seq = Seq{detail::get_be64(key.data() + 4)};
  return true;
}

std::string encode_record(Partition partition, Seq seq, const Hash& hash, ByteView event_bytes) {
  std::string value;
  value.reserve(kRecordHeaderSize + event_bytes.size());
  value.push_back(static_cast<char>(kRecordFormatV1));
  detail::put_be32(value, partition.value);
  detail::put_be64(value, seq.value);
  value.append(reinterpret_cast<const char*>(hash.data()), hash.size());
  value.append(reinterpret_cast<const char*>(event_bytes.data()), event_bytes.size());
  return value;
}

std::string encode_pruned_record(Partition partition, Seq seq, const Hash& hash,
                                 const Hash& event_digest, const Hash& leaf) {
  std::string value;
  value.reserve(kPrunedRecordSize);
  value.push_back(static_cast<char>(kRecordFormatPruned));
  detail::put_be32(value, partition.value);
  detail::put_be64(value, seq.value);
  value.append(reinterpret_cast<const char*>(hash.data()), hash.size());
  value.append(reinterpret_cast<const char*>(event_digest.data()), event_digest.size());
  value.append(reinterpret_cast<const char*>(leaf.data()), leaf.size());
  return value;
}

Result<RecordView> decode_record(std::string_view value) {
  if (value.empty()) return Errc::corruption;
  const auto* b = reinterpret_cast<const std::uint8_t*>(value.data());
  if (b[0] != kRecordFormatV1 && b[0] != kRecordFormatPruned) return Errc::unsupported_version;
  if (value.size() < kRecordHeaderSize) return Errc::corruption;
  RecordView r;
  r.format = b[0];
  r.partition = Partition{detail::get_be32(b + 1)};
  r.seq = Seq{detail::get_be64(b + 5)};
  std::memcpy(r.hash.data(), b + 13, 32);
  if (b[0] == kRecordFormatPruned) {
    if (value.size() != kPrunedRecordSize) return Errc::corruption;
    r.pruned = true;
    std::memcpy(r.event_digest.data(), b + kRecordHeaderSize, 32);
    std::memcpy(r.leaf.data(), b + kRecordHeaderSize + 32, 32);
    return r;
  }
  r.event = ByteView(b + kRecordHeaderSize, value.size() - kRecordHeaderSize);
  return r;
}

Hash record_leaf(const Record& record) {
  return merkle::leaf_hash(as_bytes(
      encode_record(record.position.partition, record.position.seq, record.hash, record.event)));
}

}  // namespace sechex::ledger
