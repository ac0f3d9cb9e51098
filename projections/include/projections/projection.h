// The projection interface (implemented in issue 3): a projection owns a set of RocksDB column
// families and changes them only in apply(), which the runner calls with the event and its
// log position inside the WriteBatch that also stores the position. The same code path serves
// inline apply, catch-up after restart, full rebuild and point-in-time replay.
#pragma once

#include <string>
#include <vector>

#include "ledger/record.h"

namespace sechex::projections {

// Version of the projection state layout; a mismatch on open triggers a rebuild from the log.
inline constexpr int kProjectionFormat = 1;

}  // namespace sechex::projections
