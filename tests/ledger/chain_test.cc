// The hash chain formula and record encoding (ARCHITECTURE.md "The log and its hash chain").
#include <gtest/gtest.h>

#include "ledger/crypto.h"
#include "ledger/log_store.h"
#include "ledger/record.h"

namespace sechex::ledger {
namespace {

// Expected values computed independently with Python's hashlib, not with this code:
//   import hashlib, struct
//   prev = bytes(range(32)); ev = b"sechex test event"
//   hashlib.sha256(b"sechex-ledger/v1" + struct.pack(">I", 3) + struct.pack(">Q", 7)
//                  + prev + hashlib.sha256(ev).digest()).hexdigest()
TEST(ChainHash, MatchesIndependentlyComputedKnownAnswer) {
  Hash prev{};
  for (int i = 0; i < 32; ++i) prev[i] = static_cast<std::uint8_t>(i);
  const std::string ev = "sechex test event";
  EXPECT_EQ(to_hex(chain_hash(Partition{3}, Seq{7}, prev, as_bytes(ev))),
            "bff8dfdcb40772fe7a6b649213d5fbf291bd7be857bcad85da36a81ff0379f63");
}

// Same method with partition 0, seq 0, hash[-1] = 32 zero bytes and an empty event.
TEST(ChainHash, GenesisRecordUsesZeroPredecessor) {
  EXPECT_EQ(to_hex(chain_hash(Partition{0}, Seq{0}, Hash{}, ByteView{})),
            "27c34355dab54bbb5d650853d3f84319595767637485dc15c279fb236a166f42");
}

TEST(ChainHash, BindsPartitionSeqAndPredecessor) {
  const std::string ev = "e";
  const auto base = chain_hash(Partition{1}, Seq{5}, Hash{}, as_bytes(ev));
  EXPECT_NE(base, chain_hash(Partition{2}, Seq{5}, Hash{}, as_bytes(ev)));
  EXPECT_NE(base, chain_hash(Partition{1}, Seq{6}, Hash{}, as_bytes(ev)));
  Hash other{};
  other[31] = 1;
  EXPECT_NE(base, chain_hash(Partition{1}, Seq{5}, other, as_bytes(ev)));
  EXPECT_EQ(base,
            chain_hash_from_digest(Partition{1}, Seq{5}, Hash{}, crypto::sha256(as_bytes(ev))));
}

TEST(LogKey, IsTwelveBigEndianBytesThatSortByPartitionThenSeq) {
  const auto k = encode_log_key(Partition{0x01020304}, Seq{0x05060708090a0b0cULL});
  ASSERT_EQ(k.size(), 12u);
  EXPECT_EQ(to_hex(as_bytes(k)), "0102030405060708090a0b0c");
  EXPECT_LT(encode_log_key(Partition{1}, Seq{UINT64_MAX}), encode_log_key(Partition{2}, Seq{0}));
  EXPECT_LT(encode_log_key(Partition{1}, Seq{255}), encode_log_key(Partition{1}, Seq{256}));
  Position pos;
  ASSERT_TRUE(decode_log_key(k, pos));
  EXPECT_EQ(pos.partition.value, 0x01020304u);
  EXPECT_EQ(pos.seq.value, 0x05060708090a0b0cULL);
  EXPECT_FALSE(decode_log_key(k.substr(1), pos));
}

TEST(Record, RoundTripsAndRejectsShortOrNewerFormats) {
  Hash h{};
  h[0] = 0xab;
  const std::string ev = "payload";
  const auto value = encode_record(Partition{2}, Seq{9}, h, as_bytes(ev));
  ASSERT_EQ(value.size(), kRecordHeaderSize + ev.size());
  auto r = decode_record(value);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.value().partition.value, 2u);
  EXPECT_EQ(r.value().seq.value, 9u);
  EXPECT_EQ(r.value().hash, h);
  EXPECT_EQ(std::string(r.value().event.begin(), r.value().event.end()), ev);

  EXPECT_EQ(decode_record(value.substr(0, kRecordHeaderSize - 1)).error(), Errc::corruption);
  EXPECT_EQ(decode_record("").error(), Errc::corruption);
  auto newer = value;
  newer[0] = 3;
  EXPECT_EQ(decode_record(newer).error(), Errc::unsupported_version);
}

TEST(Partitioning, IsStableFirstFourBytesOfSha256ModP) {
  // python3: int.from_bytes(hashlib.sha256(b"user-42").digest()[:4], "big") % 8 == 3
  EXPECT_EQ(partition_for("user-42", 8).value, 3u);
  EXPECT_EQ(partition_for("anything", 1).value, 0u);
}

}  // namespace
}  // namespace sechex::ledger
