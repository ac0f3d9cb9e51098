// Compliance commands of ledgerctl: Merkle proofs an auditor checks offline, and retention.
//
//   prove          --partition P --seq S [--size N] [-o FILE]: an inclusion proof of one
//                  record against the signed checkpoint of N records (default: the latest);
//                  --partition P --from A --to B: a consistency proof between two checkpoints.
//                  The JSON of GET /v1/admin/ledger/proof and /consistency (ledger/proof.h).
//   verify-proof   FILE [--trusted-keys K]: checks a proof from either source, with only the
//                  verifier keys; also accepts the API's {"data": …} envelope.
//   retention run  [--days N] [--dry-run] [--archive-dir D]: removes the payloads older than N
//                  days (default 90) with ledgerd stopped (ledgerd runs the same job on its own
//                  schedule); each step is chained as a RetentionApplied event by
//                  "operator:<user>"; with --archive-dir, an archive of what goes is written
//                  (durably) first.
//   archive        --from T1 --to T2 [--partition P] -o FILE: an archive (ledger/archive.h) an
//                  auditor verifies offline; works beside a running ledgerd.
//   verify --archive FILE [--trusted-key K]: checks an archive with no data directory.
//
// Exit codes as every ledgerctl command: 0 done / proof valid, 1 proof invalid (tampered or
// forged), 2 could not run. Errors are thrown as std::runtime_error (exit 2) or returned.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ledger/log.h"
#include "ledger/log_store.h"

namespace sechex::ops {

int cmd_prove(const std::vector<std::string>& args,
              const std::function<std::unique_ptr<ledger::Log>()>& open_log);

// `trusted_keys` is the default verifier key file (<data-dir>/keys/checkpoint-verifiers.txt).
int cmd_archive(const std::vector<std::string>& args,
                const std::function<std::unique_ptr<ledger::Log>()>& open_log);

// `ledgerctl verify --archive FILE`: 0 verified, 1 tampered, 2 could not run.
int verify_archive_file(const std::string& path, const std::string& trusted_keys);

int cmd_verify_proof(const std::vector<std::string>& args, const std::string& trusted_keys);

struct RetentionAccess {
  // The log opened for writing (ledgerd stopped) and the projections' directory.
  std::function<std::unique_ptr<ledger::Log>()> open_writer;
  std::string projections_path;
};
int cmd_retention(const std::vector<std::string>& args, const RetentionAccess& access);

// "pruned below seq N (before T)" for a partition's retention cut, for messages.
std::string describe_cut(ledger::Partition p, const ledger::RetentionCut& cut);

}  // namespace sechex::ops
