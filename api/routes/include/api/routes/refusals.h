// The one place an identity command's refusal (api/identity/commands.h) becomes API.md's status,
// code and details; the handlers of every identity route answer through it. Messages are
// English; i18n.h localises them by code.
//
// Thread-safety: a pure function.
#pragma once

#include "api/http/api_error.h"
#include "api/identity/commands.h"

namespace sechex::api {

ApiError to_api_error(const identity::Refusal& refusal);

}  // namespace sechex::api
