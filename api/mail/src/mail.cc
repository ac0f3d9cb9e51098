#include "api/mail/mail.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "api/app/retry.h"
#include "ledger/crypto.h"

namespace sechex::api {
namespace {

using projections::OutboxEntry;
using Status = DeliveryOutcome::Status;

constexpr const char* kTransportFile = "file";
constexpr const char* kTransportSmtp = "smtp";

bool is_printable_ascii(char c) { return c > 0x20 && c < 0x7f; }

bool kind_needs_secret(std::string_view kind) {
  return kind == kMailVerifyEmail || kind == kMailPasswordReset || kind == kMailOtpCode ||
         kind == kMailAdminAlert;
}
bool is_address(std::string_view a) {
  if (a.size() < 3 || a.size() > 254) return false;
  constexpr std::string_view kForbidden = "<>\"(),;\\[]";
  for (const char c : a) {
    if (!is_printable_ascii(c) || kForbidden.find(c) != std::string_view::npos) return false;
  }
  const auto at = a.find('@');
  return at != std::string_view::npos && at == a.rfind('@') && at > 0 && at + 1 < a.size();
}

bool is_message_id(std::string_view id) {
  return id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0f]);
    }
  }
  return out;
}

// "Thu, 01 Jan 2026 00:00:00 +0000" (RFC 5322 section 3.3), independent of the C locale.
std::string rfc5322_date(std::int64_t micros) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t secs = static_cast<std::time_t>(micros / 1'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday % 7],
                tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c & 0x80) == 0; });
}

// A header value must not end the header (CR, LF) or hold other control characters.
bool is_safe_header_value(std::string_view v) {
  return std::none_of(v.begin(), v.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7f;
  });
}

// RFC 2047 "B" encoded words of at most 45 input bytes each (60 base64 characters, within the
// 75-character limit), split at UTF-8 character boundaries and folded onto continuation lines.
std::string encode_header_text(std::string_view text) {
  if (is_ascii(text)) return std::string(text);
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t n = std::min<std::size_t>(45, text.size() - i);
    while (i + n < text.size() && (static_cast<unsigned char>(text[i + n]) & 0xc0) == 0x80) --n;
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" +
           ledger::crypto::base64_encode(ledger::as_bytes(std::string(text.substr(i, n)))) + "?=";
    i += n;
  }
  return out;
}

// The bare address of "Name <address>" or "address".
std::string address_of(std::string_view from) {
  const auto lt = from.rfind('<');
  const auto gt = from.rfind('>');
  if (lt != std::string_view::npos && gt != std::string_view::npos && lt < gt) {
    return std::string(from.substr(lt + 1, gt - lt - 1));
  }
  return std::string(from);
}

struct Template {
  const char* subject;
  const char* body;  // "{link}" or "{code}" stand for the secret
};
struct KindTemplates {
  const char* kind;
  Template en;
  Template zh;
};

// The templates, by kind, in en and zh-CN. Short and plain: no tracking, no HTML.
constexpr KindTemplates kTemplates[] = {
    {kMailVerifyEmail,
     {"Confirm your email address",
      "Hello,\n\nPlease confirm your email address for Sechex Ledger by opening this link:\n\n"
      "{link}\n\nIf you did not sign up, ignore this mail.\n"},
     {"请验证您的邮箱地址",
      "您好，\n\n请打开以下链接，验证您在 Sechex Ledger 的邮箱地址：\n\n{link}\n\n"
      "如果您没有注册，请忽略此邮件。\n"}},
    {kMailPasswordReset,
     {"Reset your password",
      "Hello,\n\nWe received a request to reset your Sechex Ledger password. Open this link to "
      "choose a new one:\n\n{link}\n\nThe link expires soon. If you did not ask for this, ignore "
      "this mail; your password stays as it is.\n"},
     {"重置您的密码",
      "您好，\n\n我们收到了重置您 Sechex Ledger 密码的请求。请打开以下链接设置新密码：\n\n"
      "{link}\n\n链接很快会失效。如果这不是您本人的操作，请忽略此邮件，您的密码不会改变。\n"}},
    {kMailPasswordResetDone,
     {"Your password was reset",
      "Hello,\n\nThe password of your Sechex Ledger account was just reset and every session was "
      "signed out.\n\nIf this was not you, reset your password now.\n"},
     {"您的密码已重置",
      "您好，\n\n您的 Sechex Ledger 密码刚刚被重置，所有会话均已退出。\n\n"
      "如果这不是您本人的操作，请立即重置密码。\n"}},
    {kMailOtpCode,
     {"Your sign-in code",
      "Hello,\n\nYour Sechex Ledger code is:\n\n{code}\n\nIt is valid for 5 minutes. Never "
      "share it with anyone.\n"},
     {"您的验证码",
      "您好，\n\n您的 Sechex Ledger 验证码是：\n\n{code}\n\n验证码 5 分钟内有效。"
      "请勿将其告诉任何人。\n"}},
    {kMailOtpLockout,
     {"Too many wrong codes",
      "Hello,\n\nA wrong code was entered for your Sechex Ledger account too many times, so "
      "sign-in by code is paused.\n\nIf this was not you, reset your password.\n"},
     {"验证码错误次数过多",
      "您好，\n\n您的账户验证码输入错误次数过多，验证码登录已暂时停用。\n\n"
      "如果这不是您本人的操作，请重置密码。\n"}},
    {kMailAccountLocked,
     {"Your account was locked",
      "Hello,\n\nYour Sechex Ledger account was locked after repeated failed sign-ins.\n\nIf "
      "this was not you, reset your password.\n"},
     {"您的账户已被锁定",
      "您好，\n\n由于多次登录失败，您的 Sechex Ledger 账户已被锁定。\n\n"
      "如果这不是您本人的操作，请重置密码。\n"}},
    {kMailExclusiveNewDevice,
     {"A new device can sign for your account",
      "Hello,\n\nA new device was just enrolled for exclusive mode on your Sechex Ledger "
      "account, after a re-authentication.\n\nIf this was not you, remove the device under "
      "your account's devices and reset your password now.\n"},
     {"新设备已可为您的账户签名",
      "您好，\n\n您的 Sechex Ledger 账户刚刚在重新验证身份后为专属模式登记了一台新设备。\n\n"
      "如果这不是您本人的操作，请立即在账户的设备列表中移除该设备，并重置密码。\n"}},
    {kMailAdminAlert,
     {"Sechex Ledger: background delivery failed",
      "Hello,\n\nA background delivery was given up after its last retry:\n\n{code}\n\n"
      "Failed deliveries are listed by GET /v1/admin/webhooks/deliveries?status=failed (webhooks) "
      "and in the audit log (MailDeliveryFailed, WebhookDeliveryFailed); a webhook delivery can "
      "be sent again with POST /v1/admin/webhooks/deliveries/{id}/retry.\n"},
     {"Sechex Ledger：后台投递失败",
      "您好，\n\n以下后台投递在最后一次重试后仍失败：\n\n{code}\n\n"
      "失败的 Webhook 投递可通过 GET /v1/admin/webhooks/deliveries?status=failed 查看，"
      "并可通过 POST /v1/admin/webhooks/deliveries/{id}/retry 重新发送；"
      "审计日志中也有记录（MailDeliveryFailed、WebhookDeliveryFailed）。\n"}},
};

const KindTemplates* templates_of(std::string_view kind) {
  for (const auto& t : kTemplates) {
    if (kind == t.kind) return &t;
  }
  return nullptr;
}

void replace_all(std::string& s, std::string_view what, std::string_view with) {
  for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + with.size())) {
    s.replace(at, what.size(), with);
  }
}

void ensure_curl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

DeliveryOutcome failure(Status status, std::string transport, std::string error) {
  return {.status = status, .transport = std::move(transport), .error = std::move(error)};
}

}  // namespace

std::string mail_locale(std::string_view locale) {
  std::string l(locale);
  std::transform(l.begin(), l.end(), l.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return l == "zh" || l.rfind("zh-", 0) == 0 ? "zh-CN" : "en";
}

Result<void> check_mail_request(const MailRequest& request) {
  if (templates_of(request.kind) == nullptr || !is_address(request.to)) {
    return make_error_code(ledger::Errc::invalid_argument);
  }
  const auto& s = request.secret;
  if (kind_needs_secret(request.kind) != !s.empty() || s.size() > 256 ||
      !std::all_of(s.begin(), s.end(), is_printable_ascii)) {
    return make_error_code(ledger::Errc::invalid_argument);
  }
  if (request.kind == kMailOtpCode &&
      (s.size() != 8 ||
       !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))) {
    return make_error_code(ledger::Errc::invalid_argument);
  }
  return boost::outcome_v2::success();
}

Result<QueuedMail> build_mail_queued(ledger::KeyStore& keys, const ledger::EventMeta& meta,
                                     const MailRequest& request) {
  SECHEX_TRYV(check_mail_request(request));
  SECHEX_TRY(const auto raw, ledger::crypto::random_bytes(16));
  const auto id = ledger::to_hex(raw);
  ledger::EventBuilder b(&keys, meta);
  SECHEX_TRY(const auto to, b.seal("to", request.to));
  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> secret = 0;
  if (!request.secret.empty()) {
    SECHEX_TRY(secret, b.seal("secret", request.secret));
  }
  auto& f = b.fbb();
  const auto body =
      schema::CreateMailQueued(f, f.CreateString(id), f.CreateString(request.kind), to, secret,
                               f.CreateString(mail_locale(request.locale)));
  SECHEX_TRY(auto bytes, b.finish(body));
  return QueuedMail{std::move(bytes), id};
}

Result<RenderedMail> render_mail(const MailContent& content, std::string_view from,
                                 std::string_view public_url, std::int64_t date_micros) {
  SECHEX_TRYV(check_mail_request(
      {.kind = content.kind, .to = content.to, .secret = content.secret, .locale = "en"}));
  const auto* all = templates_of(content.kind);
  const auto& t = mail_locale(content.locale) == "zh-CN" ? all->zh : all->en;
  std::string base(public_url);
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string body = t.body;
  if (content.kind == kMailVerifyEmail) {
    replace_all(body, "{link}", base + "/verify-email?token=" + percent_encode(content.secret));
  } else if (content.kind == kMailPasswordReset) {
    replace_all(body, "{link}", base + "/reset-password?token=" + percent_encode(content.secret));
  } else if (content.kind == kMailOtpCode || content.kind == kMailAdminAlert) {
    replace_all(body, "{code}", content.secret);
  }
  return RenderedMail{.message_id = content.message_id,
                      .from = std::string(from),
                      .to = content.to,
                      .subject = t.subject,
                      .body = std::move(body),
                      .date_micros = date_micros};
}

Result<std::string> render_eml(const RenderedMail& mail) {
  if (!is_message_id(mail.message_id) || !is_safe_header_value(mail.from) ||
      !is_safe_header_value(mail.to) || !is_safe_header_value(mail.subject) ||
      !is_ascii(mail.from) || !is_address(mail.to) || !is_address(address_of(mail.from))) {
    return make_error_code(ledger::Errc::invalid_argument);
  }
  std::string body;
  std::size_t line = 0;
  for (const char c : mail.body) {
    if (c == '\r') continue;
    if (c == '\n') {
      body += "\r\n";
      line = 0;
      continue;
    }
    if (++line > 998) return make_error_code(ledger::Errc::invalid_argument);
    body.push_back(c);
  }
  if (body.size() < 2 || body.compare(body.size() - 2, 2, "\r\n") != 0) body += "\r\n";
  std::string out;
  out += "Message-ID: <" + mail.message_id + "@sechex-ledger>\r\n";
  out += "Date: " + rfc5322_date(mail.date_micros) + "\r\n";
  out += "From: " + mail.from + "\r\n";
  out += "To: " + mail.to + "\r\n";
  out += "Subject: " + encode_header_text(mail.subject) + "\r\n";
  out += "MIME-Version: 1.0\r\n";
  out += "Content-Type: text/plain; charset=utf-8\r\n";
  out += std::string("Content-Transfer-Encoding: ") + (is_ascii(body) ? "7bit" : "8bit") + "\r\n";
  out += "Auto-Submitted: auto-generated\r\n";
  out += "\r\n";
  out += body;
  return out;
}

bool is_loopback_smtp_url(std::string_view url) {
  for (std::string_view scheme : {"smtp://", "smtps://"}) {
    if (url.rfind(scheme, 0) != 0) continue;
    auto rest = url.substr(scheme.size());
    if (const auto at = rest.find('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
    std::string_view host;
    if (!rest.empty() && rest.front() == '[') {
      const auto close = rest.find(']');
      if (close == std::string_view::npos) return false;
      host = rest.substr(1, close - 1);
    } else {
      host = rest.substr(0, rest.find_first_of(":/"));
    }
    const std::string h(host);
    in_addr v4{};
    in6_addr v6{};
    if (::inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    if (::inet_pton(AF_INET6, h.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
    return h == "localhost";
  }
  return false;
}

MailDecision decide_mail_outcome(const OutboxEntry& entry, const DeliveryOutcome& outcome,
                                 const MailerConfig& config, std::int64_t now_micros,
                                 double jitter) {
  MailDecision d;
  if (entry.state != "pending") return d;  // recorded already: the first outcome wins
  d.attempt = entry.attempts + 1;
  if (outcome.status == Status::delivered) {
    d.kind = MailDecision::Kind::delivered;
    d.transport = outcome.transport;
    return d;
  }
  d.kind = MailDecision::Kind::failed;
  d.error = outcome.error;
  const RetryPolicy retry{config.backoff_base, config.max_attempts};
  d.final = outcome.status == Status::permanent_failure || retry.final(d.attempt);
  if (!d.final) d.next_attempt_at = retry.next_attempt_at(d.attempt, now_micros, jitter, 0);
  return d;
}

Result<ledger::Bytes> build_mail_outcome(const ledger::EventMeta& meta, std::string_view message_id,
                                         const MailDecision& decision) {
  ledger::EventBuilder b(nullptr, meta);
  auto& f = b.fbb();
  switch (decision.kind) {
    case MailDecision::Kind::delivered:
      return b.finish(schema::CreateMailDelivered(f, f.CreateString(message_id), decision.attempt,
                                                  f.CreateString(decision.transport)));
    case MailDecision::Kind::failed:
      return b.finish(schema::CreateMailDeliveryFailed(
          f, f.CreateString(message_id), decision.attempt, f.CreateString(decision.error),
          decision.final, decision.next_attempt_at));
    case MailDecision::Kind::none:
      break;
  }
  return make_error_code(ledger::Errc::invalid_argument);
}

DeliveryOutcome deliver_to_file(const std::string& outbox_dir, std::string_view message_id,
                                std::string_view eml) {
  const auto fail = [](const char* what) {
    return failure(Status::transient_failure, kTransportFile,
                   std::string("file: ") + what + ": " + std::strerror(errno));
  };
  if (!is_message_id(message_id)) {
    return failure(Status::permanent_failure, kTransportFile, "file: bad message id");
  }
  std::error_code ec;
  std::filesystem::create_directories(outbox_dir, ec);
  if (ec) {
    return failure(Status::transient_failure, kTransportFile, "file: mkdir: " + ec.message());
  }
  const auto final_path = outbox_dir + "/" + std::string(message_id) + ".eml";
  const auto tmp_path = outbox_dir + "/." + std::string(message_id) + ".eml.tmp";
  ::unlink(tmp_path.c_str());  // left by a crash mid-write
  const int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return fail("open");
  std::size_t done = 0;
  while (done < eml.size()) {
    const auto n = ::write(fd, eml.data() + done, eml.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      auto r = fail("write");
      ::close(fd);
      ::unlink(tmp_path.c_str());
      return r;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    auto r = fail("fsync");
    ::close(fd);
    ::unlink(tmp_path.c_str());
    return r;
  }
  ::close(fd);
  if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    auto r = fail("rename");
    ::unlink(tmp_path.c_str());
    return r;
  }
  // The rename itself is durable once the directory is synced.
  if (const int dfd = ::open(outbox_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    const bool synced = ::fsync(dfd) == 0;
    ::close(dfd);
    if (!synced) return fail("fsync dir");
  }
  return {.status = Status::delivered, .transport = kTransportFile, .error = ""};
}

namespace {

struct Upload {
  std::string_view data;
  std::size_t pos = 0;
};

std::size_t read_upload(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto* u = static_cast<Upload*>(user);
  const auto n = std::min(size * count, u->data.size() - u->pos);
  std::memcpy(buffer, u->data.data() + u->pos, n);
  u->pos += n;
  return n;
}

int check_cancel(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancel = static_cast<const std::atomic<bool>*>(user);
  return cancel != nullptr && cancel->load() ? 1 : 0;
}

}  // namespace

DeliveryOutcome deliver_smtp(const MailerConfig& config, std::string_view to, std::string_view eml,
                             const std::atomic<bool>* cancel) {
  ensure_curl();
  if (!is_address(to)) {
    return failure(Status::permanent_failure, kTransportSmtp, "smtp: bad recipient address");
  }
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    return failure(Status::transient_failure, kTransportSmtp, "smtp: curl_easy_init failed");
  }
  const std::string from = "<" + address_of(config.from) + ">";
  const std::string rcpt = "<" + std::string(to) + ">";
  curl_slist* rcpts = curl_slist_append(nullptr, rcpt.c_str());
  Upload upload{.data = eml, .pos = 0};
  const auto timeout_ms = static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(config.timeout).count());
  curl_easy_setopt(curl, CURLOPT_URL, config.smtp_url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");  // never file:// or http://
  curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from.c_str());
  curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpts);
  curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_upload);
  curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
  curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(eml.size()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_USE_SSL,
                   static_cast<long>(config.require_tls ? CURLUSESSL_ALL : CURLUSESSL_TRY));
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, check_cancel);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, cancel);
  if (!config.username.empty()) {
    curl_easy_setopt(curl, CURLOPT_USERNAME, config.username.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, config.password.c_str());
  }
  const CURLcode rc = curl_easy_perform(curl);
  long reply = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply);
  curl_slist_free_all(rcpts);
  curl_easy_cleanup(curl);
  if (rc == CURLE_OK)
    return {.status = Status::delivered, .transport = kTransportSmtp, .error = ""};
  // Only libcurl's own text and the reply code: the server's text may quote the address.
  auto error =
      std::string("smtp: ") + curl_easy_strerror(rc) + " (reply " + std::to_string(reply) + ")";
  // A 5xx reply refuses this mail for good (RFC 5321 4.2.1); a refused login or a missing
  // STARTTLS is the configuration's fault, not the mail's, and is retried like a 4xx.
  const bool permanent =
      reply >= 500 && reply < 600 && rc != CURLE_LOGIN_DENIED && rc != CURLE_USE_SSL_FAILED;
  return failure(permanent ? Status::permanent_failure : Status::transient_failure, kTransportSmtp,
                 std::move(error));
}

MailWorker::MailWorker(CommandPath& commands, ledger::KeyStore& keys, MailerConfig config,
                       const Clock& clock, MailWorkerHooks hooks)
    : commands_(commands),
      keys_(keys),
      config_(std::move(config)),
      clock_(clock),
      hooks_(std::move(hooks)),
      loop_(config_.poll_interval,
            [this](const std::atomic<bool>& stopping) {
              while (!stopping) {
                auto r = run_once();
                if (!r) log("mail: delivery pass failed: " + r.error().message());
                if (!r || r.value() < config_.batch) break;  // else more may be due right now
              }
            },
            {.run_at_start = true}) {
  if (!config_.smtp_url.empty()) ensure_curl();
}

MailWorker::~MailWorker() { stop(); }

void MailWorker::start() { loop_.start(); }

void MailWorker::stop() {
  cancel_ = true;  // aborts an SMTP transfer in progress
  loop_.stop();
}

void MailWorker::notify() { loop_.wake(); }

void MailWorker::log(const std::string& line) const {
  if (hooks_.log) hooks_.log(line);
}

Result<std::size_t> MailWorker::run_once() {
  std::lock_guard pass(run_mu_);
  const auto& ownership = commands_.ownership();
  SECHEX_TRY(const auto due,
             projections::due_mails(commands_.projections(), clock_.now_micros(), config_.batch,
                                    [&](const OutboxEntry& e) {
                                      return ownership.owns(commands_.partition_for(e.subject));
                                    }));
  std::size_t recorded = 0;
  for (const auto& entry : due) {
    if (cancel_) break;
    auto r = attempt(entry);
    if (!r) {
      // Logged and left pending: the next pass tries again (the log or projections failed).
      log("mail " + entry.message_id + ": recording the outcome failed: " + r.error().message());
      continue;
    }
    if (r.value()) ++recorded;
  }
  return recorded;
}

Result<bool> MailWorker::attempt(const OutboxEntry& entry) {
  auto& store = commands_.projections();
  // Idempotence: only a mail still pending and due is sent (another pass may have recorded it).
  SECHEX_TRY(const auto fresh, projections::mail_state(store, entry.message_id));
  if (!fresh || fresh->state != "pending" || fresh->subject != entry.subject ||
      fresh->next_attempt_at > clock_.now_micros()) {
    return false;
  }
  const auto outcome = deliver(*fresh);
  if (cancel_ && outcome.status != Status::delivered) return false;  // stopping: retried later
  std::uint32_t draw = 0;
  const double jitter = RAND_bytes(reinterpret_cast<unsigned char*>(&draw), sizeof draw) == 1
                            ? static_cast<double>(draw) / 4294967296.0
                            : 0.5;
  std::optional<MailDecision> decided;
  SECHEX_TRY(
      const auto records,
      commands_.run(
          commands_.partition_for(entry.subject), [&]() -> Result<std::vector<ledger::Bytes>> {
            SECHEX_TRY(const auto current, projections::mail_state(store, entry.message_id));
            if (!current) return std::vector<ledger::Bytes>{};
            const auto now = clock_.now_micros();
            const auto d = decide_mail_outcome(*current, outcome, config_, now, jitter);
            if (d.kind == MailDecision::Kind::none) return std::vector<ledger::Bytes>{};
            const ledger::EventMeta meta{.subject = entry.subject,
                                         .actor = "system",
                                         .request_id = "mail:" + entry.message_id,
                                         .time_micros = now,
                                         .ip = std::nullopt,
                                         .user_agent = std::nullopt};
            SECHEX_TRY(auto event, build_mail_outcome(meta, entry.message_id, d));
            decided = d;
            std::vector<ledger::Bytes> out{std::move(event)};
            // FR-039: the admins hear of a mail given up, in the same append.
            if (d.final && current->kind != kMailAdminAlert) {
              for (const auto& admin : config_.admin_emails) {
                auto alert = build_mail_queued(
                    keys_, meta, {kMailAdminAlert, admin, "mail:" + entry.message_id, "en"});
                // An erased subject cannot seal the address any more: the
                // failure is still recorded (and counted, and logged).
                if (!alert && alert.error() == ledger::Errc::erased) continue;
                if (!alert) return alert.error();
                out.push_back(std::move(alert.value().bytes));
              }
            }
            return out;
          }));
  if (!decided || records.empty()) return false;
  if (decided->kind == MailDecision::Kind::delivered) {
    if (hooks_.on_sent) hooks_.on_sent(decided->transport);
  } else if (decided->final) {
    if (hooks_.on_final_failure) hooks_.on_final_failure(entry.kind);
    log("mail " + entry.message_id + " (" + entry.kind + ") given up after attempt " +
        std::to_string(decided->attempt) + ": " + decided->error);
  }
  return true;
}

DeliveryOutcome MailWorker::deliver(const OutboxEntry& entry) {
  const std::string transport = config_.smtp_url.empty() ? kTransportFile : kTransportSmtp;
  const auto now = clock_.now_micros();
  const auto max_age = std::chrono::duration_cast<std::chrono::microseconds>(config_.max_age);
  if (now - entry.queued_at > max_age.count()) {
    return failure(Status::permanent_failure, transport, "expired");
  }
  ledger::Bytes event_id;
  if (!ledger::from_hex(entry.event_id_hex, event_id) || event_id.size() != 16) {
    return failure(Status::permanent_failure, transport, "corrupt_entry");
  }
  // Unsealing: an erased subject's mail is never sent; a key store failure is retried.
  const auto open = [&](std::string_view field, const std::string& sealed,
                        std::string& out) -> std::optional<DeliveryOutcome> {
    if (sealed.empty()) return std::nullopt;
    auto plain = keys_.open_field(entry.subject, event_id, field, ledger::as_bytes(sealed));
    if (plain) {
      out.assign(plain.value().begin(), plain.value().end());
      return std::nullopt;
    }
    if (plain.error() == ledger::Errc::erased) {
      return failure(Status::permanent_failure, transport, "subject_erased");
    }
    if (plain.error() == ledger::Errc::not_found ||
        plain.error() == ledger::Errc::authentication_failed) {
      return failure(Status::permanent_failure, transport, "unsealable");
    }
    return failure(Status::transient_failure, transport, "keys: " + plain.error().message());
  };
  MailContent content{.message_id = entry.message_id,
                      .kind = entry.kind,
                      .locale = entry.locale,
                      .to = "",
                      .secret = ""};
  if (auto failed = open("to", entry.to_sealed, content.to)) return *failed;
  if (auto failed = open("secret", entry.secret_sealed, content.secret)) return *failed;
  auto rendered = render_mail(content, config_.from, config_.public_url, now);
  if (!rendered) return failure(Status::permanent_failure, transport, "unrenderable");
  auto eml = render_eml(rendered.value());
  if (!eml) return failure(Status::permanent_failure, transport, "unrenderable");
  if (config_.smtp_url.empty())
    return deliver_to_file(config_.outbox_dir, entry.message_id, eml.value());
  return deliver_smtp(config_, content.to, eml.value(), &cancel_);
}

}  // namespace sechex::api
