// Identity rules: the email subset and its reasons, the disposable-domain list, the password
// policy and strength estimate, OTP codes and random tokens (specs 002, 003, 004).
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "api/crypto/jose.h"
#include "api/identity/rules.h"

namespace sechex::api::identity {
namespace {

using Rules = std::vector<std::string>;

const DisposableDomains& no_disposable() {
  static const DisposableDomains none;
  return none;
}

std::string reason_of(std::string_view raw) {
  const auto r = check_email(raw, no_disposable());
  return r ? "accepted" : std::string(email_reason(r.error()));
}

// ---- email: 003 FR-021, FR-022, FR-024; 004 FR-002 ----

TEST(CheckEmail, AcceptsDotAtomAddressesAndNormalisesThemToLowercase) {
  struct Case {
    std::string_view raw, address, domain;
  };
  const Case cases[] = {
      {"ann@example.com", "ann@example.com", "example.com"},
      {"  Ann.Lee@Example.COM\t\r\n", "ann.lee@example.com", "example.com"},  // FR-024
      {"a@b.co", "a@b.co", "b.co"},
      {"first.middle.last@sub.mail.example.org", "first.middle.last@sub.mail.example.org",
       "sub.mail.example.org"},
      {"user+tag@example.com", "user+tag@example.com", "example.com"},
      {"!#$%&'*+/=?^_`{|}~-@example.com", "!#$%&'*+/=?^_`{|}~-@example.com", "example.com"},
      {"x@my-host.example.io", "x@my-host.example.io", "my-host.example.io"},
      {"x@123.example.com", "x@123.example.com", "123.example.com"},
      {"x@example.xn--p1ai", "x@example.xn--p1ai", "example.xn--p1ai"},  // punycode TLD
      {"x@xn--bcher-kva.example", "x@xn--bcher-kva.example", "xn--bcher-kva.example"},
  };
  for (const auto& c : cases) {
    const auto r = check_email(c.raw, no_disposable());
    ASSERT_TRUE(r) << c.raw << ": " << email_reason(r.error());
    EXPECT_EQ(r.value().address, c.address);
    EXPECT_EQ(r.value().domain, c.domain);
    EXPECT_FALSE(r.value().disposable);
  }
}

TEST(CheckEmail, RefusesEachMalformedAddressWithAStableReason) {
  const std::string max_local(64, 'a');
  const std::string max_label(63, 'b');
  struct Case {
    std::string raw;
    std::string_view reason;
  };
  const Case cases[] = {
      {"", "empty"},
      {" \t\r\n ", "empty"},
      {std::string(255, 'a'), "too_long"},
      {std::string(1 << 20, 'a') + "@example.com", "too_long"},
      {"j\xC3\xB6rg@example.com", "non_ascii"},
      {"jorg@b\xC3\xBC"
       "cher.example",
       "non_ascii"},
      {"\xFF\xFE@example.com", "non_ascii"},  // not even UTF-8
      {std::string("a\0b@example.com", 15), "control_character"},
      {"a\tb@example.com", "control_character"},
      {"a@example.com\x7F", "control_character"},
      {"a@exa\nmple.com", "control_character"},
      {"ann.example.com", "missing_at"},
      {"\"quoted\"@x.com", "quoted_local_part_not_allowed"},
      {"\"a@b\"@x.com", "quoted_local_part_not_allowed"},
      {"@example.com", "empty_local_part"},
      {max_local + "a@example.com", "local_part_too_long"},
      {".a@b.com", "leading_or_trailing_dot"},
      {"a.@b.com", "leading_or_trailing_dot"},
      {"a..b@c.com", "consecutive_dots"},
      {"a b@example.com", "invalid_local_part"},
      {"a(comment)@example.com", "invalid_local_part"},
      {"a@b@example.com", "invalid_local_part"},  // split at the last @
      {"a,b@example.com", "invalid_local_part"},
      {"a\\b@example.com", "invalid_local_part"},
      {"a@[127.0.0.1]", "ip_literal_not_allowed"},
      {"a@[IPv6:::1]", "ip_literal_not_allowed"},
      {"a@", "invalid_domain"},
      {"a@.example.com", "leading_or_trailing_dot"},
      {"a@example.com.", "leading_or_trailing_dot"},
      {"a@example..com", "consecutive_dots"},
      {"a@b", "missing_tld"},
      {"a@localhost", "missing_tld"},
      {"a@-b.com", "invalid_domain"},
      {"a@b-.com", "invalid_domain"},
      {"a@b_c.com", "invalid_domain"},
      {"a@exa mple.com", "invalid_domain"},
      {"a@" + max_label + "b.com", "invalid_domain"},  // a 64-character label
      {"a@b.c", "invalid_tld"},
      {"a@1.2.3.4", "invalid_tld"},
      {"a@example.c0m", "invalid_tld"},
      {"a@example.x-y", "invalid_tld"},
      {"a@example.xn--", "invalid_domain"},  // a label may not end with "-"
  };
  for (const auto& c : cases) EXPECT_EQ(reason_of(c.raw), c.reason) << "'" << c.raw << "'";
}

TEST(CheckEmail, AcceptsExactlyTheLengthLimits) {
  // Local part 64, total 254 (RFC 5321 §4.5.3.1): the largest accepted, one more refused.
  const std::string local(64, 'a');
  EXPECT_EQ(reason_of(local + "@example.com"), "accepted");
  // 64 + 1 + 189 = 254, the domain made of three 61-character labels and "com".
  const std::string label(61, 'b');
  const std::string domain = label + "." + label + "." + label + ".com";
  ASSERT_EQ(domain.size(), 189U);
  EXPECT_EQ(reason_of(local + "@" + domain), "accepted");
  EXPECT_EQ(reason_of(local + "@b" + domain), "too_long");
  EXPECT_EQ(reason_of("a@" + std::string(63, 'b') + ".com"), "accepted");  // 63-char label
}

TEST(CheckEmail, ReportsReasonsThroughTheErrorCode) {
  const auto r = check_email("a@b", no_disposable());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), EmailErrc::missing_tld);
  EXPECT_EQ(r.error().category(), email_category());
  EXPECT_FALSE(r.error().message().empty());
  EXPECT_EQ(email_reason(std::make_error_code(std::errc::io_error)), "invalid_email");
  EXPECT_EQ(email_reason(make_error_code(static_cast<EmailErrc>(999))), "invalid_email");
}

TEST(CheckEmail, NeverCrashesOnArbitraryBytes) {
  // Every single byte, and every pair around an "@": the answer is a value or a reason.
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; b += 7) {
      const std::string raw = {static_cast<char>(a), '@', static_cast<char>(b), '.', 'c', 'o'};
      const auto r = check_email(raw, no_disposable());
      if (!r) {
        EXPECT_NE(email_reason(r.error()), "invalid_email") << a << "," << b;
      }
    }
  }
}

// ---- disposable domains: 003 FR-023 ----

TEST(DisposableDomains, ParsesOneDomainPerLineIgnoringCommentsBlanksAndCase) {
  const auto d = DisposableDomains::from_text(
      "# header comment\n"
      "\n"
      "Mailinator.COM\r\n"
      "  tempmail.dev   # trailing comment\n"
      "mailinator.com\n"
      "   \n"
      "last.example");  // no final newline
  EXPECT_EQ(d.size(), 3U);
  EXPECT_TRUE(d.contains("mailinator.com"));
  EXPECT_TRUE(d.contains("tempmail.dev"));
  EXPECT_TRUE(d.contains("last.example"));
  EXPECT_FALSE(d.contains("# header comment"));
  EXPECT_FALSE(d.contains(""));
  EXPECT_EQ(DisposableDomains::from_text("").size(), 0U);
  EXPECT_EQ(DisposableDomains::from_text("# only\n#comments\n").size(), 0U);
}

TEST(DisposableDomains, MatchesParentDomainsButNotLookalikes) {
  const auto d = DisposableDomains::from_text("mailinator.com\n");
  EXPECT_TRUE(d.contains("mailinator.com"));
  EXPECT_TRUE(d.contains("mail.mailinator.com"));
  EXPECT_TRUE(d.contains("a.b.mailinator.com"));
  EXPECT_TRUE(d.contains("MAIL.Mailinator.Com"));
  EXPECT_FALSE(d.contains("notmailinator.com"));
  EXPECT_FALSE(d.contains("mailinator.com.evil.org"));
  EXPECT_FALSE(d.contains("com"));
  EXPECT_FALSE(d.contains("mailinator"));
}

TEST(DisposableDomains, CheckEmailWarnsButAccepts) {
  // 003 US1 scenario 3: a disposable address is a warning, not a refusal.
  const auto d = DisposableDomains::from_text("mailinator.com\n");
  const auto r = check_email("Someone@Mail.Mailinator.com", d);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r.value().disposable);
  EXPECT_FALSE(check_email("someone@example.com", d).value().disposable);
}

TEST(DisposableDomains, BuiltinListIsTheCommittedDataFile) {
  const auto& builtin = DisposableDomains::builtin();
  EXPECT_EQ(&builtin, &DisposableDomains::builtin());  // built once
  // The data file holds ~120k domains (npm disposable-email-domains); a broken embed would be
  // empty or hold one giant line.
  EXPECT_GT(builtin.size(), 10000U);
  for (const auto* domain : {"mailinator.com", "guerrillamail.com", "10minutemail.com",
                             "yopmail.com", "sub.mailinator.com"}) {
    EXPECT_TRUE(builtin.contains(domain)) << domain;
  }
  for (const auto* domain : {"gmail.com", "outlook.com", "example.com", "yahoo.com"}) {
    EXPECT_FALSE(builtin.contains(domain)) << domain;
  }
  // Header comments of the data file are not domains.
  EXPECT_FALSE(builtin.contains("# version: 1.0.62"));

  const auto loaded =
      DisposableDomains::load(SECHEX_SOURCE_DIR "/api/identity/data/disposable_email_domains.txt");
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_EQ(loaded.value().size(), builtin.size());
}

TEST(DisposableDomains, LoadReportsAnUnreadableFile) {
  const auto missing = DisposableDomains::load("/nonexistent/disposable.txt");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);

  const auto dir = DisposableDomains::load("/");
  EXPECT_FALSE(dir);  // a directory opens but does not read

  const auto path = std::filesystem::temp_directory_path() /
                    ("identity_rules_test_" + std::to_string(::getpid()) + ".txt");
  std::ofstream(path) << "# mine\nthrowaway.test\n";
  const auto mine = DisposableDomains::load(path.string());
  std::filesystem::remove(path);
  ASSERT_TRUE(mine);
  EXPECT_EQ(mine.value().size(), 1U);
  EXPECT_TRUE(mine.value().contains("x.throwaway.test"));
}

// ---- password policy: 004 FR-003, FR-004, FR-041 ----

TEST(PasswordLevel, RoundTripsTheApiSpelling) {
  EXPECT_EQ(to_string(PasswordLevel::basic), "basic");
  EXPECT_EQ(to_string(PasswordLevel::high), "high");
  EXPECT_EQ(parse_level("basic"), PasswordLevel::basic);
  EXPECT_EQ(parse_level("high"), PasswordLevel::high);
  for (const auto* bad : {"", "Basic", "HIGH", " high", "medium"}) {
    EXPECT_FALSE(parse_level(bad)) << bad;
  }
  EXPECT_FALSE(parse_level(std::string_view("high\0", 5)));
}

TEST(PasswordPolicy, LevelsMatchFr003) {
  const auto basic = PasswordPolicy::for_level(PasswordLevel::basic);
  EXPECT_EQ(basic.level, PasswordLevel::basic);
  EXPECT_EQ(basic.min_length, 8U);
  EXPECT_TRUE(basic.require_upper && basic.require_lower && basic.require_digit);
  EXPECT_FALSE(basic.require_special);
  const auto high = PasswordPolicy::for_level(PasswordLevel::high);
  EXPECT_EQ(high.level, PasswordLevel::high);
  EXPECT_EQ(high.min_length, 12U);
  EXPECT_TRUE(high.require_upper && high.require_lower && high.require_digit);
  EXPECT_TRUE(high.require_special);
}

Rules unmet(std::string_view password, PasswordLevel level) {
  return check_password(password, PasswordPolicy::for_level(level)).unmet;
}

TEST(CheckPassword, ListsUnmetRulesInTheirFixedOrder) {
  const auto basic = PasswordLevel::basic;
  const auto high = PasswordLevel::high;
  EXPECT_EQ(unmet("Vq7mLx2w", basic), Rules{});
  EXPECT_EQ(unmet("Vq7mLx2", basic), Rules{"min_length"});
  EXPECT_EQ(unmet("vq7mlx2w", basic), Rules{"upper"});
  EXPECT_EQ(unmet("VQ7MLX2W", basic), Rules{"lower"});
  EXPECT_EQ(unmet("VqHmLxRw", basic), Rules{"digit"});
  EXPECT_EQ(unmet("", basic), (Rules{"min_length", "upper", "lower", "digit"}));
  EXPECT_EQ(unmet("", high), (Rules{"min_length", "upper", "lower", "digit", "special"}));
  EXPECT_EQ(unmet("Vq7mLx2wTr9k", high), Rules{"special"});
  EXPECT_EQ(unmet("Vq7mLx2w!r9k", high), Rules{});
  EXPECT_EQ(unmet("Vq7mLx2w!r9", high), Rules{"min_length"});
  // Everything at once, in order.
  EXPECT_EQ(unmet(std::string(2000, '\x01'), high),
            (Rules{"upper", "lower", "digit", "special", "max_length", "control_characters"}));
}

TEST(CheckPassword, SpecialIsPrintableAsciiPunctuationSpaceOrNonAscii) {
  const auto high = PasswordLevel::high;
  for (const std::string_view s : {"Vq7mLx2wTr9k!", "Vq7mLx2wTr9k ", "Vq7mLx2wTr9k~",
                                   "Vq7mLx2wTr9k\xC3\xA9", "Vq7mLx2wTr9k\xF0\x9F\x94\x91"}) {
    EXPECT_EQ(unmet(s, high), Rules{}) << s;
  }
}

TEST(CheckPassword, CountsLengthInCodePointsNotBytes) {
  // Seven code points of which "é" takes two bytes: 8 bytes, still too short.
  EXPECT_EQ(unmet("Vq7mLx\xC3\xA9", PasswordLevel::basic), Rules{"min_length"});
  EXPECT_EQ(unmet("Vq7mLx2\xC3\xA9", PasswordLevel::basic), Rules{});
  // Four 4-byte emoji plus 4 ASCII: 8 code points, 20 bytes.
  EXPECT_EQ(unmet("Aa1\xF0\x9F\x94\x91\xF0\x9F\x94\x92\xF0\x9F\x94\x93\xF0\x9F\x94\x94x",
                  PasswordLevel::basic),
            Rules{});
}

TEST(CheckPassword, RefusesInvalidUtf8) {
  for (const std::string_view bad : {
           "Vq7mLx2w\xFF",              // never valid
           "Vq7mLx2w\xC3",              // truncated
           "Vq7mLx2w\xC0\xAF",          // overlong "/"
           "Vq7mLx2w\xED\xA0\x80",      // UTF-16 surrogate
           "Vq7mLx2w\xF4\x90\x80\x80",  // above U+10FFFF
           "Vq7mLx2w\x80",              // lone continuation
       }) {
    EXPECT_EQ(unmet(bad, PasswordLevel::basic), Rules{"invalid_utf8"}) << bad;
  }
  // An invalid byte is not a special character.
  EXPECT_EQ(unmet("Vq7mLx2wTr9k\xFF", PasswordLevel::high), (Rules{"special", "invalid_utf8"}));
}

TEST(CheckPassword, RefusesControlCharactersIncludingNulAndC1) {
  for (const std::string_view bad :
       {std::string_view("Vq7mLx2w\0", 9), std::string_view("Vq7m\tLx2w"),
        std::string_view("Vq7mLx2w\n"), std::string_view("Vq7mLx2w\x7F"),
        std::string_view("Vq7mLx2w\xC2\x85")}) {  // U+0085 NEL
    EXPECT_EQ(unmet(bad, PasswordLevel::basic), Rules{"control_characters"});
  }
}

TEST(CheckPassword, AcceptsExactlyTheMaximumLengthInBytes) {
  std::string longest = "Vq7mLx2w";
  longest.resize(kMaxPasswordBytes, 'z');
  EXPECT_EQ(unmet(longest, PasswordLevel::basic), Rules{});
  EXPECT_EQ(unmet(longest + "z", PasswordLevel::basic), Rules{"max_length"});
  // Megabytes are answered, not hashed.
  EXPECT_EQ(unmet(std::string(1 << 20, 'a') + "A1", PasswordLevel::basic), Rules{"max_length"});
}

TEST(CheckPassword, RefusesCommonPasswordsWhateverThePolicy) {
  // "Password1" meets every basic rule; the list is what refuses it.
  EXPECT_EQ(unmet("Password1", PasswordLevel::basic), Rules{"common_password"});
  EXPECT_EQ(unmet("P@ssw0rd", PasswordLevel::basic), Rules{"common_password"});
  EXPECT_EQ(unmet("password", PasswordLevel::basic), (Rules{"upper", "digit", "common_password"}));
  EXPECT_EQ(unmet("123456", PasswordLevel::basic),
            (Rules{"min_length", "upper", "lower", "common_password"}));
  for (const auto* p : {"password", "123456", "qwerty", "QWERTY", "iloveyou", "letmein"}) {
    const auto c = check_password(p, PasswordPolicy::for_level(PasswordLevel::basic));
    EXPECT_EQ(c.strength, 0) << p;
    EXPECT_EQ(c.strength_label, "very_weak") << p;
    EXPECT_EQ(c.unmet.back(), "common_password") << p;
  }
  // Only the whole password is refused; containing a common word is a strength matter.
  EXPECT_EQ(unmet("Password1-Vq7mLx", PasswordLevel::basic), Rules{});
}

int strength(std::string_view password, std::span<const std::string_view> context = {}) {
  return check_password(password, PasswordPolicy::for_level(PasswordLevel::basic), context)
      .strength;
}

TEST(CheckPassword, StrengthGrowsWithLengthAndVariety) {
  // 004 FR-038: the indicator the UI shows. Labels follow the score.
  EXPECT_EQ(strength(""), 0);
  EXPECT_EQ(strength("xq"), 0);
  EXPECT_EQ(strength("vqmlxrw"), 1);         // 7 lower: 32.9 bits
  EXPECT_EQ(strength("vqmlxrwk"), 2);        // 8 lower: 37.6 bits
  EXPECT_EQ(strength("Vq7mLx2w"), 2);        // 8 mixed: 47.6 bits
  EXPECT_EQ(strength("Vq7mLx2w!r9k"), 3);    // 12 of 95: 78.8 bits
  EXPECT_EQ(strength("Vq7mLx2w!r9k#T"), 4);  // 14 of 95: 92 bits
  EXPECT_EQ(strength("correcthorsebatterystaple"), 4);
  constexpr std::array<std::string_view, 5> labels = {"very_weak", "weak", "fair", "strong",
                                                      "very_strong"};
  for (const std::string_view p : {"", "vqmlxrw", "Vq7mLx2w", "Vq7mLx2w!r9k", "Vq7mLx2w!r9k#T"}) {
    const auto c = check_password(p, PasswordPolicy::for_level(PasswordLevel::high));
    EXPECT_EQ(c.strength_label, labels[static_cast<std::size_t>(c.strength)]) << p;
  }
}

TEST(CheckPassword, StrengthDiscountsRepeatsSequencesAndKeyboardRuns) {
  // Each of these meets the basic policy; the estimate still calls it very weak.
  EXPECT_EQ(strength("Aaaaaaaa1"), 0);
  EXPECT_EQ(strength("Abcdefgh1"), 0);
  EXPECT_EQ(strength("Abcd1234"), 0);
  EXPECT_EQ(strength("Hgfedcba9"), 0);  // descending
  EXPECT_EQ(strength("Qwertyui1"), 0);  // keyboard row
  EXPECT_EQ(strength("Asdfghjk1"), 0);
  EXPECT_EQ(strength("Password1!"), 0);  // a common password inside
  // The same letters shuffled are not discounted.
  EXPECT_GE(strength("Aebhcgdf1"), 2);
}

TEST(CheckPassword, StrengthDiscountsContextSuchAsTheEmailLocalPart) {
  const std::array<std::string_view, 2> context = {"annabelle.jones", "ab"};  // "ab" too short
  const std::string_view password = "AnnaBelle.Jones7";
  EXPECT_GE(strength(password), 3);
  EXPECT_EQ(strength(password, context), 0);        // case-insensitive
  EXPECT_GE(strength("Vq7mLx2w!abk", context), 3);  // short context strings are ignored
  // Context changes the estimate, never the rules.
  EXPECT_TRUE(
      check_password(password, PasswordPolicy::for_level(PasswordLevel::basic), context).ok());
}

TEST(CheckPassword, NeverCrashesOnArbitraryBytes) {
  std::string s;
  for (int i = 0; i < 4096; ++i) s.push_back(static_cast<char>((i * 131 + 7) % 256));
  for (std::size_t len = 0; len < s.size(); len += 97) {
    const auto c = check_password(std::string_view(s).substr(0, len),
                                  PasswordPolicy::for_level(PasswordLevel::high));
    EXPECT_GE(c.strength, 0);
    EXPECT_LE(c.strength, 4);
    EXPECT_FALSE(c.strength_label.empty());
  }
}

// ---- OTP codes: 002 "Strong OTP Generation" ----

TEST(Otp, DrawLimitIsTheLargestMultipleOfTenToTheEightBelowTwoToThe32) {
  EXPECT_EQ(kOtpDrawLimit, 4'200'000'000U);
  EXPECT_EQ(kOtpDrawLimit % kOtpModulus, 0U);
  EXPECT_GT(std::uint64_t{kOtpDrawLimit} + kOtpModulus, std::uint64_t{1} << 32);
}

TEST(Otp, RejectsExactlyTheDrawsThatWouldBiasTheCodes) {
  EXPECT_EQ(otp_from_draw(0), 0U);
  EXPECT_EQ(otp_from_draw(99'999'999), 99'999'999U);
  EXPECT_EQ(otp_from_draw(100'000'000), 0U);
  EXPECT_EQ(otp_from_draw(kOtpDrawLimit - 1), 99'999'999U);  // last accepted
  EXPECT_EQ(otp_from_draw(kOtpDrawLimit), std::nullopt);     // first rejected
  EXPECT_EQ(otp_from_draw(4'294'967'295U), std::nullopt);
  // Every code has the same number of accepted preimages (42): code c comes from c + k·10^8.
  for (const std::uint32_t code : {0U, 12'345'678U, 94'967'295U, 94'967'296U, 99'999'999U}) {
    int preimages = 0;
    for (std::uint64_t draw = code; draw <= 0xFFFF'FFFFU; draw += kOtpModulus) {
      preimages += otp_from_draw(static_cast<std::uint32_t>(draw)) == code ? 1 : 0;
    }
    EXPECT_EQ(preimages, 42) << code;
  }
}

TEST(Otp, GeneratesEightDigitCodes) {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    const auto code = generate_otp_code();
    ASSERT_TRUE(code) << code.error().message();
    ASSERT_TRUE(is_otp_format(code.value())) << code.value();
    seen.insert(code.value());
  }
  // 2000 draws from 10^8: a collision has probability ~2 %, more than five is ~never (~10^-10).
  EXPECT_GE(seen.size(), 1995U);
}

TEST(Otp, LeadingDigitsAreRoughlyUniform) {
  // 100k codes, 10 leading digits: each count is Binomial(100000, 0.1), mean 10000, sd ~95.
  // The bounds 9000..11000 are ~10.5 sd away: a false failure has probability < 10^-24 per run,
  // while a generator that folded rejected draws in (favouring 0..94,967,295) would not notice,
  // but one that produced e.g. only 7-digit codes or a fixed digit would.
  std::array<int, 10> counts{};
  constexpr int kCodes = 100'000;
  for (int i = 0; i < kCodes; ++i) {
    const auto code = generate_otp_code();
    ASSERT_TRUE(code);
    ++counts[static_cast<std::size_t>(code.value()[0] - '0')];
  }
  for (std::size_t d = 0; d < counts.size(); ++d) {
    EXPECT_GT(counts[d], 9000) << "leading digit " << d;
    EXPECT_LT(counts[d], 11000) << "leading digit " << d;
  }
}

TEST(Otp, FormatIsExactlyEightAsciiDigits) {
  EXPECT_TRUE(is_otp_format("00000000"));
  EXPECT_TRUE(is_otp_format("12345678"));
  for (const std::string_view bad : {"", "1234567", "123456789", " 12345678", "12345678 ",
                                     "1234567a", "+1234567", "-1234567", "１２３４５６７８"}) {
    EXPECT_FALSE(is_otp_format(bad)) << bad;
  }
  EXPECT_FALSE(is_otp_format(std::string_view("1234567\0", 8)));
}

// ---- tokens ----

TEST(RandomToken, IsUnpaddedBase64UrlOfTheRequestedSize) {
  const auto token = random_token();
  ASSERT_TRUE(token);
  EXPECT_EQ(token.value().size(), 43U);  // 32 bytes
  ledger::Bytes decoded;
  ASSERT_TRUE(jose::base64url_decode(token.value(), decoded));
  EXPECT_EQ(decoded.size(), 32U);
  EXPECT_EQ(random_token(16).value().size(), 22U);
  EXPECT_EQ(random_token(1024).value().size(), 1366U);
  EXPECT_NE(random_token().value(), random_token().value());
}

TEST(RandomToken, RefusesGuessableOrAbsurdSizes) {
  for (const std::size_t bytes : {0UL, 1UL, 15UL, 1025UL, std::size_t{1} << 40}) {
    const auto t = random_token(bytes);
    ASSERT_FALSE(t) << bytes;
    EXPECT_EQ(t.error(), ledger::Errc::invalid_argument);
  }
}

}  // namespace
}  // namespace sechex::api::identity
