// Sign-in with a third-party OpenID provider (oauth.h).
#include "api/identity/oauth.h"

#include "api/crypto/oidc.h"
#include "command_context.h"
#include "projections/oauth.h"

namespace sechex::api::identity {

using namespace detail;

namespace {

constexpr std::string_view kStateSubjectPrefix = "anon:oauth:";
constexpr std::size_t kMaxStateChars = 512;
constexpr std::size_t kMaxProviderErrorChars = 64;

// The keyed values a state derives; each its own purpose, so none can stand in for another.
std::string derived(const LookupHasher& lookup, std::string_view purpose, std::string_view state) {
  return jose::base64url_encode(lookup.token(purpose, state));
}
std::string binding_of(const LookupHasher& l, std::string_view s) {
  return derived(l, "oauth-binding", s);
}
std::string nonce_of(const LookupHasher& l, std::string_view s) {
  return derived(l, "oauth-nonce", s);
}
// 43 characters of base64url: within RFC 7636's 43..128 unreserved characters.
std::string verifier_of(const LookupHasher& l, std::string_view s) {
  return derived(l, "oauth-pkce", s);
}

std::string state_subject(std::string_view state_hash) {
  return std::string(kStateSubjectPrefix) + hex_of(state_hash);
}

// A provider's `error` parameter as a reason: its RFC 6749 spelling, never arbitrary bytes.
std::string provider_error(std::string_view error) {
  std::string out = "provider_";
  for (const char c : error.substr(0, kMaxProviderErrorChars)) {
    out.push_back((c >= 'a' && c <= 'z') || c == '_' ? c : '_');
  }
  return out;
}

Result<ledger::Bytes> refused_event(Context& x, std::string_view subject, std::string_view provider,
                                    std::string_view state_hash, std::string_view reason) {
  return x.event(subject, Actor::self(), [&](ledger::EventBuilder& b) {
    auto& f = b.fbb();
    return b.finish(schema::CreateOAuthLoginRefused(f, f.CreateString(provider),
                                                    bytes(f, state_hash), f.CreateString(reason)));
  });
}

}  // namespace

OAuthCommands::OAuthCommands(CommandDeps deps, CommandConfig config, oauth::Providers& providers,
                             Micros state_lifetime)
    : d_(std::move(deps)),
      config_(std::move(config)),
      providers_(providers),
      state_lifetime_(state_lifetime) {}

std::string OAuthCommands::start_path(std::string_view provider) {
  return "/v1/auth/oauth/" + std::string(provider) + "/start";
}

// ---- Begin (FR-005) ----
Outcome<OAuthStarted> OAuthCommands::start(const Caller& c, std::string_view provider, bool consent,
                                           bool remember_me) {
  if (!has_provider(provider)) return Refused::unknown_provider;
  Context x(d_, config_, c);
  auto state = random_token(32);
  if (!state) return Refused::internal;
  const auto state_hash = d_.lookup.token("oauth-state", state.value());
  const auto subject = state_subject(state_hash);
  const auto p = x.partition_of(subject);
  SECHEX_TRYV(x.check_owner(p));
  // The provider's document first: an unreachable provider records nothing.
  auto location = providers_.authorization_url(
      provider, {state.value(), nonce_of(d_.lookup, state.value()),
                 oidc::pkce_s256(verifier_of(d_.lookup, state.value()))});
  if (!location) {
    return location.error() == oauth::OAuthErrc::unknown_provider ? Refused::unknown_provider
                                                                  : Refused::provider_unavailable;
  }
  SECHEX_TRYV(x.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(auto started, x.event(subject, Actor::self(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(schema::CreateOAuthLoginStarted(
          f, f.CreateString(provider), bytes(f, state_hash), micros_of(x.now + state_lifetime_),
          consent, remember_me));
    }));
    Events out;
    out.push_back(std::move(started));
    return out;
  }));
  return OAuthStarted{std::move(location).value(), binding_of(d_.lookup, state.value())};
}

// ---- Complete (FR-006..FR-008) ----
Outcome<SignedIn> OAuthCommands::complete(const Caller& c, std::string_view provider,
                                          const OAuthCallback& cb) {
  if (!has_provider(provider)) return Refused::unknown_provider;
  Context x(d_, config_, c);
  const std::string_view state =
      cb.state.size() <= kMaxStateChars ? std::string_view(cb.state) : std::string_view();
  const auto state_hash = d_.lookup.token("oauth-state", state);
  const auto subject = state_subject(state_hash);
  const auto sp = x.partition_of(subject);
  SECHEX_TRYV(x.check_owner(sp));
  const auto expected = binding_of(d_.lookup, state);
  const bool cookie_matches =
      !state.empty() && ledger::crypto::constant_time_equal(view_of(cb.cookie), view_of(expected));
  const auto start_again = start_path(provider);

  // 1. The state: this browser's, known, for this provider, unused, unexpired; consumed here.
  auto outcome = OAuthStateOutcome::unknown;
  OAuthStateSeen seen;
  bool consent = false;
  bool remember_me = false;
  SECHEX_TRYV(x.run(sp, [&]() -> Result<Events> {
    OAuthCallbackState s;
    s.cookie_matches = cookie_matches;
    s.provider = std::string(provider);
    SECHEX_TRY(auto row, projections::oauth_state(x.store(), state_hash));
    if (row) {
      s.state = OAuthStateSeen{row->provider, row->expires_at, row->used};
      consent = row->consent;
      remember_me = row->remember_me;
    }
    outcome = decide_oauth_state(s, x.now);
    Events out;
    if (outcome != OAuthStateOutcome::ok) {
      SECHEX_TRY(auto refused, refused_event(x, subject, provider, state_hash, to_string(outcome)));
      out.push_back(std::move(refused));
      return out;
    }
    SECHEX_TRY(auto used, x.event(subject, Actor::self(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(
          schema::CreateOAuthStateUsed(f, f.CreateString(provider), bytes(f, state_hash)));
    }));
    out.push_back(std::move(used));
    return out;
  }));
  if (outcome != OAuthStateOutcome::ok) {
    Refusal r(Refused::oauth_state_mismatch);
    r.reason = std::string(to_string(outcome));
    r.url = start_again;
    return r;
  }

  // Refusals from here on: chained under `on` (the state's subject until the account is known).
  const auto refuse = [&](const std::string& on, Refusal r,
                          std::string_view reason) -> Outcome<SignedIn> {
    const auto rp = x.partition_of(on);
    auto chained = x.run(rp, [&]() -> Result<Events> {
      SECHEX_TRY(auto refused, refused_event(x, on, provider, state_hash, reason));
      Events out;
      out.push_back(std::move(refused));
      return out;
    });
    if (!chained) return chained.error();
    r.reason = std::string(reason);
    if (r.url.empty()) r.url = start_again;
    return r;
  };

  // 2. The provider's answer.
  if (!cb.error.empty()) return refuse(subject, Refused::oauth_failed, provider_error(cb.error));
  if (cb.code.empty()) return refuse(subject, Refused::oauth_failed, "missing_code");
  auto claims = providers_.redeem(provider, cb.code, verifier_of(d_.lookup, state),
                                  nonce_of(d_.lookup, state), x.now);
  if (!claims) {
    const auto reason = std::string(oauth::reason_code(claims.error()));
    if (claims.error() == oauth::OAuthErrc::provider_unavailable) {
      return refuse(subject, Refused::provider_unavailable, reason);
    }
    if (d_.log) d_.log("oauth sign-in with " + std::string(provider) + " refused: " + reason);
    return refuse(subject, Refused::oauth_failed, reason);
  }
  const auto& id = claims.value();

  // 3. The account.
  const auto link_hash = d_.lookup.token("oauth-link", std::string(provider) + '\0' + id.sub);
  SECHEX_TRY(auto linked_before, [&]() -> Outcome<std::optional<std::string>> {
    auto l = projections::oauth_link(x.store(), link_hash);
    if (!l) return Refused::unavailable;
    return std::move(l).value();
  }());
  std::optional<EmailCheck> address;
  if (!id.email.empty()) {
    if (auto checked = check_email(id.email, d_.disposable)) address = std::move(checked).value();
  }
  const auto email_hash = address ? d_.lookup.email(address->address) : std::string();
  std::string home;  // the subject whose partition decides the account
  if (linked_before) {
    home = *linked_before;
  } else if (address && id.email_verified) {
    home = hex_of(email_hash);
  } else {
    return refuse(subject, Refused::provider_email_unverified, "provider_email_unverified");
  }
  const auto p = x.partition_of(home);
  SECHEX_TRYV(x.check_owner(p));
  // A new account's id, drawn into the address's partition as registration draws it.
  std::string fresh_user;
  if (!linked_before) {
    auto drawn = user_id_in(x, p);
    if (!drawn) return Refused::internal;
    fresh_user = std::move(*drawn);
  }
  const auto fresh = new_session(d_.lookup);
  if (!fresh) return Refused::internal;

  auto decision = OAuthAccountOutcome::unavailable_account;
  std::string user;
  std::vector<std::string> roles;
  TimePoint locked_until{};
  SECHEX_TRYV(x.run(p, [&]() -> Result<Events> {
    auto& store = x.store();
    OAuthAccountState s;
    s.consent = consent;
    s.provider_email_verified = address.has_value() && id.email_verified;
    SECHEX_TRY(auto linked, projections::oauth_link(store, link_hash));
    std::optional<projections::UserRow> row;
    if (linked && x.partition_of(*linked) == p) {
      user = *linked;
      SECHEX_TRY(row, projections::user_row(store, user));
      if (row) {
        SECHEX_TRY(s.linked, login_account(x, user, *row));
      } else {
        s.linked = LoginAccount{};  // a link to nothing: unavailable
      }
    } else if (linked) {
      s.linked = LoginAccount{};  // linked meanwhile to an account decided elsewhere
    } else if (s.provider_email_verified) {
      SECHEX_TRY(auto holder, projections::user_by_email(store, email_hash));
      if (holder) {
        user = *holder;
        SECHEX_TRY(row, projections::user_row(store, user));
        if (row) {
          SECHEX_TRY(s.by_email, login_account(x, user, *row));
        }
      }
    }
    decision = decide_oauth_account(s, x.now);
    if (decision == OAuthAccountOutcome::create) user = fresh_user;
    if (row) roles = row->roles;
    const auto& a = s.linked ? s.linked : s.by_email;
    if (a && a->locked_until) locked_until = *a->locked_until;
    Events out;
    const auto on = user.empty() ? subject : user;
    const bool proceed = decision == OAuthAccountOutcome::sign_in ||
                         decision == OAuthAccountOutcome::link_and_sign_in ||
                         decision == OAuthAccountOutcome::create;
    if (!proceed) {
      SECHEX_TRY(auto refused, refused_event(x, on, provider, state_hash, to_string(decision)));
      out.push_back(std::move(refused));
      return out;
    }
    if (decision == OAuthAccountOutcome::create) {
      SECHEX_TRY(
          auto registered,
          x.event(user, Actor::self(), [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
            SECHEX_TRY(auto sealed_email, b.seal("email", address->address));
            auto& f = b.fbb();
            return b.finish(schema::CreateUserRegistered(f, sealed_email, bytes(f, email_hash), 0,
                                                         f.CreateString(config_.consent_version),
                                                         address->disposable));
          }));
      out.push_back(std::move(registered));
      SECHEX_TRYV(record_consent(x, user, true, out));
      // The provider verified the address (email_verified: true): no mail round trip.
      SECHEX_TRY(auto verified, x.event(user, Actor::system(), [&](ledger::EventBuilder& b) {
        return b.finish(schema::CreateEmailVerified(b.fbb(), 0));
      }));
      out.push_back(std::move(verified));
    }
    if (decision != OAuthAccountOutcome::sign_in) {
      SECHEX_TRY(
          auto link,
          x.event(user, Actor::self(), [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
            SECHEX_TRY(auto sealed_sub, b.seal("provider_subject", id.sub));
            auto& f = b.fbb();
            return b.finish(schema::CreateOAuthAccountLinked(f, f.CreateString(provider),
                                                             bytes(f, link_hash), sealed_sub));
          }));
      out.push_back(std::move(link));
    }
    SECHEX_TRYV(start_session(x, user, *fresh, remember_me, schema::LoginMethod::OAuth, out));
    SECHEX_TRY(
        auto completed,
        x.event(user, Actor::self(), [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
          SECHEX_TRY(auto sealed_sub, b.seal("provider_subject", id.sub));
          auto& f = b.fbb();
          return b.finish(schema::CreateOAuthLoginCompleted(f, f.CreateString(provider), sealed_sub,
                                                            f.CreateString(fresh->session.str())));
        }));
    out.push_back(std::move(completed));
    return out;
  }));

  switch (decision) {
    case OAuthAccountOutcome::sign_in:
    case OAuthAccountOutcome::link_and_sign_in:
    case OAuthAccountOutcome::create:
      return x.signed_in(user, roles, fresh->session, fresh->refresh_token);
    case OAuthAccountOutcome::locked: {
      Refusal r(Refused::account_locked);
      r.locked_until = locked_until;
      r.retry_after_seconds = locked_until == kNever ? 0 : retry_after_seconds(locked_until, x.now);
      return r;
    }
    case OAuthAccountOutcome::provider_unverified:
      return Refused::provider_email_unverified;
    case OAuthAccountOutcome::local_unverified:
      return Refused::local_account_unverified;
    case OAuthAccountOutcome::consent_required: {
      Refusal r(Refused::consent_required);
      r.url = start_again + "?consent=true";
      return r;
    }
    case OAuthAccountOutcome::unavailable_account: {
      Refusal r(Refused::oauth_failed);
      r.reason = "account_unavailable";
      r.url = start_again;
      return r;
    }
  }
  return Refused::internal;
}

// ---- Links ----
Outcome<std::vector<OAuthLink>> OAuthCommands::links(const UserId& user) const {
  auto rows = projections::oauth_links_of(d_.commands.projections(), user.str());
  if (!rows) return Refused::unavailable;
  std::vector<OAuthLink> out;
  for (const auto& r : rows.value()) out.push_back({r.provider, r.linked_at});
  return out;
}

Outcome<void> OAuthCommands::unlink(const Caller& c, const UserId& user,
                                    std::string_view provider) {
  Context x(d_, config_, c);
  const auto p = x.partition_of(user.str());
  bool found = false;
  bool last = false;
  SECHEX_TRYV(x.run(p, [&]() -> Result<Events> {
    SECHEX_TRY(auto rows, projections::oauth_links_of(x.store(), user.str()));
    SECHEX_TRY(auto row, projections::user_row(x.store(), user.str()));
    const auto it = std::find_if(rows.begin(), rows.end(),
                                 [&](const auto& r) { return r.provider == provider; });
    found = it != rows.end();
    if (!found) return Events{};
    // Without a password and another link, the account could not be signed into again.
    last = rows.size() == 1 && (!row || row->password_hash.empty());
    if (last) return Events{};
    SECHEX_TRY(auto unlinked, x.event(user.str(), Actor::self(), [&](ledger::EventBuilder& b) {
      auto& f = b.fbb();
      return b.finish(
          schema::CreateOAuthAccountUnlinked(f, f.CreateString(provider), bytes(f, it->link_hash)));
    }));
    Events out;
    out.push_back(std::move(unlinked));
    return out;
  }));
  if (!found) return Refused::not_found;
  if (last) return Refused::last_sign_in_method;
  return boost::outcome_v2::success();
}

}  // namespace sechex::api::identity
