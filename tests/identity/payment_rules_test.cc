// The pure rules of payments (api/identity/payments.h, issue 15), one table each: currencies and
// their exponents, Idempotency-Key syntax, the idempotency decision and the status transitions
// API.md allows (pending -> succeeded | failed, succeeded -> refunded; nothing else).
#include <gtest/gtest.h>

#include "api/identity/payments.h"

namespace sechex::api::identity {
namespace {

TEST(PaymentRules, CurrenciesAreActiveIso4217CodesWithTheirExponents) {
  const std::vector<std::pair<const char*, int>> known = {
      {"EUR", 2}, {"USD", 2}, {"JPY", 0}, {"KRW", 0}, {"KWD", 3}, {"BHD", 3},
      {"CLP", 0}, {"XOF", 0}, {"CHF", 2}, {"AED", 2}, {"ZWG", 2}, {"XCG", 2}};
  for (const auto& [code, exponent] : known) {
    const auto c = currency(code);
    ASSERT_TRUE(c) << code;
    EXPECT_EQ(c->exponent, exponent) << code;
    EXPECT_EQ(c->code, code);
  }
  for (const char* no : {"eur", "EU", "EURO", "", "XAU", "XTS", "XXX", "XDR", "BOV", "CLF", "ANG",
                         "HRK", "ZZZ", "AAA"}) {
    EXPECT_FALSE(currency(no)) << no;
  }
}

TEST(PaymentRules, IdempotencyKeysAreOneTo255PrintableAsciiCharacters) {
  EXPECT_TRUE(valid_idempotency_key("a"));
  EXPECT_TRUE(valid_idempotency_key(std::string(255, 'k')));
  EXPECT_TRUE(valid_idempotency_key("order 42 / try #2"));
  EXPECT_FALSE(valid_idempotency_key(""));
  EXPECT_FALSE(valid_idempotency_key(std::string(256, 'k')));
  EXPECT_FALSE(valid_idempotency_key("tab\tkey"));
  EXPECT_FALSE(valid_idempotency_key("caf\xc3\xa9"));
  EXPECT_FALSE(valid_idempotency_key(std::string("nul\0key", 7)));
}

TEST(PaymentRules, AKeyCreatesOnceThenReplaysTheSameRequestAndRefusesAnother) {
  EXPECT_EQ(decide_create(std::nullopt, "aa"), CreateDecision::create);
  const projections::IdempotentPayment kept{"pay_1", "aa", 100};
  EXPECT_EQ(decide_create(kept, "aa"), CreateDecision::replay);
  EXPECT_EQ(decide_create(kept, "ab"), CreateDecision::key_reused);
}

TEST(PaymentRules, OnlyTheTransitionsOfApiMdAreAllowed) {
  struct Case {
    const char* from;
    const char* type;
    std::optional<std::string_view> to;
  };
  const std::vector<Case> cases = {
      {"pending", "payment.succeeded", "succeeded"},
      {"pending", "payment.failed", "failed"},
      {"pending", "payment.refunded", std::nullopt},  // a refund before its success
      {"succeeded", "payment.refunded", "refunded"},
      {"succeeded", "payment.succeeded", std::nullopt},
      {"succeeded", "payment.failed", std::nullopt},
      {"failed", "payment.succeeded", std::nullopt},
      {"failed", "payment.refunded", std::nullopt},
      {"refunded", "payment.refunded", std::nullopt},
      {"refunded", "payment.succeeded", std::nullopt},
      {"pending", "payment.disputed", std::nullopt},
      {"", "payment.succeeded", std::nullopt},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(decide_transition(c.from, c.type), c.to) << c.from << " + " << c.type;
  }
  EXPECT_TRUE(known_webhook_type("payment.failed"));
  EXPECT_FALSE(known_webhook_type("payment.disputed"));
}

}  // namespace
}  // namespace sechex::api::identity
