// StrongId<Tag>: an opaque string id of one kind. It is built from a string only explicitly and
// never converts back implicitly, so ids of two kinds (a user and a session, projections/ids.h)
// cannot be passed in each other's place: a swap is a compile error rather than a session
// looked up under a user's id.
//
// Thread-safety: a value.
#pragma once

#include <compare>
#include <string>
#include <string_view>
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

// StrongText<Tag>: borrowed text of one kind, such as a password or a code a caller presented.
// Like StrongId it is built only explicitly and never converts back, so a password cannot be
// passed where an address, a code or the new password is expected. It does not own the text:
// the caller keeps it alive for the call.
template <typename Tag>
class StrongText {
 public:
  explicit StrongText(std::string_view text) : text_(text) {}

  std::string_view view() const { return text_; }

 private:
  std::string_view text_;
};

}  // namespace sechex::ledger
