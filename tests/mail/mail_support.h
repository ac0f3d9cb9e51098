// Shared by the mail tests: a ledger with a command path to queue mails through, and helpers
// that read what a mail says.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "api/app/commands.h"
#include "api/mail/mail.h"
#include "ledger/log_store.h"
#include "projections/store.h"
#include "support/test_util.h"

namespace sechex::api::testing {

using sechex::testing::TempDir;

inline constexpr std::uint32_t kMailPartitions = 2;

// A ledger (embedded log, keys, projections, command path) in a temporary directory. Events are
// stamped with `clock`: the fixture's ManualClock unless a test passes another one.
struct MailWorld {
  explicit MailWorld(const Clock* use_clock = nullptr)
      : clock(use_clock != nullptr ? *use_clock : manual) {
    auto ledger = sechex::testing::open_test_ledger(dir.sub("log"), kMailPartitions);
    log = std::move(ledger.log);
    keys = std::move(ledger.keys);
    store = projections::ProjectionStore::open(dir.sub("projections"), kMailPartitions,
                                               projections::default_projections())
                .value();
    commands = std::make_unique<CommandPath>(*log, *store);
  }

  // Queues `request` for `subject` through the command path, as a handler would; returns the
  // message id.
  std::string queue(const std::string& subject, const MailRequest& request) {
    std::string id;
    auto r = commands->run(
        commands->partition_for(subject), [&]() -> Result<std::vector<ledger::Bytes>> {
          SECHEX_TRY(
              auto queued,
              build_mail_queued(*keys, {subject, subject, "req-mail", clock.now_micros(), {}, {}},
                                request));
          id = queued.message_id;
          return std::vector<ledger::Bytes>{std::move(queued.bytes)};
        });
    EXPECT_TRUE(r) << r.error().message();
    return id;
  }

  std::optional<projections::OutboxEntry> state(const std::string& id) {
    return projections::mail_state(*store, id).value();
  }

  // Every record of `subject`'s partition with a Mail* event, in log order.
  std::vector<ledger::Record> mail_records(const std::string& subject) {
    const auto p = commands->partition_for(subject);
    auto all = log->read_range(p, ledger::Seq{0}, log->head(p).next).value();
    std::vector<ledger::Record> out;
    for (auto& r : all) {
      const auto t = schemas::envelope_of(r.event.data())->event_type();
      if (t == schema::Event::MailQueued || t == schema::Event::MailDelivered ||
          t == schema::Event::MailDeliveryFailed) {
        out.push_back(std::move(r));
      }
    }
    return out;
  }

  TempDir dir;
  ManualClock manual;
  const Clock& clock;
  std::unique_ptr<ledger::LogStore> log;
  std::unique_ptr<ledger::KeyStore> keys;
  std::unique_ptr<projections::ProjectionStore> store;
  std::unique_ptr<CommandPath> commands;
};

inline const schema::Envelope* envelope(const ledger::Record& r) {
  return schemas::envelope_of(r.event.data());
}

// The value of header `name` (first occurrence, unfolded), or "" when absent.
inline std::string header(const std::string& eml, const std::string& name) {
  const auto end = eml.find("\r\n\r\n");
  std::size_t at = 0;
  while (at < end) {
    const auto eol = eml.find("\r\n", at);
    if (eml.compare(at, name.size() + 2, name + ": ") == 0) {
      std::string v = eml.substr(at + name.size() + 2, eol - at - name.size() - 2);
      for (auto next = eol + 2; next < end && (eml[next] == ' ' || eml[next] == '\t');) {
        const auto e2 = eml.find("\r\n", next);
        v += eml.substr(next, e2 - next);
        next = e2 + 2;
      }
      return v;
    }
    at = eol + 2;
  }
  return "";
}

// The body's lines (CRLF-separated, after the blank line ending the header).
inline std::vector<std::string> body_lines(const std::string& eml) {
  std::vector<std::string> out;
  auto at = eml.find("\r\n\r\n");
  if (at == std::string::npos) return out;
  at += 4;
  while (at < eml.size()) {
    const auto eol = eml.find("\r\n", at);
    out.push_back(eml.substr(at, eol == std::string::npos ? std::string::npos : eol - at));
    if (eol == std::string::npos) break;
    at = eol + 2;
  }
  return out;
}

// The first body line containing `needle`, or "".
inline std::string line_with(const std::string& eml, const std::string& needle) {
  for (const auto& l : body_lines(eml)) {
    if (l.find(needle) != std::string::npos) return l;
  }
  return "";
}

}  // namespace sechex::api::testing
