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

OwnershipError bad_syntax(std::string why) { return {OwnershipErrc::bad_syntax, std::move(why)}; }

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

OwnershipResult<PartitionRange> parse_item(std::string_view item) {
  const auto dash = item.find('-');
  const auto first_text = trim(item.substr(0, dash));
  const auto last_text = dash == std::string_view::npos ? first_text : trim(item.substr(dash + 1));
  const auto first = parse_number(first_text);
  const auto last = parse_number(last_text);
  if (!first || !last) {
    return bad_syntax("'" + std::string(item) + "' is not a partition number or range N-M");
  }
  if (*first > *last) {
    return bad_syntax("range '" + std::string(item) + "' ends before it starts");
  }
  return PartitionRange{*first, *last};
}

// The URL goes to clients in error details: it must be an absolute http(s) URL with a host and
// nothing that could split a header or a log line, and no credentials.
// What is wrong with `url`, or nullopt.
std::optional<std::string> url_problem(std::string_view url) {
  std::string_view rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
  } else {
    return "owner URL '" + std::string(url) + "' must start with http:// or https://";
  }
  if (url.size() > kMaxUrl) {
    return "owner URL is longer than 2048 bytes";
  }
  if (!std::all_of(url.begin(), url.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u < 0x7f;
      })) {
    return "owner URL '" + std::string(url) + "' contains blanks or control characters";
  }
  const auto authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.empty() || authority.front() == ':') {
    return "owner URL '" + std::string(url) + "' has no host";
  }
  if (authority.find('@') != std::string_view::npos) {
    return "owner URL must not carry credentials (it is shown to clients)";
  }
  return std::nullopt;
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

OwnershipResult<PartitionList> parse_partition_list(std::string_view text) {
  text = trim(text);
  PartitionList out;
  if (text == "all") {
    out.all = true;
    return out;
  }
  if (text == "none") return out;
  if (text.empty()) {
    return bad_syntax("empty partition list (write \"none\" for no partitions)");
  }
  while (true) {
    const auto comma = text.find(',');
    const auto item = trim(text.substr(0, comma));
    if (item.empty()) {
      return bad_syntax("empty item in the partition list");
    }
    SECHEX_TRY(auto range, parse_item(item));
    out.ranges.push_back(range);
    if (comma == std::string_view::npos) break;
    text = text.substr(comma + 1);
  }
  return out;
}

OwnershipResult<OwnerAssignment> parse_partition_owner(std::string_view text) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos) {
    return bad_syntax("expected LIST=URL, e.g. 4-7=http://10.0.0.2:8080");
  }
  OwnerAssignment out;
  SECHEX_TRY(out.partitions, parse_partition_list(text.substr(0, eq)));
  const auto url = trim(text.substr(eq + 1));
  if (auto problem = url_problem(url)) return bad_syntax(std::move(*problem));
  out.url = std::string(url);
  return out;
}

OwnershipResult<OwnershipFlags> OwnershipFlags::parse(std::optional<std::string_view> owns,
                                                      std::span<const std::string> owners) {
  OwnershipFlags flags;
  if (owns) {
    auto list = parse_partition_list(*owns);
    if (!list)
      return bad_syntax("--owns-partitions '" + std::string(*owns) + "': " + list.error().why);
    flags.owned = std::move(list).value();
  }
  for (const auto& text : owners) {
    auto owner = parse_partition_owner(text);
    if (!owner) return bad_syntax("--partition-owner '" + text + "': " + owner.error().why);
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

OwnershipResult<PartitionOwnership> PartitionOwnership::resolve(std::uint32_t partitions,
                                                                const OwnershipFlags& flags) {
  const auto within = [&](const PartitionList& l,
                          const std::string& flag) -> OwnershipResult<void> {
    for (const auto& r : l.ranges) {
      if (r.last >= partitions) {
        return OwnershipError{OwnershipErrc::out_of_range,
                              flag + " names partition " + std::to_string(r.last) +
                                  ", but the log has " + std::to_string(partitions) +
                                  " partitions (0-" + std::to_string(partitions - 1) + ")"};
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
          return OwnershipError{
              OwnershipErrc::conflict,
              "partition " + std::to_string(p) + " is owned by this node (--owns-partitions " +
                  list_text(flags.owned) + (flags.owned.all ? ", the default" : "") +
                  ") and also assigned to " + a.url + " by --partition-owner" +
                  (flags.owned.all ? "; pass --owns-partitions with the partitions this "
                                     "node owns"
                                   : "")};
        }
        const auto previous = o.owner_index_[p];
        if (previous >= 0 && previous != idx) {
          return OwnershipError{OwnershipErrc::conflict,
                                "partition " + std::to_string(p) + " is assigned to both " +
                                    o.urls_[static_cast<std::size_t>(previous)] + " and " + a.url +
                                    " by --partition-owner"};
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
