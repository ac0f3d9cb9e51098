// Email: queueing, rendering and delivering the mails the identity flows send (issue 5;
// API.md "Identity"; spec 003 FR-038 retries, FR-039 admin alert, FR-041 idempotent retries).
//
// Flow. A command handler that must send a mail appends build_mail_queued() in the SAME
// decision as the event that causes the mail (EmailVerificationIssued + MailQueued in one
// append), so a mail is queued if and only if its cause is recorded, and calls
// MailWorker::notify(). The outbox projection (projections/outbox.h) lists pending mails by due
// time. The MailWorker takes due mails of the partitions this node owns, unseals the address and
// the secret, renders the message, hands it to the transport and records the outcome through the
// command path (MailDelivered, or MailDeliveryFailed with the next attempt's time).
//
// Retries (decide_mail_outcome, pure; the policy is api/app/retry.h's, shared with webhook
// deliveries): attempt n (1-based) failing transiently is retried at now + backoff_base *
// 2^(n-1) (2 s, 4 s, 8 s with the defaults), stretched by up to a quarter at random (jitter);
// the failure of attempt max_attempts (1 + 3 retries) is final. Permanent failures are final at
// once: the subject was erased ("subject_erased": the mail is never sent), the sealed fields cannot
// be opened, the mail cannot be rendered, the server refused it with a 5xx reply, or it is older
// than max_age (a stale code or link helps nobody). A final MailDeliveryFailed is the admin alert:
// it is the audit event, ledgerd counts it in sechex_mail_delivery_failures_total and logs one
// line, and the outbox entry's state "failed" is the flag an admin queries
// (projections::failed_mails).
//
// Idempotence and delivery guarantee. Every attempt of one mail sends the same Message-ID
// `<message_id@sechex-ledger>`; before sending the worker re-reads the entry and skips it unless
// it is still pending, and the outcome is recorded only while it is (first outcome wins). A
// crash after the server accepted the mail and before MailDelivered was appended resends it
// (same Message-ID) after restart: delivery is at least once, duplicates are recognisable.
//
// Transports (MailerConfig::smtp_url):
//   ""          write <outbox_dir>/<message_id>.eml (mode 0600) through a temporary file, fsync
//               and rename, so a crash never leaves half a mail (the dev default; ledgerd uses
//               <data-dir>/outbox).
//   smtp://H:P  SMTP through libcurl; with require_tls the session is upgraded with STARTTLS
//               and refused when the server does not offer it (CURLUSESSL_ALL); without it TLS
//               is used when offered and plain text otherwise (for a loopback test server).
//   smtps://H:P implicit TLS from the first byte (port 465).
// Certificates are verified against the system store (peer and host name) whenever TLS is used.
//
// Personal data. The address and the secret are sealed in the event and unsealed only in the
// worker, just before rendering; they never appear in logs, error strings or events.
// Header values (address, subject, From) with CR or LF are refused (header injection), and so
// are addresses with characters that cannot occur in one.
//
// Thread-safety: the free functions are pure or reentrant. MailWorker: see its class comment.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "api/app/commands.h"
#include "api/app/periodic_task.h"
#include "ledger/clock.h"
#include "ledger/event_builder.h"
#include "ledger/key_store.h"
#include "ledger/result.h"
#include "projections/outbox.h"

namespace sechex::api {

// Mail kinds (MailQueued.kind): projections/outbox.h, where the producers see them too.
using projections::kMailAccountLocked;
using projections::kMailAdminAlert;
using projections::kMailExclusiveNewDevice;
using projections::kMailOtpCode;
using projections::kMailOtpLockout;
using projections::kMailPasswordReset;
using projections::kMailPasswordResetDone;
using projections::kMailVerifyEmail;

struct MailRequest {
  std::string kind;
  std::string to;      // the recipient address (validated upstream; checked again here)
  std::string secret;  // the token or code the mail carries; empty for kinds without one
  std::string locale = "en";
};

// An encoded MailQueued event and the message id it names.
struct QueuedMail {
  ledger::Bytes bytes;
  std::string message_id;  // 32 lowercase hex digits from RAND_bytes
};
// The MailQueued envelope for `request`, with `to` and `secret` sealed under meta.subject's data
// key, and its new message id. Errc::invalid_argument for an unknown kind, a kind that needs a
// secret without one (or the reverse), an address or secret unfit for a mail (see
// check_mail_request), an unsupported locale is replaced by "en". Errc::erased when the subject was
// erased.
Result<QueuedMail> build_mail_queued(ledger::KeyStore& keys, const ledger::EventMeta& meta,
                                     const MailRequest& request);
// The checks build_mail_queued makes: a known kind; `to` 3..254 bytes of printable ASCII
// without blanks, '<', '>', '"', '(', ')', ',', ';', '\', '[', ']' and with one '@' not at
// either end;
// a secret (when the kind has one) of 1..256 printable ASCII bytes without blanks, and 8
// digits for otp_code.
Result<void> check_mail_request(const MailRequest& request);
// "zh-CN" for zh-CN (and "zh", "zh-Hans"...), else "en".
std::string mail_locale(std::string_view locale);

// What the worker has unsealed, ready to render.
struct MailContent {
  std::string message_id;
  std::string kind;
  std::string locale;
  std::string to;
  std::string secret;
};

// A rendered mail: header values and the body (LF line ends; render_eml makes them CRLF).
struct RenderedMail {
  std::string message_id;  // without the <...@sechex-ledger> decoration
  std::string from;        // "Name <address>" or "address"
  std::string to;
  std::string subject;  // UTF-8; encoded as RFC 2047 when not ASCII
  std::string body;     // UTF-8 text
  std::int64_t date_micros = 0;
};

// The template of content.kind in content.locale. Links: <public_url>/verify-email?token=<token>
// and <public_url>/reset-password?token=<token> (the token percent-encoded, a trailing '/' of
// public_url dropped); otp_code puts the code on a line of its own. Errc::invalid_argument for
// an unknown kind or when check_mail_request would refuse the content.
Result<RenderedMail> render_mail(const MailContent& content, std::string_view from,
                                 std::string_view public_url, std::int64_t date_micros);
// The RFC 5322 message: Message-ID <message_id@sechex-ledger>, Date (RFC 5322 form, UTC), From,
// To, Subject, MIME-Version, Content-Type: text/plain; charset=utf-8,
// Content-Transfer-Encoding: 7bit (8bit when the body is not ASCII), Auto-Submitted:
// auto-generated; CRLF line ends. Errc::invalid_argument when a header value holds CR, LF or
// another control character, the message id is not 32 lowercase hex digits, or a body line is
// longer than 998 bytes.
Result<std::string> render_eml(const RenderedMail& mail);

struct MailerConfig {
  std::string smtp_url;  // "" = write .eml files to outbox_dir; smtp:// or smtps:// (see above)
  std::string from = "Sechex Ledger <no-reply@localhost>";
  std::string username;  // SMTP AUTH when not empty
  std::string password;
  std::string outbox_dir;
  std::string public_url = "http://127.0.0.1:8080";
  std::chrono::milliseconds backoff_base{2000};
  std::uint32_t max_attempts = 4;    // 1 + 3 retries (spec 003 FR-038)
  std::chrono::seconds timeout{30};  // connect and whole-transfer limit of one SMTP attempt
  // STARTTLS required for smtp:// (ledgerd: true unless the host is loopback or
  // --smtp-allow-plaintext); smtps:// always uses TLS.
  bool require_tls = true;
  std::chrono::seconds max_age{24 * 3600};  // older pending mails fail "expired"
  std::chrono::milliseconds poll_interval{250};
  std::size_t batch = 64;  // due mails taken per pass
  // --admin-email: who gets an admin_alert mail when a mail is given up (003 FR-039), queued in
  // the same append as the final MailDeliveryFailed (never for a failed admin_alert itself).
  std::vector<std::string> admin_emails;
};

// Whether an smtp:// or smtps:// URL names a loopback host (127.0.0.0/8, ::1, localhost).
bool is_loopback_smtp_url(std::string_view url);

// How one delivery attempt went (what the transports return).
struct DeliveryOutcome {
  enum class Status { delivered, transient_failure, permanent_failure };
  Status status = Status::transient_failure;
  std::string transport;  // "smtp" | "file"
  std::string error;      // short and free of personal data: "smtp: Timeout was reached (0)"
};

// What to record after an attempt: nothing (the entry is no longer pending), MailDelivered, or
// MailDeliveryFailed.
struct MailDecision {
  enum class Kind { none, delivered, failed };
  Kind kind = Kind::none;
  std::uint32_t attempt = 0;         // the attempt just made (1-based)
  std::string transport;             // delivered
  std::string error;                 // failed
  bool final = false;                // failed: no more attempts
  std::int64_t next_attempt_at = 0;  // failed, not final
};

// The pure decision of the worker (ARCHITECTURE.md): for `entry` as it stands before the
// attempt, the attempt's outcome and `now_micros`.
// `jitter` in [0, 1) stretches a retry's delay by up to a quarter (api/app/retry.h), so mails
// failing together do not retry in lockstep; the worker draws it from RAND_bytes.
MailDecision decide_mail_outcome(const projections::OutboxEntry& entry,
                                 const DeliveryOutcome& outcome, const MailerConfig& config,
                                 std::int64_t now_micros, double jitter = 0);
// The event recording `decision` for `message_id` (Errc::invalid_argument for Kind::none).
Result<ledger::Bytes> build_mail_outcome(const ledger::EventMeta& meta, std::string_view message_id,
                                         const MailDecision& decision);

// Transports. `cancel` (may be null) aborts an SMTP transfer in progress when it becomes true.
DeliveryOutcome deliver_to_file(const std::string& outbox_dir, std::string_view message_id,
                                std::string_view eml);
DeliveryOutcome deliver_smtp(const MailerConfig& config, std::string_view to, std::string_view eml,
                             const std::atomic<bool>* cancel);

struct MailWorkerHooks {
  std::function<void(std::string_view transport)> on_sent;      // a mail was delivered
  std::function<void(std::string_view kind)> on_final_failure;  // the admin alert
  std::function<void(const std::string& line)> log;             // no personal data
};

// The delivery worker.
//
// Lifecycle: construct over a CommandPath (whose log and projections the worker reads and
// appends to), the KeyStore and a clock, all of which must outlive it; start() after the
// projections caught up (ledgerd: right after catch-up); stop() (or destruction) before the
// command path, key store and log go. stop() wakes the worker at once (PeriodicTask) and
// returns once the attempt in progress ends: at most the time to abort one SMTP transfer (the
// transfer is cancelled through libcurl's progress callback; it never waits out the full
// timeout). A stopped worker stays stopped: start() after
// stop() does nothing, and run_once() returns without delivering.
//
// Thread-safety: notify() and stop() may be called from any thread at any time. run_once()
// delivers what is due now on the caller's thread (tests call it without start()); it is
// serialised with the worker thread, so calling it while the thread runs is safe but pointless.
class MailWorker {
 public:
  MailWorker(CommandPath& commands, ledger::KeyStore& keys, MailerConfig config, const Clock& clock,
             MailWorkerHooks hooks = {});
  ~MailWorker();
  MailWorker(const MailWorker&) = delete;
  MailWorker& operator=(const MailWorker&) = delete;

  void start();
  void stop();
  // Wakes the worker early (a handler just queued a mail).
  void notify();
  // One pass: every due mail of an owned partition (up to config.batch) gets one attempt and
  // its outcome is recorded. Returns how many outcomes were recorded.
  Result<std::size_t> run_once();

 private:
  Result<bool> attempt(const projections::OutboxEntry& entry);
  DeliveryOutcome deliver(const projections::OutboxEntry& entry);
  void log(const std::string& line) const;

  CommandPath& commands_;
  ledger::KeyStore& keys_;
  const MailerConfig config_;
  const Clock& clock_;
  const MailWorkerHooks hooks_;
  std::mutex run_mu_;  // one pass at a time
  std::atomic<bool> cancel_{false};
  PeriodicTask loop_;  // last: its thread uses the members above
};

}  // namespace sechex::api
