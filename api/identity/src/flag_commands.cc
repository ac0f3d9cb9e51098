// Admin-set user attributes and feature flags (000 FR-08; flags.h has the rules).
#include "api/identity/commands.h"
#include "command_context.h"

namespace sechex::api::identity {

using namespace detail;

Outcome<Attributes> IdentityCommands::set_attributes(const Caller& c, const UserId& user,
                                                     const Attributes& attributes,
                                                     const UserId& admin) {
  Context x(d_, config_, c);
  const std::string& id = user.str();
  bool found = false;
  SECHEX_TRYV(x.run(x.partition_of(id), [&]() -> Result<Events> {
    SECHEX_TRY(const auto row, projections::user_row(x.store(), id));
    found = row && row->status != "erased";
    if (!found) return Events{};
    SECHEX_TRY(auto set,
               x.event(id, Actor::admin(admin.str()),
                       [&](ledger::EventBuilder& b) -> Result<ledger::Bytes> {
                         SECHEX_TRY(auto sealed,
                                    b.seal("attributes", attributes_json(attributes).dump()));
                         return b.finish(schema::CreateUserAttributesSet(b.fbb(), sealed));
                       }));
    Events out;
    out.push_back(std::move(set));
    return out;
  }));
  if (!found) return Refused::not_found;
  return attributes;
}

Outcome<Attributes> IdentityCommands::attributes(const projections::UserRow& user) const {
  if (user.attributes.empty()) return Attributes{};
  auto plain =
      d_.keys.open_field(user.id, user.attributes.event_id, "attributes", user.attributes.sealed);
  if (!plain) return Refused::internal;
  const auto parsed = parse_attributes(nlohmann::json::parse(
      std::string_view(reinterpret_cast<const char*>(plain.value().data()), plain.value().size()),
      nullptr, false));
  if (const auto* a = std::get_if<Attributes>(&parsed)) return *a;
  return Refused::internal;  // we sealed what parse_attributes accepts
}

Outcome<IdentityCommands::Flag> IdentityCommands::flag(std::string_view name) const {
  if (!known_flag(name)) {
    Refusal r(Refused::invalid_flag);
    r.reason = std::string(name);
    return r;
  }
  auto stored = projections::flag_rules_json(d_.commands.projections(), name);
  if (!stored) return Refused::unavailable;
  if (!stored.value()) return Flag{};
  const auto& text = *stored.value();
  {
    std::lock_guard lock(flags_mu_);
    const auto it = parsed_flags_.find(name);
    if (it != parsed_flags_.end() && it->second.stored == text) return Flag{it->second.rules, true};
  }
  const auto parsed = parse_flag(nlohmann::json::parse(text, nullptr, false));
  const auto* rules = std::get_if<FlagRules>(&parsed);
  if (rules == nullptr) return Refused::internal;  // we recorded what parse_flag accepts
  std::lock_guard lock(flags_mu_);
  parsed_flags_.insert_or_assign(std::string(name), ParsedFlag{text, *rules});
  return Flag{*rules, true};
}

Outcome<IdentityCommands::Flag> IdentityCommands::set_flag(const Caller& c, std::string_view name,
                                                           const FlagRules& rules,
                                                           const UserId& admin) {
  if (!known_flag(name)) {
    Refusal r(Refused::invalid_flag);
    r.reason = std::string(name);
    return r;
  }
  Context x(d_, config_, c);
  SECHEX_TRYV(x.run(x.partition_of(kPolicySubject), [&]() -> Result<Events> {
    SECHEX_TRY(
        auto changed,
        x.event(kPolicySubject, Actor::admin(admin.str()), [&](ledger::EventBuilder& b) {
          auto& f = b.fbb();
          return b.finish(schema::CreateFlagChanged(f, f.CreateString(std::string(name)),
                                                    f.CreateString(flag_json(rules).dump())));
        }));
    Events out;
    out.push_back(std::move(changed));
    return out;
  }));
  return Flag{rules, true};
}

Outcome<bool> IdentityCommands::flag_on_for(std::string_view name,
                                            const projections::UserRow& user) const {
  SECHEX_TRY(const auto f, flag(name));
  Attributes attrs;
  if (f.rules.reads_attributes()) {
    SECHEX_TRY(attrs, attributes(user));
  }
  return flag_matches(f.rules, name, user.id, attrs);
}

}  // namespace sechex::api::identity
