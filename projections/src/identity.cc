#include "projections/identity.h"

#include <nlohmann/json.hpp>

#include "codec.h"
#include "ledger/crypto.h"
#include "ledger/utf8.h"
#include "projections/store.h"

namespace sechex::projections {
namespace {

using codec::lp;

std::string_view bytes_of(const flatbuffers::Vector<std::uint8_t>* v) {
  if (v == nullptr) return {};
  return {reinterpret_cast<const char*>(v->data()), v->size()};
}

std::string_view otp_purpose(schema::OtpPurpose p) {
  return p == schema::OtpPurpose::Reauth ? "reauth" : "login";
}

std::string_view state_name(OneTimeToken::State s) {
  switch (s) {
    case OneTimeToken::State::used:
      return "used";
    case OneTimeToken::State::superseded:
      return "superseded";
    case OneTimeToken::State::live:
      break;
  }
  return "live";
}

std::optional<OneTimeToken> decode_token(std::string_view value) {
  const auto j = nlohmann::json::parse(value, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  OneTimeToken t;
  t.user = j.value("user", "");
  t.purpose = j.value("purpose", "");
  t.expires_at = j.value("expires_at", std::int64_t{0});
  const auto state = j.value("state", "");
  t.state = state == "used"         ? OneTimeToken::State::used
            : state == "superseded" ? OneTimeToken::State::superseded
                                    : OneTimeToken::State::live;
  return t;
}

std::string encode_token(const OneTimeToken& t) {
  return ledger::json_text(nlohmann::json{{"user", t.user},
                                          {"purpose", t.purpose},
                                          {"expires_at", t.expires_at},
                                          {"state", state_name(t.state)}});
}

// The value's own end of life, INT64_MAX when unreadable (never cleaned: projection.h).
std::int64_t end_of_life(std::string_view cf, std::string_view value) {
  // login_failures: only an unknown email's entry (count || end) has an end.
  if (cf == kLoginFailuresCf)
    return value.size() == 12 ? codec::get_be64(value.substr(4)) : INT64_MAX;
  const auto j = nlohmann::json::parse(value, nullptr, false);
  if (!j.is_object() || !j.contains("expires_at") || !j["expires_at"].is_number_integer()) {
    return INT64_MAX;
  }
  const auto expires_at = j["expires_at"].get<std::int64_t>();
  if (cf == kOneTimeTokensCf) {
    return expires_at > INT64_MAX - kSpentTokenKeepMicros ? INT64_MAX
                                                          : expires_at + kSpentTokenKeepMicros;
  }
  return expires_at;
}

// A token that a new one of the same purpose replaces, or its use, changes state only while
// the entry is still kept (an entry over at the event's time counts as absent: projection.h).
Result<void> set_token_state(Txn& txn, std::string_view hash, OneTimeToken::State state,
                             std::int64_t now) {
  SECHEX_TRY(auto stored, txn.get(kOneTimeTokensCf, hash));
  if (!stored || end_of_life(kOneTimeTokensCf, *stored) <= now) return boost::outcome_v2::success();
  auto t = decode_token(*stored);
  if (!t) return ledger::Errc::corruption;
  if (t->state != OneTimeToken::State::live) return boost::outcome_v2::success();
  t->state = state;
  txn.put(kOneTimeTokensCf, hash, encode_token(*t));
  return boost::outcome_v2::success();
}

Result<void> issue_token(Txn& txn, const std::string& user, std::string_view purpose,
                         std::string_view hash, std::int64_t expires_at, std::int64_t now) {
  if (hash.empty()) return boost::outcome_v2::success();
  const auto index_key = lp(user) + std::string(purpose);
  SECHEX_TRY(auto previous, txn.get(kUserTokensCf, index_key));
  if (previous && *previous != hash) {
    SECHEX_TRYV(set_token_state(txn, *previous, OneTimeToken::State::superseded, now));
  }
  txn.put(kOneTimeTokensCf, hash,
          encode_token({user, std::string(purpose), expires_at, OneTimeToken::State::live}));
  txn.put(kUserTokensCf, index_key, hash);
  return boost::outcome_v2::success();
}

Result<void> use_token(Txn& txn, std::string_view hash, std::int64_t now) {
  if (hash.empty()) return boost::outcome_v2::success();
  return set_token_state(txn, hash, OneTimeToken::State::used, now);
}

std::string be32(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (24 - 8 * i));
  return s;
}

}  // namespace

Result<void> IdentityProjection::apply(const schema::Envelope& env, const ledger::Position&,
                                       Txn& txn) {
  const auto user = env.subject()->str();
  const auto now = env.time_micros();
  switch (env.event_type()) {
    case schema::Event::EmailVerificationIssued: {
      const auto* e = env.event_as_EmailVerificationIssued();
      return issue_token(txn, user, kPurposeVerifyEmail, bytes_of(e->token_hash()), e->expires_at(),
                         now);
    }
    case schema::Event::EmailVerified:
      return use_token(txn, bytes_of(env.event_as_EmailVerified()->token_hash()), now);
    case schema::Event::PasswordResetRequested: {
      const auto* e = env.event_as_PasswordResetRequested();
      return issue_token(txn, user, kPurposePasswordReset, bytes_of(e->token_hash()),
                         e->expires_at(), now);
    }
    case schema::Event::PasswordReset:
      SECHEX_TRYV(use_token(txn, bytes_of(env.event_as_PasswordReset()->token_hash()), now));
      txn.del(kLoginFailuresCf, user);
      return boost::outcome_v2::success();
    case schema::Event::OtpIssued: {
      const auto* e = env.event_as_OtpIssued();
      const auto hash = bytes_of(e->code_hash());
      txn.put(
          kOtpCodesCf, lp(user) + std::string(otp_purpose(e->purpose())),
          ledger::json_text(nlohmann::json{
              {"code_hash", ledger::to_hex(ledger::ByteView(
                                reinterpret_cast<const std::uint8_t*>(hash.data()), hash.size()))},
              {"expires_at", e->expires_at()}}));
      return boost::outcome_v2::success();
    }
    case schema::Event::OtpVerified:
      txn.del(kOtpCodesCf,
              lp(user) + std::string(otp_purpose(env.event_as_OtpVerified()->purpose())));
      return boost::outcome_v2::success();
    case schema::Event::LoginFailed: {
      auto value = be32(env.event_as_LoginFailed()->consecutive_failures());
      if (user.starts_with(kAnonymousSubjectPrefix)) {
        codec::put_be64(value, now + kAnonFailuresKeptMicros);
      }
      txn.put(kLoginFailuresCf, user, value);
      return boost::outcome_v2::success();
    }
    case schema::Event::LoginSucceeded:
    case schema::Event::AccountUnlocked:
      txn.del(kLoginFailuresCf, user);
      return boost::outcome_v2::success();
    case schema::Event::ReauthGranted: {
      const auto* e = env.event_as_ReauthGranted();
      if (e->reauth_id() == nullptr || e->reauth_id()->size() == 0) {
        return boost::outcome_v2::success();
      }
      txn.put(kReauthGrantsCf, e->reauth_id()->str(),
              ledger::json_text(nlohmann::json{{"user", user}, {"expires_at", e->expires_at()}}));
      return boost::outcome_v2::success();
    }
    case schema::Event::PolicyChanged: {
      const auto* e = env.event_as_PolicyChanged();
      if (e->policy() != nullptr && e->policy()->str() == "password" && e->value() != nullptr) {
        txn.put(kSettingsCf, "password_policy", e->value()->str());
      }
      return boost::outcome_v2::success();
    }
    case schema::Event::FlagChanged: {
      const auto* e = env.event_as_FlagChanged();
      if (e->name() != nullptr && e->name()->size() > 0 && e->rules_json() != nullptr) {
        txn.put(kSettingsCf, std::string(kFlagSettingPrefix) + e->name()->str(),
                e->rules_json()->str());
      }
      return boost::outcome_v2::success();
    }
    case schema::Event::SubjectErased: {
      // Nothing of an erased user may still open a door: links, codes, counters.
      SECHEX_TRY(auto tokens, txn.scan(kUserTokensCf, lp(user)));
      for (const auto& [key, hash] : tokens) {
        txn.del(kOneTimeTokensCf, hash);
        txn.del(kUserTokensCf, key);
      }
      SECHEX_TRY(auto codes, txn.scan(kOtpCodesCf, lp(user)));
      for (const auto& entry : codes) txn.del(kOtpCodesCf, entry.first);
      txn.del(kLoginFailuresCf, user);
      return boost::outcome_v2::success();
    }
    default:
      return boost::outcome_v2::success();
  }
}

bool IdentityProjection::expired(std::string_view cf, std::string_view, std::string_view value,
                                 std::int64_t now_micros) const {
  return end_of_life(cf, value) <= now_micros;
}

Result<std::optional<OneTimeToken>> one_time_token(const ProjectionStore& store,
                                                   std::string_view token_hash) {
  SECHEX_TRY(auto stored, store.get(kOneTimeTokensCf, token_hash));
  if (!stored) return std::optional<OneTimeToken>{};
  auto t = decode_token(*stored);
  if (!t) return ledger::Errc::corruption;
  return t;
}

Result<std::optional<OtpCode>> otp_code(const ProjectionStore& store, std::string_view user,
                                        std::string_view purpose) {
  SECHEX_TRY(auto stored, store.get(kOtpCodesCf, lp(user) + std::string(purpose)));
  if (!stored) return std::optional<OtpCode>{};
  const auto j = nlohmann::json::parse(*stored, nullptr, false);
  ledger::Bytes hash;
  if (!j.is_object() || !ledger::from_hex(j.value("code_hash", ""), hash)) {
    return ledger::Errc::corruption;
  }
  return std::optional<OtpCode>(
      OtpCode{std::string(hash.begin(), hash.end()), j.value("expires_at", std::int64_t{0})});
}

Result<std::uint32_t> login_failures(const ProjectionStore& store, std::string_view user,
                                     TimePoint now) {
  SECHEX_TRY(auto stored, store.get(kLoginFailuresCf, user));
  if (!stored) return 0u;
  if (stored->size() != 4 && stored->size() != 12) return ledger::Errc::corruption;
  if (end_of_life(kLoginFailuresCf, *stored) <= micros_of(now)) return 0u;
  std::uint32_t n = 0;
  for (const char c : std::string_view(*stored).substr(0, 4)) {
    n = (n << 8) | static_cast<unsigned char>(c);
  }
  return n;
}

Result<std::optional<std::string>> reauth_grant_user(const ProjectionStore& store,
                                                     std::string_view reauth_id, TimePoint now) {
  SECHEX_TRY(auto stored, store.get(kReauthGrantsCf, reauth_id));
  if (!stored) return std::optional<std::string>{};
  const auto j = nlohmann::json::parse(*stored, nullptr, false);
  if (!j.is_object()) return ledger::Errc::corruption;
  if (j.value("expires_at", std::int64_t{0}) <= micros_of(now)) return std::optional<std::string>{};
  return std::optional<std::string>(j.value("user", ""));
}

Result<std::string> password_policy_level(const ProjectionStore& store) {
  SECHEX_TRY(auto stored, store.get(kSettingsCf, "password_policy"));
  return stored ? *stored : std::string("basic");
}

Result<std::optional<std::string>> flag_rules_json(const ProjectionStore& store,
                                                   std::string_view name) {
  return store.get(kSettingsCf, std::string(kFlagSettingPrefix) + std::string(name));
}

}  // namespace sechex::projections
