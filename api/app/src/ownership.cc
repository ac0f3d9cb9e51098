#include "api/app/ownership.h"

#include <algorithm>
#include <charconv>

namespace sechex::api {
namespace {

constexpr std::size_t kMaxUrl = 2048;

class OwnershipCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sechex.ownership"; }
  std::string message(int code) const override {
    switch (static_cast<OwnershipErrc>(code)) {
      case OwnershipErrc::ok:
        return "ok";
      case OwnershipErrc::bad_syntax:
        return "partition list or owner does not parse";
      case OwnershipErrc::out_of_range:
        return "partition beyond the log's partition count";
      case OwnershipErrc::conflict:
        return "partition both owned and assigned an owner, or assigned two owners";
      case OwnershipErrc::not_owner:
        return "this node does not own the partition";
    }
    return "unknown ownership error";
  }
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void set(std::string* why, std::string text) {
  if (why != nullptr) *why = std::move(text);
}

std::optional<std::uint32_t> parse_number(std::string_view s) {
  // from_chars alone would take a leading '-' and stop at the first non-digit.
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::uint32_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return n;
}

Result<PartitionRange> parse_item(std::string_view item, std::string* why) {
  const auto dash = item.find('-');
  const auto first_text = trim(item.substr(0, dash));
  const auto last_text = dash == std::string_view::npos ? first_text : trim(item.substr(dash + 1));
  const auto first = parse_number(first_text);
  const auto last = parse_number(last_text);
  if (!first || !last) {
    set(why, "'" + std::string(item) + "' is not a partition number or range N-M");
    return OwnershipErrc::bad_syntax;
  }
  if (*first > *last) {
    set(why, "range '" + std::string(item) + "' ends before it starts");
    return OwnershipErrc::bad_syntax;
  }
  return PartitionRange{*first, *last};
}

// The URL goes to clients in error details: it must be an absolute http(s) URL with a host and
// nothing that could split a header or a log line, and no credentials.
bool valid_url(std::string_view url, std::string* why) {
  std::string_view rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
  } else {
    set(why, "owner URL '" + std::string(url) + "' must start with http:// or https://");
    return false;
  }
  if (url.size() > kMaxUrl) {
    set(why, "owner URL is longer than 2048 bytes");
    return false;
  }
  if (!std::all_of(url.begin(), url.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u < 0x7f;
      })) {
    set(why, "owner URL '" + std::string(url) + "' contains blanks or control characters");
    return false;
  }
  const auto authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.empty() || authority.front() == ':') {
    set(why, "owner URL '" + std::string(url) + "' has no host");
    return false;
  }
  if (authority.find('@') != std::string_view::npos) {
    set(why, "owner URL must not carry credentials (it is shown to clients)");
    return false;
  }
  return true;
}

std::string list_text(const PartitionList& l) {
  if (l.all) return "all";
  if (l.ranges.empty()) return "none";
  std::string out;
  for (const auto& r : l.ranges) {
    if (!out.empty()) out += ",";
    out += std::to_string(r.first);
    if (r.last != r.first) out += "-" + std::to_string(r.last);
  }
  return out;
}

}  // namespace

const std::error_category& ownership_category() noexcept {
  static const OwnershipCategory category;
  return category;
}

Result<PartitionList> parse_partition_list(std::string_view text, std::string* why) {
  text = trim(text);
  PartitionList out;
  if (text == "all") {
    out.all = true;
    return out;
  }
  if (text == "none") return out;
  if (text.empty()) {
    set(why, "empty partition list (write \"none\" for no partitions)");
    return OwnershipErrc::bad_syntax;
  }
  while (true) {
    const auto comma = text.find(',');
    const auto item = trim(text.substr(0, comma));
    if (item.empty()) {
      set(why, "empty item in the partition list");
      return OwnershipErrc::bad_syntax;
    }
    SECHEX_TRY(auto range, parse_item(item, why));
    out.ranges.push_back(range);
    if (comma == std::string_view::npos) break;
    text = text.substr(comma + 1);
  }
  return out;
}

Result<OwnerAssignment> parse_partition_owner(std::string_view text, std::string* why) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos) {
    set(why, "expected LIST=URL, e.g. 4-7=http://10.0.0.2:8080");
    return OwnershipErrc::bad_syntax;
  }
  OwnerAssignment out;
  SECHEX_TRY(out.partitions, parse_partition_list(text.substr(0, eq), why));
  const auto url = trim(text.substr(eq + 1));
  if (!valid_url(url, why)) return OwnershipErrc::bad_syntax;
  out.url = std::string(url);
  return out;
}

Result<OwnershipFlags> OwnershipFlags::parse(std::optional<std::string_view> owns,
                                             std::span<const std::string> owners,
                                             std::string* why) {
  OwnershipFlags flags;
  std::string detail;
  if (owns) {
    auto list = parse_partition_list(*owns, &detail);
    if (!list) {
      set(why, "--owns-partitions '" + std::string(*owns) + "': " + detail);
      return list.error();
    }
    flags.owned = std::move(list).value();
  }
  for (const auto& text : owners) {
    auto owner = parse_partition_owner(text, &detail);
    if (!owner) {
      set(why, "--partition-owner '" + text + "': " + detail);
      return owner.error();
    }
    flags.owners.push_back(std::move(owner).value());
  }
  return flags;
}

PartitionOwnership::PartitionOwnership(std::uint32_t partitions)
    : owned_(partitions, false), owner_index_(partitions, -1) {}

PartitionOwnership PartitionOwnership::all(std::uint32_t partitions) {
  PartitionOwnership o(partitions);
  o.owned_.assign(partitions, true);
  return o;
}

Result<PartitionOwnership> PartitionOwnership::resolve(std::uint32_t partitions,
                                                       const OwnershipFlags& flags,
                                                       std::string* why) {
  const auto within = [&](const PartitionList& l, const std::string& flag) -> Result<void> {
    for (const auto& r : l.ranges) {
      if (r.last >= partitions) {
        set(why, flag + " names partition " + std::to_string(r.last) + ", but the log has " +
                     std::to_string(partitions) + " partitions (0-" +
                     std::to_string(partitions - 1) + ")");
        return OwnershipErrc::out_of_range;
      }
    }
    return boost::outcome_v2::success();
  };
  PartitionOwnership o(partitions);
  SECHEX_TRYV(within(flags.owned, "--owns-partitions"));
  if (flags.owned.all) o.owned_.assign(partitions, true);
  for (const auto& r : flags.owned.ranges) {
    for (std::uint32_t p = r.first; p <= r.last; ++p) o.owned_[p] = true;
  }
  for (const auto& a : flags.owners) {
    SECHEX_TRYV(within(a.partitions, "--partition-owner " + list_text(a.partitions) + "=" + a.url));
    const auto found = std::find(o.urls_.begin(), o.urls_.end(), a.url);
    const auto idx = static_cast<std::int32_t>(found - o.urls_.begin());
    if (found == o.urls_.end()) o.urls_.push_back(a.url);
    std::vector<PartitionRange> ranges = a.partitions.ranges;
    if (a.partitions.all && partitions > 0) ranges = {{0, partitions - 1}};
    for (const auto& r : ranges) {
      for (std::uint32_t p = r.first; p <= r.last; ++p) {
        if (o.owned_[p]) {
          set(why, "partition " + std::to_string(p) + " is owned by this node (--owns-partitions " +
                       list_text(flags.owned) + (flags.owned.all ? ", the default" : "") +
                       ") and also assigned to " + a.url + " by --partition-owner" +
                       (flags.owned.all ? "; pass --owns-partitions with the partitions this "
                                          "node owns"
                                        : ""));
          return OwnershipErrc::conflict;
        }
        const auto previous = o.owner_index_[p];
        if (previous >= 0 && previous != idx) {
          set(why, "partition " + std::to_string(p) + " is assigned to both " +
                       o.urls_[static_cast<std::size_t>(previous)] + " and " + a.url +
                       " by --partition-owner");
          return OwnershipErrc::conflict;
        }
        o.owner_index_[p] = idx;
      }
    }
  }
  return o;
}

bool PartitionOwnership::owns(ledger::Partition p) const {
  return p.value < owned_.size() && owned_[p.value];
}

bool PartitionOwnership::owns_all() const {
  return std::all_of(owned_.begin(), owned_.end(), [](bool b) { return b; });
}

std::optional<std::string> PartitionOwnership::owner_of(ledger::Partition p) const {
  if (p.value >= owner_index_.size() || owner_index_[p.value] < 0) return std::nullopt;
  return urls_[static_cast<std::size_t>(owner_index_[p.value])];
}

std::string PartitionOwnership::describe() const {
  PartitionList l;
  l.all = owns_all() && !owned_.empty();
  if (!l.all) {
    for (std::uint32_t p = 0; p < owned_.size(); ++p) {
      if (!owned_[p]) continue;
      if (!l.ranges.empty() && l.ranges.back().last + 1 == p) {
        l.ranges.back().last = p;
      } else {
        l.ranges.push_back({p, p});
      }
    }
  }
  return list_text(l);
}

}  // namespace sechex::api
