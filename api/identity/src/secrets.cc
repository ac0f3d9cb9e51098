#include "api/identity/secrets.h"

#include "command_context.h"
#include "projections/secrets.h"

namespace sechex::api::identity {

using namespace detail;

namespace {

Outcome<void> check_verified(const projections::ProjectionStore& store, const UserId& user) {
  const auto record = account_of(store, user.str());
  if (!record || !record->email_verified) return Refused::email_not_verified;
  // Consent withdrawn (PATCH /v1/me): this processing needs it (004 FR-036).
  if (record->consent_version.empty()) return Refused::consent_required;
  return boost::outcome_v2::success();
}

}  // namespace

SecretCommands::SecretCommands(CommandDeps deps, const IdentityCommands& identity)
    : d_(std::move(deps)), identity_(identity) {}

// 002 "Unverified user attempts secret creation".
Outcome<SecretCommands::Created> SecretCommands::create(const Caller& c, const UserId& owner) {
  Context x(d_, config_, c);
  SECHEX_TRYV(check_verified(x.store(), owner));
  auto id = random_token(16);
  auto share = random_token(32);
  if (!id || !share) return Refused::internal;
  const auto secret_id = "sec_" + id.value();
  const auto& user = owner.str();
  SECHEX_TRYV(x.run(x.partition_of(user), [&]() -> Result<Events> {
    SECHEX_TRY(auto created,
               x.event(user, Actor::self(), [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
                 SECHEX_TRY(auto sealed, b.seal("server_share", share.value()));
                 auto& f = b.fbb();
                 return b.finish(schema::CreateSecretCreated(f, f.CreateString(secret_id), sealed));
               }));
    Events out;
    out.push_back(std::move(created));
    return out;
  }));
  return Created{secret_id, x.now};
}

// 002 "Unverified user attempts check-in".
Outcome<void> SecretCommands::check_in(const Caller& c, const UserId& owner,
                                       std::string_view secret) {
  Context x(d_, config_, c);
  SECHEX_TRYV(check_verified(x.store(), owner));
  const auto& user = owner.str();
  bool found = false;
  SECHEX_TRYV(x.run(x.partition_of(user), [&]() -> Result<Events> {
    SECHEX_TRY(auto s, projections::secret(x.store(), secret));
    if (!s || s->owner != user) return Events{};
    found = true;
    SECHEX_TRY(auto event, x.event(user, Actor::self(), [&](ledger::EventBuilder& b) {
      return b.finish(schema::CreateCheckIn(b.fbb(), b.fbb().CreateString(std::string(secret))));
    }));
    Events out;
    out.push_back(std::move(event));
    return out;
  }));
  if (!found) return Refused::not_found;
  return boost::outcome_v2::success();
}

// 002 "Server share reveal requires re-auth": a step-up at most 5 minutes old.
Outcome<std::string> SecretCommands::reveal_share(const Caller& c, const UserId& owner,
                                                  const SessionId& session, std::string_view secret,
                                                  ReauthToken reauth_token) {
  Context x(d_, config_, c);
  SECHEX_TRYV(check_verified(x.store(), owner));
  if (!identity_.reauth_granted(owner, session, reauth_token, x.now)) {
    return Refused::reauth_required;
  }
  const auto grant = identity_.reauth_id(session, reauth_token);
  const auto& user = owner.str();
  std::optional<projections::Secret> found;
  SECHEX_TRYV(x.run(x.partition_of(user), [&]() -> Result<Events> {
    SECHEX_TRY(auto s, projections::secret(x.store(), secret));
    if (!s || s->owner != user) return Events{};
    found = std::move(s);
    SECHEX_TRY(auto event, x.event(user, Actor::self(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateShareRevealed(f, f.CreateString(std::string(secret)),
                                                  f.CreateString(grant)));
    }));
    Events out;
    out.push_back(std::move(event));
    return out;
  }));
  if (!found) return Refused::not_found;
  ledger::Bytes event_id;
  if (!ledger::from_hex(found->event_id_hex, event_id)) return Refused::internal;
  auto share =
      d_.keys.open_field(user, event_id, "server_share", view_of(found->server_share_sealed));
  if (!share) return Refused::internal;
  return std::string(share.value().begin(), share.value().end());
}

}  // namespace sechex::api::identity
