#include "api/identity/rules.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <memory>

#include "api/crypto/jose.h"
#include "ledger/crypto.h"

namespace sechex::api::identity {

// Defined in the disposable_domains_text.cc that CMake generates from
// api/identity/data/disposable_email_domains.txt.
std::string_view builtin_disposable_domains_text();

namespace {

constexpr std::size_t kMaxAddress = 254;
constexpr std::size_t kMaxLocal = 64;
constexpr std::size_t kMaxLabel = 63;
constexpr std::size_t kMaxDomainsFile = std::size_t{64} << 20;

class EmailCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sechex.identity.email"; }
  std::string message(int code) const override {
    switch (static_cast<EmailErrc>(code)) {
      case EmailErrc::ok:
        return "ok";
      case EmailErrc::empty:
        return "the email address is empty";
      case EmailErrc::too_long:
        return "the email address is longer than 254 characters";
      case EmailErrc::non_ascii:
        return "the email address contains non-ASCII characters";
      case EmailErrc::control_character:
        return "the email address contains control characters";
      case EmailErrc::missing_at:
        return "the email address has no @";
      case EmailErrc::quoted_local_part_not_allowed:
        return "quoted local parts are not accepted";
      case EmailErrc::empty_local_part:
        return "nothing before the @";
      case EmailErrc::local_part_too_long:
        return "more than 64 characters before the @";
      case EmailErrc::leading_or_trailing_dot:
        return "a part of the address starts or ends with a dot";
      case EmailErrc::consecutive_dots:
        return "the address contains consecutive dots";
      case EmailErrc::invalid_local_part:
        return "a character before the @ is not allowed";
      case EmailErrc::ip_literal_not_allowed:
        return "IP address literals are not accepted as domains";
      case EmailErrc::invalid_domain:
        return "the domain is not a valid host name";
      case EmailErrc::missing_tld:
        return "the domain has no extension (such as .com)";
      case EmailErrc::invalid_tld:
        return "the domain extension is not valid";
    }
    return "invalid email address";
  }
};

// One name per EmailErrc value, in declaration order (index = value).
constexpr std::array<std::string_view, 16> kEmailReasons = {
    "ok",
    "empty",
    "too_long",
    "non_ascii",
    "control_character",
    "missing_at",
    "quoted_local_part_not_allowed",
    "empty_local_part",
    "local_part_too_long",
    "leading_or_trailing_dot",
    "consecutive_dots",
    "invalid_local_part",
    "ip_literal_not_allowed",
    "invalid_domain",
    "missing_tld",
    "invalid_tld",
};
static_assert(kEmailReasons.size() == static_cast<std::size_t>(EmailErrc::invalid_tld) + 1);

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
char to_lower(char c) { return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ascii_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ascii_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), to_lower);
  return out;
}

// RFC 5322 §3.2.3 atext, lowercase letters only (the address is lowercased first).
bool is_atext(char c) {
  static constexpr std::string_view kSymbols = "!#$%&'*+/=?^_`{|}~-";
  return is_lower(c) || is_digit(c) || kSymbols.find(c) != std::string_view::npos;
}

// The dot rules shared by the local part and the domain.
std::error_code check_dots(std::string_view part) {
  if (part.front() == '.' || part.back() == '.') return EmailErrc::leading_or_trailing_dot;
  if (part.find("..") != std::string_view::npos) return EmailErrc::consecutive_dots;
  return {};
}

std::error_code check_local(std::string_view local) {
  if (!local.empty() && local.front() == '"') return EmailErrc::quoted_local_part_not_allowed;
  if (local.empty()) return EmailErrc::empty_local_part;
  if (local.size() > kMaxLocal) return EmailErrc::local_part_too_long;
  if (const auto ec = check_dots(local)) return ec;
  const bool ok =
      std::all_of(local.begin(), local.end(), [](char c) { return c == '.' || is_atext(c); });
  return ok ? std::error_code{} : EmailErrc::invalid_local_part;
}

bool valid_label(std::string_view label) {
  if (label.empty() || label.size() > kMaxLabel) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  return std::all_of(label.begin(), label.end(),
                     [](char c) { return is_lower(c) || is_digit(c) || c == '-'; });
}

bool valid_tld(std::string_view tld) {
  if (tld.size() > 4 && tld.substr(0, 4) == "xn--") return true;  // LDH already checked
  return tld.size() >= 2 && std::all_of(tld.begin(), tld.end(), is_lower);
}

std::error_code check_domain(std::string_view domain) {
  if (!domain.empty() && domain.front() == '[') return EmailErrc::ip_literal_not_allowed;
  if (domain.empty()) return EmailErrc::invalid_domain;
  if (const auto ec = check_dots(domain)) return ec;
  if (domain.find('.') == std::string_view::npos) return EmailErrc::missing_tld;
  std::string_view rest = domain;
  std::string_view label;
  while (!rest.empty()) {
    const auto dot = rest.find('.');
    label = rest.substr(0, dot);
    if (!valid_label(label)) return EmailErrc::invalid_domain;
    rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
  }
  return valid_tld(label) ? std::error_code{} : EmailErrc::invalid_tld;
}

// ---- passwords ----

// The most common passwords of the public breach corpora (SecLists' top lists, NordPass), all
// lowercase: refused outright and worth nothing in the strength estimate. Short on purpose: a
// long list belongs in a breached-password service, this one catches what any attacker tries
// first.
constexpr auto kCommonPasswords = std::to_array<std::string_view>({
    "000000",    "111111",    "11111111",    "112233",     "121212",   "123123",    "123321",
    "1234",      "12345",     "123456",      "1234567",    "12345678", "123456789", "1234567890",
    "123456a",   "123abc",    "123qwe",      "131313",     "159753",   "1q2w3e",    "1q2w3e4r",
    "1qaz2wsx",  "555555",    "654321",      "666666",     "696969",   "777777",    "7777777",
    "987654321", "a123456",   "aaaaaa",      "abc123",     "abc12345", "access",    "admin",
    "admin123",  "amanda",    "andrew",      "asdfgh",     "ashley",   "austin",    "baseball",
    "baseball1", "batman",    "buster",      "changeme",   "charlie",  "cheese",    "chelsea",
    "computer",  "dallas",    "daniel",      "dragon",     "football", "football1", "freedom",
    "george",    "ginger",    "harley",      "hello123",   "hockey",   "hunter",    "iloveyou",
    "iloveyou1", "jennifer",  "jessica",     "jordan",     "joshua",   "killer",    "letmein",
    "letmein1",  "login",     "maggie",      "master",     "matrix",   "matthew",   "michael",
    "michelle",  "monkey",    "mustang",     "nicole",     "p@ssw0rd", "p@ssword",  "passw0rd",
    "password",  "password1", "password123", "pepper",     "princess", "qazwsx",    "qwe123",
    "qwerty",    "qwerty1",   "qwerty123",   "qwertyuiop", "ranger",   "robert",    "secret",
    "shadow",    "soccer",    "starwars",    "summer",     "sunshine", "superman",  "taylor",
    "thomas",    "thunder",   "tigger",      "trustno1",   "welcome",  "welcome1",  "whatever",
    "yankees",   "zaq12wsx",  "zxcvbn",      "zxcvbnm",
});
static_assert(std::ranges::is_sorted(kCommonPasswords), "binary search needs the list sorted");

constexpr std::array<std::string_view, 4> kKeyboardRows = {"1234567890", "qwertyuiop", "asdfghjkl",
                                                           "zxcvbnm"};

// A code point, or kInvalidByte for a byte that does not start a valid UTF-8 sequence.
constexpr char32_t kInvalidByte = 0x110000;

bool continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

struct CodePoint {
  char32_t value;      // kInvalidByte for a byte that does not start a valid sequence
  std::size_t offset;  // of its first byte
};

// Decodes UTF-8 strictly (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF); each
// byte that does not start a valid sequence becomes one kInvalidByte.
std::vector<CodePoint> decode_utf8(std::string_view s) {
  std::vector<CodePoint> out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 < 0x80) {
      len = 1;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;  // overlong
      if (b0 == 0xED) hi = 0x9F;  // surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;  // overlong
      if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
    }
    bool ok = len != 0 && i + len <= s.size();
    for (std::size_t k = 1; ok && k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      ok = k == 1 ? (b >= lo && b <= hi) : continuation(b);
    }
    if (!ok) {
      out.push_back({kInvalidByte, i});
      ++i;
      continue;
    }
    char32_t cp = len == 1 ? b0 : b0 & (0x7F >> len);
    for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (s[i + k] & 0x3F);
    out.push_back({cp, i});
    i += len;
  }
  return out;
}

bool ascii_letter_or_digit(char32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_control(char32_t c) { return c < 0x20 || (c >= 0x7F && c <= 0x9F); }
bool is_special(char32_t c) {
  if (c == kInvalidByte || is_control(c)) return false;
  return c >= 0x80 || !ascii_letter_or_digit(c);
}
char32_t fold(char32_t c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

bool keyboard_run(char32_t a, char32_t b, char32_t c) {
  if (a >= 0x80 || b >= 0x80 || c >= 0x80) return false;
  for (const auto row : kKeyboardRows) {
    const auto pa = row.find(static_cast<char>(a));
    const auto pb = row.find(static_cast<char>(b));
    const auto pc = row.find(static_cast<char>(c));
    if (pa == std::string_view::npos || pb == std::string_view::npos ||
        pc == std::string_view::npos) {
      continue;
    }
    const auto step1 = static_cast<long>(pb) - static_cast<long>(pa);
    const auto step2 = static_cast<long>(pc) - static_cast<long>(pb);
    if (step1 == step2 && (step1 == 1 || step1 == -1)) return true;
  }
  return false;
}

// Every occurrence of `needle` in `haystack` counts as one character: all but its first position
// lose their weight.
void discount_occurrences(std::string_view haystack, std::string_view needle,
                          std::vector<double>& weight) {
  if (needle.empty()) return;
  for (auto at = haystack.find(needle); at != std::string_view::npos;
       at = haystack.find(needle, at + 1)) {
    std::fill(weight.begin() + static_cast<std::ptrdiff_t>(at) + 1,
              weight.begin() + static_cast<std::ptrdiff_t>(at + needle.size()), 0.0);
  }
}

// Strength in bits, as documented in the header. `prefix` is the analysed part of the password.
double strength_bits(std::string_view prefix, std::span<const std::string_view> context) {
  const auto cps = decode_utf8(prefix);
  if (cps.empty()) return 0;
  const std::string folded = lowercase(prefix);
  bool lower = false, upper = false, digit = false, symbol = false, other = false;
  for (const auto& cp : cps) {
    const char32_t c = cp.value;
    lower |= c >= 'a' && c <= 'z';
    upper |= c >= 'A' && c <= 'Z';
    digit |= c >= '0' && c <= '9';
    symbol |= c < 0x80 && !ascii_letter_or_digit(c);
    other |= c >= 0x80;
  }
  const double charset = (lower ? 26 : 0) + (upper ? 26 : 0) + (digit ? 10 : 0) +
                         (symbol ? 33 : 0) + (other ? 100 : 0);

  // Byte-level weights first (substring matches), then folded onto code points.
  std::vector<double> byte_weight(folded.size(), 1.0);
  for (const auto common : kCommonPasswords) {
    if (common.size() >= 4) discount_occurrences(folded, common, byte_weight);
  }
  for (const auto text : context) {
    if (text.size() < 3) continue;
    discount_occurrences(folded, lowercase(text), byte_weight);
  }

  double effective = 0;
  for (std::size_t i = 0; i < cps.size(); ++i) {
    // A code point takes the weight of its first byte (a match keeps its first byte's weight, so
    // a context string that is not valid UTF-8 can only lower the estimate of what it matches).
    double w = byte_weight[cps[i].offset];
    const char32_t c = fold(cps[i].value);
    if (i >= 1 && c == fold(cps[i - 1].value)) w = 0;
    if (i >= 2) {
      const char32_t b = fold(cps[i - 1].value), a = fold(cps[i - 2].value);
      const auto d1 = static_cast<long>(b) - static_cast<long>(a);
      const auto d2 = static_cast<long>(c) - static_cast<long>(b);
      if (d1 == d2 && (d1 == 1 || d1 == -1) && c < 0x80) w = 0;
      if (keyboard_run(a, b, c)) w = 0;
    }
    effective += w;
  }
  return effective * std::log2(charset);
}

int score(double bits) {
  if (bits < 28) return 0;
  if (bits < 36) return 1;
  if (bits < 60) return 2;
  if (bits < 80) return 3;
  return 4;
}

constexpr std::array<std::string_view, 5> kStrengthLabels = {"very_weak", "weak", "fair", "strong",
                                                             "very_strong"};

}  // namespace

const std::error_category& email_category() noexcept {
  static const EmailCategory category;
  return category;
}

std::string_view email_reason(const std::error_code& ec) noexcept {
  if (ec.category() != email_category()) return "invalid_email";
  const auto v = static_cast<std::size_t>(ec.value());
  return v < kEmailReasons.size() ? kEmailReasons[v] : "invalid_email";
}

// ---- DisposableDomains ----

DisposableDomains DisposableDomains::from_text(std::string_view text) {
  DisposableDomains d;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    line = trim(line.substr(0, line.find('#')));
    if (!line.empty()) d.domains_.push_back(lowercase(line));
  }
  std::sort(d.domains_.begin(), d.domains_.end());
  d.domains_.erase(std::unique(d.domains_.begin(), d.domains_.end()), d.domains_.end());
  d.domains_.shrink_to_fit();
  return d;
}

Result<DisposableDomains> DisposableDomains::load(const std::string& path) {
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rbe"),
                                                          &std::fclose);
  if (!f) return std::error_code(errno, std::generic_category());
  std::string text;
  std::array<char, 1 << 16> buffer;
  while (true) {
    const auto n = std::fread(buffer.data(), 1, buffer.size(), f.get());
    text.append(buffer.data(), n);
    if (text.size() > kMaxDomainsFile) return std::make_error_code(std::errc::file_too_large);
    if (n < buffer.size()) break;
  }
  if (std::ferror(f.get())) return std::error_code(errno, std::generic_category());
  return from_text(text);
}

const DisposableDomains& DisposableDomains::builtin() {
  static const DisposableDomains domains = from_text(builtin_disposable_domains_text());
  return domains;
}

bool DisposableDomains::contains(std::string_view domain) const {
  const std::string folded = lowercase(domain);
  std::string_view rest = folded;
  while (!rest.empty()) {
    if (std::binary_search(domains_.begin(), domains_.end(), rest)) return true;
    const auto dot = rest.find('.');
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  return false;
}

// ---- email ----

Result<EmailCheck> check_email(std::string_view raw, const DisposableDomains& disposable) {
  const auto s = trim(raw);
  if (s.empty()) return EmailErrc::empty;
  if (s.size() > kMaxAddress) return EmailErrc::too_long;
  if (std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; }))
    return EmailErrc::non_ascii;
  if (std::any_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7F;
      }))
    return EmailErrc::control_character;

  EmailCheck out;
  out.address = lowercase(s);
  const auto at = out.address.rfind('@');
  if (at == std::string::npos) return EmailErrc::missing_at;
  const std::string_view address = out.address;
  if (const auto ec = check_local(address.substr(0, at))) return ec;
  const auto domain = address.substr(at + 1);
  if (const auto ec = check_domain(domain)) return ec;
  out.domain = std::string(domain);
  out.disposable = disposable.contains(out.domain);
  return out;
}

// ---- passwords ----

std::string_view to_string(PasswordLevel level) noexcept {
  return level == PasswordLevel::high ? "high" : "basic";
}

std::optional<PasswordLevel> parse_level(std::string_view text) noexcept {
  if (text == "basic") return PasswordLevel::basic;
  if (text == "high") return PasswordLevel::high;
  return std::nullopt;
}

PasswordPolicy PasswordPolicy::for_level(PasswordLevel level) {
  const bool high = level == PasswordLevel::high;
  return PasswordPolicy{.level = level,
                        .min_length = high ? std::size_t{12} : std::size_t{8},
                        .require_upper = true,
                        .require_lower = true,
                        .require_digit = true,
                        .require_special = high};
}

PasswordCheck check_password(std::string_view password, const PasswordPolicy& policy,
                             std::span<const std::string_view> context) {
  // The rules look at the whole password (cheap, linear); the strength estimate only at a bounded
  // prefix, since its substring searches are not.
  const auto cps = decode_utf8(password);
  bool upper = false, lower = false, digit = false, special = false, control = false,
       invalid = false;
  for (const auto& cp : cps) {
    const char32_t c = cp.value;
    upper |= c >= 'A' && c <= 'Z';
    lower |= c >= 'a' && c <= 'z';
    digit |= c >= '0' && c <= '9';
    special |= is_special(c);
    control |= is_control(c);
    invalid |= c == kInvalidByte;
  }
  const auto prefix = password.substr(0, kMaxPasswordBytes);
  const std::string lowered = lowercase(prefix);
  const bool common = std::binary_search(kCommonPasswords.begin(), kCommonPasswords.end(),
                                         std::string_view(lowered));

  PasswordCheck check;
  auto unmet = [&check](bool failed, std::string_view rule) {
    if (failed) check.unmet.emplace_back(rule);
  };
  unmet(cps.size() < policy.min_length, kRuleMinLength);
  unmet(policy.require_upper && !upper, kRuleUpper);
  unmet(policy.require_lower && !lower, kRuleLower);
  unmet(policy.require_digit && !digit, kRuleDigit);
  unmet(policy.require_special && !special, kRuleSpecial);
  unmet(password.size() > kMaxPasswordBytes, kRuleMaxLength);
  unmet(control, kRuleControlCharacters);
  unmet(invalid, kRuleInvalidUtf8);
  unmet(common, kRuleCommonPassword);

  if (common) {
    check.strength = 0;
  } else {
    // The prefix may end inside a multi-byte sequence: its last code point then decodes as
    // invalid bytes, which only affects the estimate of a password refused for its length.
    check.strength = score(strength_bits(prefix, context));
  }
  check.strength_label = std::string(kStrengthLabels[static_cast<std::size_t>(check.strength)]);
  return check;
}

// ---- OTP codes and tokens ----

std::optional<std::uint32_t> otp_from_draw(std::uint32_t draw) noexcept {
  if (draw >= kOtpDrawLimit) return std::nullopt;
  return draw % kOtpModulus;
}

Result<std::string> generate_otp_code() {
  // Each attempt is rejected with probability ~0.022; 96 rejections in a row (~10^-159) means
  // the generator is broken, not unlucky.
  constexpr int kMaxAttempts = 96;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    SECHEX_TRY(const auto bytes, ledger::crypto::random_bytes(4));
    const std::uint32_t draw = (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
                               (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
    if (const auto code = otp_from_draw(draw)) {
      std::array<char, 9> text{};
      std::snprintf(text.data(), text.size(), "%08u", static_cast<unsigned>(*code));
      return std::string(text.data(), 8);
    }
  }
  return ledger::Errc::crypto_failure;
}

bool is_otp_format(std::string_view text) noexcept {
  return text.size() == 8 && std::all_of(text.begin(), text.end(), is_digit);
}

Result<std::string> random_token(std::size_t bytes) {
  if (bytes < 16 || bytes > 1024) return ledger::Errc::invalid_argument;
  SECHEX_TRY(const auto raw, ledger::crypto::random_bytes(bytes));
  return jose::base64url_encode(ledger::ByteView(raw));
}

}  // namespace sechex::api::identity
