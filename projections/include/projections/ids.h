// The identity read models' ids (ledger/strong_id.h): a user (an account's subject) and one of
// its sessions. Functions that take both take them typed, so they cannot be swapped.
//
// Thread-safety: values.
#pragma once

#include "ledger/strong_id.h"

namespace sechex::projections {

using UserId = ledger::StrongId<struct UserIdTag>;
using SessionId = ledger::StrongId<struct SessionIdTag>;

}  // namespace sechex::projections
