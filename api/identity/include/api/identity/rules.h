// Identity rules: email syntax and normalisation, the disposable-domain warning, the password
// policy and strength estimate, OTP codes and random tokens (specs 002, 003, 004; API.md
// "Identity"). Pure functions: no I/O except DisposableDomains::load, no clock, no state; the
// register / password / OTP command handlers call them before deciding.
//
// ---- Email (003 FR-021..FR-024, 004 FR-002) ----
// check_email accepts a documented SUBSET of the RFC 5322 §3.4.1 addr-spec, the part that real
// mailboxes use and that every SMTP server and mail client we send to handles identically:
//
//   address    := local "@" domain                  at most 254 octets in total (RFC 5321 §4.5.3.1
//                                                   path limit minus the angle brackets)
//   local      := atom ("." atom)*                  dot-atom (RFC 5322 §3.2.3), at most 64 octets
//   atom       := 1*atext
//   atext      := a-z / 0-9 / one of  ! # $ % & ' * + / = ? ^ _ ` { | } ~ -
//   domain     := label ("." label)+                at least two labels
//   label      := 1..63 of a-z / 0-9 / "-", not starting or ending with "-"   (LDH, RFC 1035)
//   last label := 2+ letters a-z, or "xn--" then 1+ LDH characters (a punycode TLD)
//
// Refused although RFC 5322 allows them: quoted local parts ("john doe"@x.com), comments and
// folding white space, domain literals (a@[127.0.0.1], a@[IPv6:…]), obsolete syntax, a trailing
// root dot (a@x.com.), and single-label domains (a@localhost). None is used by the mailboxes we
// serve, each is a known source of parser disagreement (one address, two mailboxes), and IP
// literals bypass the disposable check.
// Non-ASCII is refused: internationalised local parts (RFC 6531) and U-label domains would need
// Unicode normalisation (NFC, IDNA 2008 mapping to A-labels) before lowercasing, hashing for
// lookup and comparing, which we do not do; two spellings of one address must never become two
// accounts. Punycode (xn--) domains are ASCII and accepted as they are.
//
// Normalisation (FR-024): ASCII white space around the input is trimmed and the whole address is
// lowercased. RFC 5321 lets a server treat local parts case-sensitively; the product treats
// email as case-insensitive (004 "Key Entities"), so "Ann@X.com" and "ann@x.com" are one account.
// No provider-specific rewriting (dots or +tags in Gmail addresses): those are distinct mailboxes
// as far as the RFC is concerned.
//
// Checks run in this order and the first failure is reported (so a reason is deterministic):
// empty, too_long, non_ascii, control_character, missing_at (split at the LAST "@"), local part
// (quoted_local_part_not_allowed, empty_local_part, local_part_too_long,
// leading_or_trailing_dot, consecutive_dots, invalid_local_part), domain (ip_literal_not_allowed,
// invalid_domain when empty, leading_or_trailing_dot, consecutive_dots, missing_tld when one
// label, invalid_domain for a bad label, invalid_tld).
//
// ---- Disposable domains (003 FR-023) ----
// A disposable domain is a warning ("disposable_email" in the register response), never a
// refusal. The built-in list is api/data/disposable_email_domains.txt (npm package
// disposable-email-domains, MIT; refreshed with ops/refresh-disposable-domains), compiled into
// the library.
//
// ---- Passwords (004 FR-003, FR-038, FR-041) ----
// The policy decides acceptance; the strength estimate is guidance the UI shows while the user
// types (FR-038) and never accepts or refuses on its own (003 US2: "educates, does not block").
// The one exception is the embedded list of the most common passwords: those are refused
// ("common_password") whatever the level, as any length/class rule lets "Password1" through.
//
// ---- OTP codes and tokens (002 "Strong OTP Generation") ----
// Codes and tokens come from OpenSSL's CSPRNG (RAND_bytes). OTP codes are uniform over
// 00000000..99999999 by rejection sampling (see otp_from_draw).
//
// Thread-safety: every function is pure or only reads the CSPRNG and may be called concurrently.
// DisposableDomains is immutable after construction; builtin() is built once, on first use, under
// the C++ static-initialisation guarantee (about 120k domains: call it at start-up to pay the
// parse there rather than in the first registration).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "api/crypto/passwords.h"
#include "ledger/result.h"

namespace sechex::api::identity {

// Why an email address was refused. The snake_case reason (email_reason) is stable: the HTTP
// layer puts it in details.reason of a 400 invalid_email, and clients may branch on it.
enum class EmailErrc {
  ok = 0,
  empty = 1,                      // nothing but white space
  too_long,                       // more than 254 octets
  non_ascii,                      // a byte >= 0x80 (see "Non-ASCII" above)
  control_character,              // a byte < 0x20 or 0x7f, NUL included
  missing_at,                     // no "@"
  quoted_local_part_not_allowed,  // local part starting with '"'
  empty_local_part,               // "@x.com"
  local_part_too_long,            // more than 64 octets before the "@"
  leading_or_trailing_dot,        // ".a@x.com", "a.@x.com", "a@.x.com", "a@x.com."
  consecutive_dots,               // "a..b@x.com", "a@x..com"
  invalid_local_part,             // a character outside atext (space, "(", "@", ",", …)
  ip_literal_not_allowed,         // "a@[127.0.0.1]"
  invalid_domain,                 // empty domain, or a label that is not 1..63 LDH characters
                                  // without a leading or trailing "-"
  missing_tld,                    // a single label: "a@b", "a@localhost"
  invalid_tld,                    // last label not 2+ letters nor "xn--…": "a@b.c", "a@1.2.3.4"
};

const std::error_category& email_category() noexcept;
inline std::error_code make_error_code(EmailErrc e) noexcept {
  return {static_cast<int>(e), email_category()};
}
// The stable reason ("missing_at") of an EmailErrc; "invalid_email" for codes of other
// categories.
std::string_view email_reason(const std::error_code& ec) noexcept;

// Disposable email domains, for the registration warning. A value type; immutable once built.
class DisposableDomains {
 public:
  DisposableDomains() = default;  // empty: nothing is disposable

  // One domain per line; everything from a "#" to the end of the line is a comment; blank lines
  // and surrounding white space (CR of CRLF files included) are ignored; domains are lowercased
  // (ASCII) and deduplicated. Never fails: a line that is not a domain simply never matches.
  static DisposableDomains from_text(std::string_view text);
  // from_text of a file. Errors: the errno of open/read (generic category), or
  // std::errc::file_too_large above 64 MiB (the list is ~2 MiB; this bounds a wrong path such
  // as /dev/zero).
  static Result<DisposableDomains> load(const std::string& path);
  // The list compiled into the binary from api/data/disposable_email_domains.txt.
  static const DisposableDomains& builtin();

  // True when `domain` or any parent of it is listed: with "mailinator.com" listed,
  // "mailinator.com" and "mail.mailinator.com" match, "notmailinator.com" does not.
  // Case-insensitive (ASCII). A trailing root dot is not stripped: pass check_email's domain.
  bool contains(std::string_view domain) const;
  std::size_t size() const { return domains_.size(); }

 private:
  std::vector<std::string> domains_;  // sorted, unique, lowercase: binary search, compact
};

// A valid, normalised address.
struct EmailCheck {
  std::string address;      // trimmed and lowercased: what is stored, hashed and mailed
  std::string domain;       // the part after the "@"
  bool disposable = false;  // the domain is listed in `disposable`: warn, do not refuse
};

// 003 FR-021, FR-022, FR-024; 004 FR-002. Errors are EmailErrc (see the order above). Any input
// bytes are safe (NUL, invalid UTF-8, megabytes).
Result<EmailCheck> check_email(std::string_view raw, const DisposableDomains& disposable);

// ---- Password policy (004 FR-003, FR-004, FR-041) ----

enum class PasswordLevel { basic, high };

// "basic" / "high", the spelling of GET /v1/auth/password/policy and PUT /v1/admin/policy/password.
std::string_view to_string(PasswordLevel level) noexcept;
// Exact, lowercase spelling only.
std::optional<PasswordLevel> parse_level(std::string_view text) noexcept;

// Longest password accepted: the hasher's own bound (passwords.h), so the policy refuses
// exactly what hashing would.
using api::kMaxPasswordBytes;

struct PasswordPolicy {
  PasswordLevel level = PasswordLevel::basic;
  std::size_t min_length = 8;  // Unicode code points
  bool require_upper = true;   // A-Z
  bool require_lower = true;   // a-z
  bool require_digit = true;   // 0-9
  bool require_special = false;

  // Basic: at least 8 code points, an upper, a lower and a digit. High: at least 12, and also a
  // special character (004 FR-003).
  static PasswordPolicy for_level(PasswordLevel level);
};

// Rule names, stable (API: details of 400 weak_password; UI: which requirement to highlight).
// check_password lists the unmet ones in exactly this order.
inline constexpr std::string_view kRuleMinLength = "min_length";
inline constexpr std::string_view kRuleUpper = "upper";
inline constexpr std::string_view kRuleLower = "lower";
inline constexpr std::string_view kRuleDigit = "digit";
inline constexpr std::string_view kRuleSpecial = "special";
inline constexpr std::string_view kRuleMaxLength = "max_length";
inline constexpr std::string_view kRuleControlCharacters = "control_characters";
inline constexpr std::string_view kRuleInvalidUtf8 = "invalid_utf8";
inline constexpr std::string_view kRuleCommonPassword = "common_password";

struct PasswordCheck {
  std::vector<std::string> unmet;  // rule names in the order above; empty = accepted
  int strength = 0;                // 0..4, guidance only (see check_password)
  std::string strength_label;      // very_weak, weak, fair, strong, very_strong
  bool ok() const { return unmet.empty(); }
};

// Checks `password` against `policy` and estimates its strength (004 FR-003, FR-038).
//
// Rules (each unmet one is listed):
//   min_length          fewer than policy.min_length code points (each byte of an invalid UTF-8
//                       sequence counts as one)
//   upper/lower/digit   no ASCII A-Z / a-z / 0-9, when the policy requires one
//   special             no special character, when required: printable ASCII that is not a letter
//                       or digit (space included), or any non-ASCII code point
//   max_length          more than kMaxPasswordBytes bytes
//   control_characters  U+0000..U+001F, U+007F or U+0080..U+009F (NUL, tab, newline, …): they
//                       cannot be typed reliably and are mangled by forms and terminals
//   invalid_utf8        not valid UTF-8 (overlongs, surrogates, > U+10FFFF, truncated sequences)
//   common_password     case-insensitively equal to one of the ~120 most common passwords
//                       embedded in identity_rules.cc, whatever the policy
//
// Strength (a heuristic in the spirit of zxcvbn, much cruder; it never decides acceptance):
//   bits = effective_length × log2(charset), where charset sums the classes present (26 lower,
//   26 upper, 10 digits, 33 ASCII symbols and space, 100 for non-ASCII) and effective_length
//   counts code points except those that are predictable:
//     - a repeat of the previous character (case-insensitive): "aaaa" counts 1;
//     - the third and later characters of an ascending or descending run: "abcd", "4321" count 2;
//     - the third and later characters of a run along a keyboard row: "qwer", "asdf" count 2;
//     - a common password, or a `context` string (the email's local part, a name…; compared
//       case-insensitively, strings shorter than 3 ignored) found inside: counts 1 as a whole.
//   Score: bits < 28 → 0 very_weak, < 36 → 1 weak, < 60 → 2 fair, < 80 → 3 strong, else
//   4 very_strong. A common password scores 0. Only the first kMaxPasswordBytes bytes are
//   analysed, which bounds the work for hostile input.
PasswordCheck check_password(std::string_view password, const PasswordPolicy& policy,
                             std::span<const std::string_view> context = {});

// ---- OTP codes (002 "Strong OTP Generation") and tokens ----

inline constexpr std::uint32_t kOtpModulus = 100'000'000;  // 8 digits
// The largest multiple of 10^8 that fits in 2^32: 42 × 10^8. Draws below it map uniformly onto
// the 10^8 codes (each code has exactly 42 preimages); the 94,967,296 draws at or above it are
// rejected (probability ~2.2 %) instead of folded in, which would favour codes below 94,967,296.
inline constexpr std::uint32_t kOtpDrawLimit =
    static_cast<std::uint32_t>((std::uint64_t{1} << 32) / kOtpModulus * kOtpModulus);

// The code for a uniformly random 32-bit `draw`, or nullopt when the draw must be rejected and
// redrawn (draw >= kOtpDrawLimit).
std::optional<std::uint32_t> otp_from_draw(std::uint32_t draw) noexcept;

// Exactly 8 ASCII digits, zero-padded ("00012345"), uniform over 00000000..99999999. Draws 4
// bytes from RAND_bytes per attempt. Errors: ledger::Errc::crypto_failure when the CSPRNG fails
// (or, with probability ~10^-159, 96 draws in a row are rejected).
Result<std::string> generate_otp_code();

// Exactly 8 ASCII digits, nothing else (no white space, no sign).
bool is_otp_format(std::string_view text) noexcept;

// `bytes` random bytes as unpadded base64url (RFC 4648 §5): verification, reset, refresh,
// re-authentication and CSRF tokens. 32 bytes give 43 characters. Errors:
// ledger::Errc::invalid_argument outside 16..1024 bytes (under 128 bits is guessable; the upper
// bound catches a unit mistake), ledger::Errc::crypto_failure when the CSPRNG fails.
Result<std::string> random_token(std::size_t bytes = 32);

}  // namespace sechex::api::identity

template <>
struct std::is_error_code_enum<sechex::api::identity::EmailErrc> : std::true_type {};
