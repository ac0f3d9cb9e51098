// StrongId<Tag>: an opaque string id of one kind. It is built from a string only explicitly and
// never converts back implicitly, so ids of two kinds (a user and a session, projections/ids.h)
// cannot be passed in each other's place: a swap is a compile error rather than a session
// looked up under a user's id.
//
// Thread-safety: a value.
#pragma once

#include <compare>
#include <string>
#include <utility>

namespace sechex::ledger {

template <typename Tag>
class StrongId {
 public:
  StrongId() = default;
  explicit StrongId(std::string value) : value_(std::move(value)) {}

  const std::string& str() const { return value_; }
  bool empty() const { return value_.empty(); }

  friend bool operator==(const StrongId&, const StrongId&) = default;
  friend auto operator<=>(const StrongId&, const StrongId&) = default;

 private:
  std::string value_;
};

}  // namespace sechex::ledger
