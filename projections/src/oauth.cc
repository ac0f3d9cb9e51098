#include "projections/oauth.h"

#include "codec.h"
#include "projections/store.h"

namespace sechex::projections {
namespace {

constexpr std::size_t kStateHeader = 8 + 3;
constexpr std::size_t kLinkValueMin = 8 + 1;

std::string_view view_of(const flatbuffers::Vector<std::uint8_t>* v) {
  if (v == nullptr) return {};
  return {reinterpret_cast<const char*>(v->data()), v->size()};
}

std::string state_value(const OAuthStateRow& row) {
  auto out = codec::be64(micros_of(row.expires_at));
  out.push_back(row.used ? '\1' : '\0');
  out.push_back(row.consent ? '\1' : '\0');
  out.push_back(row.remember_me ? '\1' : '\0');
  out += row.provider;
  return out;
}

std::optional<OAuthStateRow> decode_state(std::string_view v) {
  if (v.size() < kStateHeader) return std::nullopt;
  OAuthStateRow row;
  row.expires_at = time_from_micros(codec::get_be64(v));
  row.used = v[8] != '\0';
  row.consent = v[9] != '\0';
  row.remember_me = v[10] != '\0';
  row.provider = std::string(v.substr(kStateHeader));
  return row;
}

std::string user_link_key(std::string_view user, std::string_view provider) {
  std::string key(user);
  key.push_back('\0');
  key.append(provider);
  return key;
}

}  // namespace

Result<std::optional<OAuthStateRow>> oauth_state(const ProjectionStore& store,
                                                 std::string_view state_hash) {
  SECHEX_TRY(auto v, store.get(kOAuthStatesCf, state_hash));
  if (!v) return std::optional<OAuthStateRow>();
  auto row = decode_state(*v);
  if (!row) return ledger::Errc::corruption;
  return row;
}

Result<std::optional<std::string>> oauth_link(const ProjectionStore& store,
                                              std::string_view link_hash) {
  return store.get(kOAuthLinksCf, link_hash);
}

Result<std::vector<OAuthLinkRow>> oauth_links_of(const ProjectionStore& store,
                                                 std::string_view user) {
  std::string prefix(user);
  prefix.push_back('\0');
  SECHEX_TRY(auto rows, store.scan(kOAuthUserLinksCf, prefix));
  std::vector<OAuthLinkRow> out;
  for (const auto& [key, value] : rows) {
    if (value.size() < kLinkValueMin) return ledger::Errc::corruption;
    out.push_back(OAuthLinkRow{key.substr(prefix.size()), value.substr(8),
                               time_from_micros(codec::get_be64(value))});
  }
  return out;
}

bool OAuthProjection::expired(std::string_view cf, std::string_view, std::string_view value,
                              std::int64_t now_micros) const {
  if (cf != kOAuthStatesCf || value.size() < kStateHeader) return false;
  const auto expires = codec::get_be64(value);
  return expires <= now_micros - kOAuthStateKeptMicros;
}

Result<void> OAuthProjection::apply(const schema::Envelope& env, const ledger::Position&,
                                    Txn& txn) {
  switch (env.event_type()) {
    case schema::Event::OAuthLoginStarted: {
      const auto* e = env.event_as_OAuthLoginStarted();
      const auto hash = view_of(e->state_hash());
      if (hash.empty()) return boost::outcome_v2::success();
      SECHEX_TRY(auto existing, txn.get(kOAuthStatesCf, hash));
      if (existing) return boost::outcome_v2::success();  // a state is begun once
      OAuthStateRow row;
      row.provider = e->provider() ? e->provider()->str() : "";
      row.expires_at = time_from_micros(e->expires_at());
      row.consent = e->consent();
      row.remember_me = e->remember_me();
      txn.put(kOAuthStatesCf, hash, state_value(row));
      return boost::outcome_v2::success();
    }
    case schema::Event::OAuthStateUsed: {
      const auto hash = view_of(env.event_as_OAuthStateUsed()->state_hash());
      SECHEX_TRY(auto existing, txn.get(kOAuthStatesCf, hash));
      if (!existing) return boost::outcome_v2::success();
      auto row = decode_state(*existing);
      if (!row) return boost::outcome_v2::success();
      row->used = true;
      txn.put(kOAuthStatesCf, hash, state_value(*row));
      return boost::outcome_v2::success();
    }
    case schema::Event::OAuthAccountLinked: {
      const auto* e = env.event_as_OAuthAccountLinked();
      const auto hash = view_of(e->link_hash());
      const auto provider = e->provider() ? e->provider()->string_view() : std::string_view();
      if (hash.empty() || provider.empty() || env.subject() == nullptr) {
        return boost::outcome_v2::success();
      }
      const auto user = env.subject()->string_view();
      txn.put(kOAuthLinksCf, hash, user);
      auto value = codec::be64(env.time_micros());
      value.append(hash);
      txn.put(kOAuthUserLinksCf, user_link_key(user, provider), value);
      return boost::outcome_v2::success();
    }
    case schema::Event::OAuthAccountUnlinked: {
      const auto* e = env.event_as_OAuthAccountUnlinked();
      const auto provider = e->provider() ? e->provider()->string_view() : std::string_view();
      if (env.subject() == nullptr) return boost::outcome_v2::success();
      txn.del(kOAuthLinksCf, view_of(e->link_hash()));
      txn.del(kOAuthUserLinksCf, user_link_key(env.subject()->string_view(), provider));
      return boost::outcome_v2::success();
    }
    case schema::Event::SubjectErased: {
      if (env.subject() == nullptr) return boost::outcome_v2::success();
      std::string prefix(env.subject()->string_view());
      prefix.push_back('\0');
      SECHEX_TRY(auto rows, txn.scan(kOAuthUserLinksCf, prefix));
      for (const auto& [key, value] : rows) {
        if (value.size() >= kLinkValueMin)
          txn.del(kOAuthLinksCf, std::string_view(value).substr(8));
        txn.del(kOAuthUserLinksCf, key);
      }
      return boost::outcome_v2::success();
    }
    default:
      return boost::outcome_v2::success();
  }
}

}  // namespace sechex::projections
