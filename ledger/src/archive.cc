#include "ledger/archive.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <istream>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>

#include "ledger/clock.h"
#include "ledger/crypto.h"
#include "ledger/proof.h"
#include "ledger/record.h"
#include "ledger/time_format.h"
#include "schemas/events.h"

namespace sechex::ledger {
namespace {

using json = nlohmann::json;

constexpr std::size_t kBatch = 4096;

std::optional<std::int64_t> time_of(const Record& r) {
  if (schemas::check_envelope(r.event.data(), r.event.size()) != schemas::CheckResult::ok) {
    return std::nullopt;
  }
  return schemas::envelope_of(r.event.data())->time_micros();
}

// The latest signed checkpoint with a Merkle root: its note and size (nullopt when none).
Result<std::optional<std::pair<std::string, std::uint64_t>>> rooted_latest(const Log& log,
                                                                           Partition p) {
  SECHEX_TRY(auto note, log.latest_checkpoint(p));
  if (!note) return std::optional<std::pair<std::string, std::uint64_t>>{};
  const auto cp = parse_checkpoint_body(*note);
  if (!cp) return Errc::corruption;
  if (!cp->root) return std::optional<std::pair<std::string, std::uint64_t>>{};
  return std::optional{std::pair{std::move(*note), cp->size}};
}

// "<name>+<8 hex digits>" of each signature line of a signed note.
std::set<std::string> signer_ids(const std::string& note) {
  std::set<std::string> out;
  const auto sep = note.rfind("\n\n");
  if (sep == std::string::npos) return out;
  std::size_t pos = sep + 2;
  static const std::string kDash = "\xE2\x80\x94 ";
  while (pos < note.size()) {
    const auto end = note.find('\n', pos);
    const auto line = note.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? note.size() : end + 1;
    if (line.rfind(kDash, 0) != 0) continue;
    const auto rest = line.substr(kDash.size());
    const auto space = rest.find(' ');
    Bytes blob;
    if (space == std::string::npos || !crypto::base64_decode(rest.substr(space + 1), blob) ||
        blob.size() < 4) {
      continue;
    }
    out.insert(rest.substr(0, space) + "+" + to_hex(ByteView(blob.data(), 4)));
  }
  return out;
}

struct Checker {
  VerifyReport report;
  bool stopped = false;

  void fault(VerifyReport::Outcome outcome, Partition p, Seq s, std::string reason,
             std::string detail) {
    if (stopped) return;
    stopped = true;
    report.outcome = outcome;
    report.fault = Fault{{p, s}, std::move(reason), std::move(detail)};
  }
  void tampered(Partition p, Seq s, std::string reason, std::string detail) {
    fault(VerifyReport::Outcome::tampered, p, s, std::move(reason), std::move(detail));
  }
};

bool u64_field(const json& j, const char* name, std::uint64_t& out) {
  if (!j.contains(name) || !j[name].is_number_unsigned()) return false;
  out = j[name].get<std::uint64_t>();
  return true;
}

}  // namespace

Result<ArchivePlan> plan_archive(const Log& log, std::int64_t from_micros, std::int64_t to_micros,
                                 std::optional<Partition> only) {
  ArchivePlan plan;
  for (std::uint32_t i = 0; i < log.partition_count(); ++i) {
    const Partition p{i};
    if (only && *only != p) continue;
    SECHEX_TRY(auto signed_cp, rooted_latest(log, p));
    const std::uint64_t signed_size = signed_cp ? signed_cp->second : 0;
    std::optional<std::uint64_t> first;
    std::uint64_t last = 0;
    auto next = log.retention_cut(p).below.value;
    const auto head = log.head(p).next.value;
    while (next < head) {
      SECHEX_TRY(auto batch, log.read_range(p, Seq{next}, Seq{head}, kBatch));
      if (batch.empty()) break;
      for (const auto& r : batch) {
        const auto t = time_of(r);
        if (!t || *t < from_micros || *t >= to_micros) continue;
        const auto seq = r.position.seq.value;
        if (seq >= signed_size) {
          ++plan.unsigned_tail;
          continue;
        }
        if (!first) first = seq;
        last = seq;
      }
      next = batch.back().position.seq.value + 1;
    }
    if (first) plan.ranges.push_back({p, Seq{*first}, Seq{last + 1}});
  }
  return plan;
}

Result<ArchiveSummary> write_archive(const Log& log, const std::vector<ArchiveRange>& ranges,
                                     std::optional<std::int64_t> from_micros,
                                     std::optional<std::int64_t> to_micros, std::ostream& out) {
  // Checkpoints first: the header names the keys that signed them.
  std::map<std::uint32_t, std::pair<std::string, std::uint64_t>> signed_cps;
  std::set<std::string> key_ids;
  for (const auto& r : ranges) {
    SECHEX_TRY(auto cp, rooted_latest(log, r.partition));
    if (!cp || cp->second < r.below.value || r.from >= r.below) return Errc::not_found;
    for (auto& id : signer_ids(cp->first)) key_ids.insert(id);
    signed_cps[r.partition.value] = std::move(*cp);
  }
  json header{{"format", kArchiveFormat},
              {"ledgerId", log.ledger_id()},
              {"from", from_micros ? json(format_rfc3339(*from_micros)) : json(nullptr)},
              {"to", to_micros ? json(format_rfc3339(*to_micros)) : json(nullptr)},
              {"created", format_rfc3339(SystemClock::instance().now_micros())},
              {"keyIds", key_ids}};
  out << header.dump() << "\n";
  ArchiveSummary summary;
  for (const auto& r : ranges) {
    const auto& [note, size] = signed_cps[r.partition.value];
    Hash prev{};
    if (r.from.value > 0) {
      SECHEX_TRY(prev, log.record_hash(r.partition, Seq{r.from.value - 1}));
    }
    SECHEX_TRY(auto proof, prove_inclusion(log, r.partition, Seq{r.below.value - 1}, size));
    out << json{{"partition", r.partition.value},
                {"firstSeq", r.from.value},
                {"prevHash", to_hex(prev)},
                {"count", r.below.value - r.from.value},
                {"checkpoint", note},
                {"proof", to_json(proof)}}
               .dump()
        << "\n";
    for (auto next = r.from; next < r.below;) {
      SECHEX_TRY(auto batch, log.read_range(r.partition, next, r.below, kBatch));
      if (batch.empty()) return Errc::not_found;
      for (const auto& rec : batch) {
        const auto bytes = encode_record(r.partition, rec.position.seq, rec.hash, rec.event);
        out << json{{"record", crypto::base64_encode(as_bytes(bytes))}}.dump() << "\n";
      }
      next = Seq{batch.back().position.seq.value + 1};
      summary.records += batch.size();
    }
    ++summary.partitions;
  }
  out.flush();
  if (!out) return Errc::io_error;
  return summary;
}

Result<std::string> write_archive_file(const Log& log, const std::vector<ArchiveRange>& ranges,
                                       const std::string& dir, const std::string& name,
                                       std::optional<std::int64_t> from_micros,
                                       std::optional<std::int64_t> to_micros) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Errc::io_error;
  const auto path = (std::filesystem::path(dir) / name).string();
  const auto partial = path + ".partial";
  {
    std::ofstream out(partial, std::ios::trunc | std::ios::binary);
    if (!out) return Errc::io_error;
    if (auto written = write_archive(log, ranges, from_micros, to_micros, out); !written) {
      out.close();
      std::remove(partial.c_str());
      return written.error();
    }
  }
  // Durable before anything it preserves is pruned: fsync the file, rename, fsync the directory.
  const int fd = ::open(partial.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errc::io_error;
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || std::rename(partial.c_str(), path.c_str()) != 0) return Errc::io_error;
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return path;
}

VerifyReport verify_archive(std::istream& in, const TrustedKeys& trusted) {
  Checker c;
  c.report.signatures_checked = true;
  std::string line;
  const Partition none{0};
  if (!std::getline(in, line)) {
    c.fault(VerifyReport::Outcome::cannot_run, none, Seq{0}, "archive_malformed",
            "the file is empty");
    return c.report;
  }
  const auto header = json::parse(line, nullptr, false);
  if (!header.is_object() || !header.contains("format") || !header["format"].is_string() ||
      !header.contains("ledgerId") || !header["ledgerId"].is_string()) {
    c.fault(VerifyReport::Outcome::cannot_run, none, Seq{0}, "archive_malformed",
            "not a Sechex archive (no sechex-archive header line)");
    return c.report;
  }
  if (header["format"] != kArchiveFormat) {
    c.fault(VerifyReport::Outcome::cannot_run, none, Seq{0}, "unsupported_archive_format",
            "archive format '" + header["format"].get<std::string>() +
                "' is not one this build reads; upgrade ledgerctl");
    return c.report;
  }
  const auto ledger_id = header["ledgerId"].get<std::string>();
  std::set<std::uint32_t> seen;
  while (!c.stopped && std::getline(in, line)) {
    if (line.empty()) continue;
    const auto section = json::parse(line, nullptr, false);
    std::uint64_t part = 0, first = 0, count = 0;
    if (!section.is_object() || !u64_field(section, "partition", part) || part > UINT32_MAX ||
        !u64_field(section, "firstSeq", first) || !u64_field(section, "count", count) ||
        count == 0 || !section.contains("checkpoint") || !section["checkpoint"].is_string() ||
        !section.contains("prevHash") || !section["prevHash"].is_string() ||
        !section.contains("proof")) {
      c.tampered(none, Seq{0}, "archive_malformed", "a partition section is malformed or missing");
      break;
    }
    const Partition p{static_cast<std::uint32_t>(part)};
    if (!seen.insert(p.value).second) {
      c.tampered(p, Seq{first}, "archive_malformed", "partition appears twice");
      break;
    }
    // The proof checks the checkpoint (a trusted signature, a root, this partition) and ties the
    // section's last record to it; the checkpoint must also be this ledger's.
    const auto note = section["checkpoint"].get<std::string>();
    const auto proof = inclusion_from_json(section["proof"]);
    const auto last = first + count - 1;
    if (!proof || proof->partition != p || proof->seq.value != last || proof->checkpoint != note) {
      c.tampered(p, Seq{last}, "archive_malformed",
                 "the section's proof is not an inclusion proof of its last record against its "
                 "checkpoint");
      break;
    }
    if (const auto pc = check_inclusion(*proof, trusted); !pc.ok) {
      c.tampered(p, Seq{last}, pc.reason, pc.detail);
      break;
    }
    if (const auto cp = parse_checkpoint_body(note);
        !cp || cp->origin != checkpoint_origin(ledger_id, p)) {
      c.tampered(
          p, Seq{first}, "checkpoint_wrong_origin",
          "the checkpoint is not partition " + std::to_string(p.value) + " of ledger " + ledger_id);
      break;
    }
    Bytes prev_bytes;
    Hash prev{};
    if (!from_hex(section["prevHash"].get<std::string>(), prev_bytes) || prev_bytes.size() != 32) {
      c.tampered(p, Seq{first}, "archive_malformed", "prevHash is not a 32-byte hex hash");
      break;
    }
    std::copy(prev_bytes.begin(), prev_bytes.end(), prev.begin());
    PartitionSummary summary;
    summary.partition = p;
    summary.checkpoints = 1;
    Bytes last_record;
    for (std::uint64_t i = 0; i < count && !c.stopped; ++i) {
      const Seq s{first + i};
      std::string rl;
      if (!std::getline(in, rl)) {
        c.tampered(p, s, "missing_record",
                   "the archive ends before record " + std::to_string(s.value));
        break;
      }
      const auto rj = json::parse(rl, nullptr, false);
      Bytes bytes;
      if (!rj.is_object() || !rj.contains("record") || !rj["record"].is_string() ||
          !crypto::base64_decode(rj["record"].get<std::string>(), bytes)) {
        c.tampered(p, s, "record_malformed", "not a record line");
        break;
      }
      const auto view = decode_record(
          std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
      if (!view || view.value().pruned) {
        c.tampered(p, s, "record_malformed", "the record does not decode as a whole record");
        break;
      }
      const auto& v = view.value();
      if (v.partition != p || v.seq != s) {
        c.tampered(p, s, "record_out_of_place",
                   "the record was written as (" + std::to_string(v.partition.value) + ", " +
                       std::to_string(v.seq.value) + ")");
        break;
      }
      if (chain_hash(p, s, prev, v.event) != v.hash) {
        c.tampered(p, s, "hash_mismatch",
                   "the record does not link to its predecessor (altered, dropped or reordered)");
        break;
      }
      // FlatBuffers reads need the event at an aligned address; in the record it is at 45.
      const Bytes event(v.event.begin(), v.event.end());
      if (schemas::check_envelope(event.data(), event.size()) ==
          schemas::CheckResult::newer_version) {
        c.fault(VerifyReport::Outcome::cannot_run, p, s, "unsupported_schema_version",
                "an event was written by a newer schema; upgrade ledgerctl");
        break;
      }
      prev = v.hash;
      if (i + 1 == count) last_record = std::move(bytes);
      ++summary.records;
    }
    if (c.stopped) break;
    // The chain ends in the record the proof puts under the signature.
    if (last_record != proof->record) {
      c.tampered(p, Seq{last}, "archive_malformed",
                 "the last record is not the one the inclusion proof vouches for");
      break;
    }
    summary.head = prev;
    c.report.records += summary.records;
    c.report.checkpoints += 1;
    c.report.partitions.push_back(summary);
  }
  if (!c.stopped && c.report.partitions.empty()) {
    c.tampered(none, Seq{0}, "archive_malformed", "the archive holds no partition section");
  }
  return c.report;
}

}  // namespace sechex::ledger
