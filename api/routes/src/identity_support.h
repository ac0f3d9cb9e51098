// What the identity route files share (internal to api/routes): body parsing with API.md's
// input rules, the caller of a command as the request shows it, the one mapping of a command's
// refusal to an API error (refusals.cc), and the 202 answer given before the work it promises.
//
// Thread-safety: functions of one request on one thread; accept_then's work runs later on the
// deferred work queue.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "api/auth/csrf.h"
#include "api/http/api_error.h"
#include "api/http/i18n.h"
#include "api/json/json_input.h"
#include "api/routes/identity_api.h"
#include "api/routes/refusals.h"
#include "ledger/time_format.h"
#include "projections/rate_limits.h"

namespace sechex::api::identity_support {

using api::to_api_error;
using json = nlohmann::json;
using identity::Refused;
using projections::SessionId;
using projections::UserId;

inline constexpr JsonLimits kBodyLimits{2, 4096, 100};

// The JSON object of a request body, or the 4xx to send instead.
ApiResult<json> read_body(const Request& req, const JsonLimits& limits = kBodyLimits);

// A string field, or nullopt when absent or not a string.
std::optional<std::string> string_field(const json& body, const char* name);
// A boolean field that is true (absent or anything else is false).
bool true_field(const json& body, const char* name);
ApiError missing(const char* field);
// A required string field, or the 400 missing_field.
ApiResult<std::string> required_string(const json& body, const char* name);

ApiError retry_later(unsigned status, std::string_view code, std::string_view message,
                     std::int64_t seconds, json details = json::object());

// A command's outcome as a handler unwraps it: SECHEX_TRY(auto v, answered(command(...))).
template <typename T>
ApiResult<T> answered(identity::Outcome<T>&& outcome) {
  if (!outcome) return boost::outcome_v2::failure(to_api_error(outcome.error()));
  if constexpr (std::is_void_v<T>) {
    return pass();
  } else {
    return std::move(outcome).value();
  }
}

// The caller of a command: request id, client IP and its keyed hash (client_key(), what
// per-client limits count by), user agent, mail language (negotiated like the error messages,
// q-values and all: `en, zh;q=0` gets English mail) and the time it is decided at.
identity::Caller caller_of(const IdentityDeps& deps, const IdentityConfig& config,
                           const Request& req);

// The token pair of a session as JSON, and as __Host- cookies for browsers (csrf.h); API clients
// ignore the cookies.
Response token_pair(const identity::SignedIn& in, const identity::Limits& limits,
                    unsigned status = 200);

json policy_json(const identity::PasswordPolicy& p);

// The caller's profile as GET /v1/me and the GDPR export show it.
json profile_json(const UserId& user, const identity::Profile& p);

// The answer of the routes that must answer alike whatever the address (verification resend,
// password forgot, OTP request), given before their work so that its time tells nothing either
// (issue 12: mailing a known address took twice as long as ignoring an unknown one, which gave
// it away). With `p` (the partition of the address's subject), a node that does not own it
// answers 421 naming the owner, known and unknown addresses alike (Kafka mode). Otherwise the
// answer is 202 and `work()` is queued on deps.deferred once that answer has been written
// (Response::after_write: the work never competes with its own answer for the CPU). When the
// queue is full the request waits up to a second for a place (the handler runs on the blocking
// pool; this keeps the backpressure a client saw when the work was done inline), then answers
// 503 `overloaded`, whatever the address.
//
// `key` orders the work: work of one key runs in the order its requests came (one address, or
// one user), so a client's newest code or link is the one its newest mail carries.
Response accept_then(IdentityDeps& deps, std::optional<ledger::Partition> p, std::string key,
                     std::function<void()> work);

// accept_then for a route that names an email address; `work(user)` gets the account it names,
// if any. When this node owns every partition (embedded, or one Kafka node) even the lookup of
// the address runs after the answer, so the answer does the same work whatever the address.
// Otherwise the lookup comes first, since the partition it names decides between 202 and 421:
// a RocksDB hit against a miss, microseconds apart (README "Known limits").
Response accept_for_address(IdentityDeps& deps, const std::string& email,
                            std::function<void(const std::optional<UserId>&)> work);

// The 429 for a client past `limiter` on a route that must answer alike for every address
// (request_limiter.h); success to go on. The first refusal of a burst is recorded
// (IdentityCommands::record_client_limited), best effort: a node that does not own that
// partition, or a failed append, still refuses.
ApiResult<void> admit_client(IdentityDeps& deps, const identity::Caller& caller,
                             RequestLimiter& limiter, const char* scope);

// POST {email} for a verification or reset link (resend, forgot): 400 without an email, 429 for
// a client past `limiter`, else 202 whatever the address, and the link is mailed after the
// answer when the address has an account that qualifies (IdentityCommands::mail_link).
Response request_link(IdentityDeps& deps, const IdentityConfig& config, const Request& req,
                      RequestLimiter& limiter, identity::Link link);

}  // namespace sechex::api::identity_support
