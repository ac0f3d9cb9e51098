// OAuth sign-in projection (issue 17, spec 003 US6): the states of sign-ins begun, and the
// provider identities linked to accounts.
//
//   oauth_states      state hash -> be64(expires_at micros) || u8 used || u8 consent
//                     || u8 remember_me || provider
//   oauth_links       link hash (keyed hash of provider and provider subject) -> user id
//   oauth_user_links  user id || 0x00 || provider -> be64(linked_at micros) || link hash
//
// A state is written by OAuthLoginStarted and marked used by OAuthStateUsed (the callback's
// consumption, decided on the state's partition, so two callbacks with one state cannot both
// use it). States expire kOAuthStateKeptMicros after their expiry (a used or expired state is
// refused anyway; the margin keeps "used" answered as such for a while). Links follow
// OAuthAccountLinked / OAuthAccountUnlinked; SubjectErased drops every link of the user, so an
// erased account cannot be signed into again through its provider identity.
//
// Readers outside projections/ use the typed accessors below.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "projections/projection.h"

namespace sechex::projections {

class ProjectionStore;

inline constexpr const char* kOAuthStatesCf = "oauth_states";
inline constexpr const char* kOAuthLinksCf = "oauth_links";
inline constexpr const char* kOAuthUserLinksCf = "oauth_user_links";
inline constexpr std::int64_t kOAuthStateKeptMicros = 24LL * 3600 * 1'000'000;

struct OAuthStateRow {
  std::string provider;
  TimePoint expires_at{};
  bool used = false;
  bool consent = false;
  bool remember_me = false;
};
Result<std::optional<OAuthStateRow>> oauth_state(const ProjectionStore& store,
                                                 std::string_view state_hash);

// The account a provider identity is linked to.
Result<std::optional<std::string>> oauth_link(const ProjectionStore& store,
                                              std::string_view link_hash);

struct OAuthLinkRow {
  std::string provider;
  std::string link_hash;
  TimePoint linked_at{};
};
// The user's links, by provider.
Result<std::vector<OAuthLinkRow>> oauth_links_of(const ProjectionStore& store,
                                                 std::string_view user);

class OAuthProjection final : public Projection {
 public:
  std::string name() const override { return "oauth"; }
  std::vector<std::string> column_families() const override {
    return {kOAuthStatesCf, kOAuthLinksCf, kOAuthUserLinksCf};
  }
  Result<void> apply(const schema::Envelope& env, const ledger::Position& pos, Txn& txn) override;
  std::vector<std::string> expiring_column_families() const override { return {kOAuthStatesCf}; }
  bool expired(std::string_view cf, std::string_view key, std::string_view value,
               std::int64_t now_micros) const override;
};

}  // namespace sechex::projections
