#include "api/routes/ledger_api.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <map>
#include <unordered_set>

#include "api/http/query.h"
#include "api/json/json_input.h"
#include "ledger/checkpoint.h"
#include "ledger/event_builder.h"
#include "ledger/export.h"
#include "ledger/proof.h"
#include "ledger/time_format.h"
#include "ledger/utf8.h"
#include "projections/audit.h"
#include "schemas/json_codec.h"

namespace sechex::api {
namespace {

using json = nlohmann::json;

constexpr std::size_t kDefaultLimit = 100;
constexpr std::size_t kMaxLimit = 1000;
constexpr std::size_t kExportPage = 500;

ApiError invalid_event(std::size_t index, std::string_view field, std::string_view message) {
  return invalid_request("invalid_event", message, {{"index", index}, {"field", field}});
}

ApiError invalid_parameter(std::string_view name, std::string_view message) {
  return invalid_request("invalid_parameter", message, {{"parameter", name}});
}

Result<ledger::Record> read_one(const ledger::Log& log, const ledger::Position& pos) {
  SECHEX_TRY(auto records,
             log.read_range(pos.partition, pos.seq, ledger::Seq{pos.seq.value + 1}, 1));
  if (records.empty()) return ledger::Errc::not_found;
  return std::move(records.front());
}

// record_to_json's names are those of `ledgerctl export`; the HTTP API spells fields in
// camelCase.
json api_entry(json rendered) {
  static const std::pair<const char*, const char*> kRenames[] = {{"request_id", "requestId"},
                                                                 {"user_agent", "userAgent"},
                                                                 {"event_id", "eventId"},
                                                                 {"invalid_utf8", "invalidUtf8"}};
  for (const auto& [from, to] : kRenames) {
    if (rendered.contains(from)) {
      rendered[to] = std::move(rendered[from]);
      rendered.erase(from);
    }
  }
  return rendered;
}

struct AuditFilter {
  projections::AuditScan scan;     // which subject, from when, after which cursor
  std::vector<std::string> types;  // any of these; empty: every type
  std::int64_t to = INT64_MAX;
  std::size_t limit = kDefaultLimit;  // a page's entries (paged queries only)
};

// Builds the filter from the query, or the 400 to answer. A `paged` query (the audit API) takes
// limit and cursor; the export takes format instead.
ApiResult<AuditFilter> audit_filter(const Request& req, bool paged) {
  const auto q = parse_query(req.query);
  if (!q) return invalid_parameter("query", "malformed or repeated query parameter");
  AuditFilter f;
  for (const auto& [k, v] : *q) {
    if (k == "userId") {
      if (v.empty() || v.size() > kMaxSubject) return invalid_parameter(k, "bad userId");
      f.scan.subject = v;
    } else if (k == "type") {
      const auto& names = schemas::event_type_names();
      if (std::find(names.begin(), names.end(), v) == names.end()) {
        return invalid_parameter(k, "unknown event type");
      }
      f.types = {v};
    } else if (k == "from" || k == "to") {
      const auto t = parse_rfc3339(v);
      if (!t) return invalid_parameter(k, "expected an RFC 3339 time");
      (k == "from" ? f.scan.from_micros : f.to) = *t;
    } else if (k == "limit" && paged) {
      std::size_t n = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size() || n < 1 || n > kMaxLimit) {
        return invalid_parameter(k, "limit must be 1..1000");
      }
      f.limit = n;
    } else if (k == "cursor" && paged) {
      ledger::Bytes raw;
      if (!jose::base64url_decode(v, raw) || raw.empty()) {
        return invalid_parameter(k, "invalid cursor");
      }
      f.scan.after.assign(raw.begin(), raw.end());  // resume after the last entry examined
    } else if (k == "format" && !paged) {
      continue;  // the export's own parameter
    } else {
      return invalid_parameter(k, "unknown parameter");
    }
  }
  if (f.scan.from_micros >= f.to) return invalid_parameter("from", "from must be before to");
  return f;
}

struct AuditPage {
  std::vector<json> entries;            // as record_to_json renders them (the CSV columns' names)
  std::optional<std::string> last_key;  // set when more may follow
};

// Examines up to `budget` index entries of f.scan, returning at most `limit` matches. The index
// is walked in place: a page costs what it returns plus what the type filter skips.
Result<AuditPage> audit_page(const projections::ProjectionStore& store, const ledger::Log& log,
                             ledger::KeyStore* keys, const AuditFilter& f, std::size_t limit,
                             std::size_t budget) {
  AuditPage page;
  std::vector<ledger::Position> matches;
  std::size_t examined = 0;
  bool more = false;
  SECHEX_TRYV(
      projections::for_each_audit_entry(store, f.scan, [&](const projections::AuditEntry& entry) {
        if (examined == budget || matches.size() == limit) {
          more = true;  // an entry exists beyond what this page looked at
          return false;
        }
        if (entry.time_micros >= f.to) return false;  // time-ordered: nothing further matches
        ++examined;
        page.last_key = std::string(entry.cursor);
        if (f.types.empty() ||
            std::find(f.types.begin(), f.types.end(), entry.type) != f.types.end()) {
          matches.push_back(entry.position);
        }
        return true;
      }));
  if (!more) page.last_key.reset();
  for (const auto& position : matches) {
    auto record = read_one(log, position);
    if (!record) {
      // Retention removes an entry before its payload, so only a page racing a retention step
      // meets one; the answer's "pruned" list says where history ends.
      if (record.error() == ledger::Errc::not_found || record.error() == ledger::Errc::pruned) {
        continue;
      }
      return record.error();
    }
    // A record that cannot be rendered is marked in its entry, not fatal to the page.
    page.entries.push_back(ledger::render_record(record.value(), keys));
  }
  return page;
}

ApiError internal(std::string_view what) { return {500, "internal_error", std::string(what)}; }

json owner_json(const PartitionOwnership& ownership, ledger::Partition p) {
  auto url = ownership.owner_of(p);
  return url ? json(std::move(*url)) : json(nullptr);
}

// 421 for the events of `partitions` (event index -> partition) this node does not own;
// success when it owns them all.
ApiResult<void> check_owned(const PartitionOwnership& ownership,
                            const std::vector<ledger::Partition>& partitions) {
  json refused = json::array();
  for (std::size_t i = 0; i < partitions.size(); ++i) {
    if (ownership.owns(partitions[i])) continue;
    refused.push_back(json{{"index", i},
                           {"partition", partitions[i].value},
                           {"owner", owner_json(ownership, partitions[i])}});
  }
  if (refused.empty()) return pass();
  const auto& first = refused.front();
  return ApiError{
      421,
      "misdirected",
      "this node does not own the partition of these events; send them to the partition's owner",
      {{"partition", first["partition"]}, {"owner", first["owner"]}, {"events", refused}}};
}

}  // namespace

ApiResult<std::vector<IngestEvent>> parse_ingest_batch(std::string_view body) {
  JsonLimits limits;
  limits.max_depth = kIngestDepth;
  auto parsed = parse_json_input(body, limits);
  if (!parsed) return invalid_request(parsed.error().reason, parsed.error().detail);
  const auto& root = parsed.value();
  if (!root.is_object() || root.size() != 1 || !root.contains("events")) {
    return invalid_request("invalid_event", R"(expected {"events": [...]})", {{"field", "events"}});
  }
  const auto& events = root.at("events");
  if (!events.is_array() || events.empty()) {
    return invalid_request("invalid_event", "events must be a non-empty array",
                           {{"field", "events"}});
  }
  std::vector<IngestEvent> out;
  out.reserve(events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    auto checked = check_event(events[i]);
    if (!checked) return invalid_event(i, checked.error().field, checked.error().message);
    out.push_back(std::move(checked).value());
  }
  return out;
}

LedgerApi::LedgerApi(CommandPath& commands, ledger::KeyStore& keys, const Authenticator& auth,
                     const jose::KeyRing& ring, const Clock& clock, LedgerApiMetrics metrics)
    : commands_(commands),
      keys_(keys),
      auth_(auth),
      ring_(ring),
      clock_(clock),
      metrics_(std::move(metrics)) {}

void LedgerApi::add_routes(RouteRegistry& routes) {
  using W = const Principal&;
  routes.guarded(
      "POST", "/v1/events", [this](const Request& r, W w) { return ingest(r, w); }, Exec::pool);
  routes.guarded(
      "GET", "/v1/admin/audit", [this](const Request& r, W w) { return audit(r, w); }, Exec::read);
  routes.guarded(
      "GET", "/v1/admin/audit/export", [this](const Request& r, W w) { return audit_export(r, w); },
      Exec::read);
  routes.guarded(
      "GET", "/v1/admin/secure/audit", [this](const Request& r, W w) { return secure_audit(r, w); },
      Exec::read);
  routes.guarded(
      "GET", "/v1/admin/ledger/checkpoints",
      [this](const Request& r, W w) { return checkpoints(r, w); }, Exec::read);
  routes.guarded(
      "GET", "/v1/admin/ledger/proof", [this](const Request& r, W w) { return proof(r, w); },
      Exec::read);
  routes.guarded(
      "GET", "/v1/admin/ledger/consistency",
      [this](const Request& r, W w) { return consistency(r, w); }, Exec::read);
  routes.open("GET", "/.well-known/jwks.json", [this](const Request& r) { return jwks(r); });
}

Response LedgerApi::ingest(const Request& req, const Principal& principal) {
  SECHEX_TRYV(require_json(req));
  SECHEX_TRY(const auto events, parse_ingest_batch(req.body));
  std::vector<ledger::Partition> partitions;
  partitions.reserve(events.size());
  for (const auto& e : events) partitions.push_back(commands_.partition_for(e.subject));

  // Another node writes some of these partitions (ownership.h): refuse the whole batch before
  // anything is appended, so no part of it is stored here and the client resends it by owner.
  if (auto owned = check_owned(commands_.ownership(), partitions); !owned) {
    if (metrics_.on_misdirected) metrics_.on_misdirected();
    return owned.error();
  }

  // Refuse the whole batch before appending anything if a subject was erased.
  std::unordered_set<std::string_view> checked;  // one key-store lookup per subject
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (!checked.insert(events[i].subject).second) continue;
    auto erased = keys_.is_erased(events[i].subject);
    if (!erased) return internal("cannot read the key store");
    if (erased.value()) {
      return ApiError{409, "subject_erased", "this subject was erased; it takes no new events",
                      json{{"index", i}}};
    }
  }

  std::map<std::uint32_t, std::vector<std::size_t>> by_partition;
  for (std::size_t i = 0; i < events.size(); ++i) by_partition[partitions[i].value].push_back(i);
  json answers = json::array();
  for (std::size_t i = 0; i < events.size(); ++i) answers.push_back(nullptr);
  json appended = json::array();
  const auto now = clock_.now_micros();
  for (const auto& [p, indexes] : by_partition) {
    std::vector<std::string> ids;
    const auto started = std::chrono::steady_clock::now();
    auto records = commands_.run(ledger::Partition{p}, [&]() -> Result<std::vector<ledger::Bytes>> {
      std::vector<ledger::Bytes> out;
      for (const auto i : indexes) {
        SECHEX_TRY(auto built, build_application_event(
                                   keys_, events[i], principal.subject, req.request_id, now,
                                   req.peer.empty() ? std::nullopt : std::optional(req.peer)));
        ids.push_back(std::move(built.event_id_hex));
        out.push_back(std::move(built.bytes));
      }
      return out;
    });
    if (!records || records.value().size() != indexes.size()) {
      return ApiError{503, "unavailable",
                      appended.empty() ? "the ledger could not store the events"
                                       : "the ledger stored only part of the batch",
                      json{{"appended", appended}}, 1};
    }
    if (metrics_.on_append) {
      metrics_.on_append(indexes.size(), std::chrono::steady_clock::now() - started);
    }
    for (std::size_t j = 0; j < indexes.size(); ++j) {
      const auto& rec = records.value()[j];
      json a{{"index", indexes[j]},
             {"eventId", ids[j]},
             {"subject", events[indexes[j]].subject},
             {"partition", rec.position.partition.value},
             {"seq", rec.position.seq.value},
             {"hash", ledger::to_hex(rec.hash)}};
      appended.push_back(a);
      answers[indexes[j]] = std::move(a);
    }
  }
  return json_ok(json{{"events", answers}}.dump(), 201);
}

namespace {

// The retention cuts a query from `from_micros` reaches below: where history ends, per
// partition, so an answer never has a silent gap.
json pruned_cuts(const ledger::Log& log, std::int64_t from_micros) {
  json out = json::array();
  for (std::uint32_t p = 0; p < log.partition_count(); ++p) {
    const auto cut = log.retention_cut(ledger::Partition{p});
    if (cut.below.value == 0 || cut.before_micros <= from_micros) continue;
    out.push_back({{"partition", p},
                   {"prunedBelowSeq", cut.below.value},
                   {"prunedBefore", format_rfc3339(cut.before_micros)}});
  }
  return out;
}

}  // namespace

Response LedgerApi::audit(const Request& req, const Principal& /*admin*/) {
  SECHEX_TRY(const auto filter, audit_filter(req, /*paged=*/true));
  auto page = audit_page(commands_.projections(), commands_.log(), &keys_, filter, filter.limit,
                         kAuditScanBudget);
  if (!page) return internal("cannot read the audit index");
  json entries = json::array();
  for (auto& e : page.value().entries) entries.push_back(api_entry(std::move(e)));
  json data{{"entries", std::move(entries)}, {"nextCursor", nullptr}};
  if (page.value().last_key) data["nextCursor"] = jose::base64url_encode(*page.value().last_key);
  if (auto cuts = pruned_cuts(commands_.log(), filter.scan.from_micros); !cuts.empty()) {
    data["pruned"] = std::move(cuts);
  }
  return json_ok(ledger::json_text(data));
}

namespace {

// The entries of `filter` streamed as CSV (`header`, then `csv_row` of each) or as one JSON
// array (`json_row` of each). The generator owns its state and the server calls it one chunk at
// a time, so memory stays at one page whatever the export's size.
Response stream_audit(CommandPath& commands, ledger::KeyStore* keys, AuditFilter filter, bool csv,
                      std::string_view name, std::string header, std::function<json(json)> json_row,
                      std::function<std::string(const json&)> csv_row) {
  struct State {
    AuditFilter filter;
    bool started = false;
    bool first_entry = true;
    bool done = false;
  };
  auto st = std::make_shared<State>();
  st->filter = std::move(filter);
  Response r;
  r.content_type = csv ? "text/csv; charset=utf-8" : "application/json";
  r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + std::string(name) +
                                                    (csv ? ".csv" : ".json") + "\"");
  r.next_chunk = [&commands, keys, st, csv, header = std::move(header),
                  json_row = std::move(json_row),
                  csv_row = std::move(csv_row)]() -> Result<std::string> {
    if (!st->started) {
      st->started = true;
      return csv ? header + "\r\n" : std::string("[");
    }
    std::string out;
    // A page may match nothing (a rare type): keep going until there is something to send.
    while (!st->done && out.empty()) {
      SECHEX_TRY(auto page, audit_page(commands.projections(), commands.log(), keys, st->filter,
                                       kExportPage, kAuditScanBudget));
      for (auto& e : page.entries) {
        if (csv) {
          out += csv_row(e) + "\r\n";
        } else {
          out += st->first_entry ? "\n" : ",\n";
          out += ledger::json_text(json_row(std::move(e)));
          st->first_entry = false;
        }
      }
      if (page.last_key) {
        st->filter.scan.after = *page.last_key;
      } else {
        st->done = true;
        if (!csv) out += "\n]\n";
      }
    }
    return out;
  };
  return r;
}

ApiResult<bool> csv_format(const Request& req) {
  const auto q = parse_query(req.query);
  const std::string format = q && q->contains("format") ? q->at("format") : "json";
  if (format != "json" && format != "csv") {
    return invalid_parameter("format", "format must be csv or json");
  }
  return format == "csv";
}

// ---- The exclusive-mode audit (001 /v1/admin/secure/audit; 000 FR-05) ----
// Each event type the view lists, with the action it stands for (when the event names none)
// and its outcome.
struct SecureKind {
  const char* type;
  const char* action;
  const char* outcome;
};
constexpr std::array<SecureKind, 7> kSecureKinds = {{
    {"ExclusiveChallengeIssued", "challenge", "issued"},
    {"ExclusiveActivated", "activate", "activated"},
    {"ExclusiveActionValidated", "", "accepted"},
    {"ExclusiveRequestRejected", "", "refused"},
    {"ExclusiveLocked", "lock", "locked"},
    {"ExclusiveEnded", "end", "ended"},
    {"ExclusiveDeviceRemoved", "remove_device", "removed"},
}};
const std::vector<std::string> kSecureColumns = {"time",      "userId",    "deviceId", "sessionId",
                                                 "action",    "outcome",   "reason",   "jti",
                                                 "proofHash", "partition", "seq",      "hash"};

std::string hex_of_array(const json& bytes) {
  if (!bytes.is_array()) return "";
  ledger::Bytes raw;
  for (const auto& b : bytes) {
    if (!b.is_number_unsigned()) return "";
    raw.push_back(b.get<std::uint8_t>());
  }
  return ledger::to_hex(raw);
}

// One rendered exclusive-mode record as the secure audit lists it.
json secure_entry(json rendered) {
  const auto& e = rendered.contains("event") ? rendered["event"] : json::object();
  const auto field = [&](const char* name) {
    const auto it = e.find(name);
    return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const auto type = rendered.value("type", "");
  const auto kind = std::find_if(kSecureKinds.begin(), kSecureKinds.end(),
                                 [&](const SecureKind& k) { return type == k.type; });
  const bool known = kind != kSecureKinds.end();
  std::string action = field("action");
  if (action.empty() && known) action = kind->action;
  if (action.empty() && !hex_of_array(e.value("challenge_hash", json())).empty()) {
    action = "activate";  // a refused activation names the challenge it used up
  }
  return json{{"time", rendered.value("time", "")},
              {"userId", rendered.value("subject", "")},
              {"deviceId", field("device_id")},
              {"sessionId", field("exclusive_session_id")},
              {"action", action},
              {"outcome", known ? kind->outcome : "unknown"},
              {"reason", field("reason")},
              {"jti", field("dpop_jti")},
              {"proofHash", e.contains("proof_hash") ? hex_of_array(e["proof_hash"]) : ""},
              {"partition", rendered.value("partition", 0u)},
              {"seq", rendered.value("seq", std::uint64_t{0})},
              {"hash", rendered.value("hash", "")},
              {"type", type}};
}

std::string secure_csv_row(const json& rendered) {
  const auto entry = secure_entry(rendered);
  std::vector<std::string> cells;
  for (const auto& c : kSecureColumns) {
    const auto& v = entry[c];
    cells.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  }
  return ledger::csv_row(cells);
}

}  // namespace

Response LedgerApi::audit_export(const Request& req, const Principal& /*admin*/) {
  SECHEX_TRY(const bool csv, csv_format(req));
  SECHEX_TRY(auto filter, audit_filter(req, /*paged=*/false));
  return stream_audit(commands_, &keys_, std::move(filter), csv, "audit", ledger::csv_header(),
                      api_entry, [](const json& e) { return ledger::json_to_csv_row(e); });
}

Response LedgerApi::secure_audit(const Request& req, const Principal& /*admin*/) {
  SECHEX_TRY(const bool csv, csv_format(req));
  SECHEX_TRY(auto filter, audit_filter(req, /*paged=*/false));
  if (!filter.types.empty()) return invalid_parameter("type", "unknown parameter");
  for (const auto& k : kSecureKinds) filter.types.emplace_back(k.type);
  // No column of this view is sealed: nothing is opened (keys null).
  return stream_audit(commands_, nullptr, std::move(filter), csv, "secure-audit",
                      ledger::csv_row(kSecureColumns), secure_entry, secure_csv_row);
}

Response LedgerApi::checkpoints(const Request&, const Principal& /*admin*/) {
  const auto& log = commands_.log();
  json list = json::array();
  for (std::uint32_t p = 0; p < log.partition_count(); ++p) {
    auto note = log.latest_checkpoint(ledger::Partition{p});
    if (!note) return internal("cannot read checkpoints");
    if (!note.value()) continue;
    const auto body = ledger::parse_checkpoint_body(*note.value());
    if (!body) return internal("a stored checkpoint does not parse");
    list.push_back(
        json{{"partition", p},
             {"origin", body->origin},
             {"size", body->size},
             {"hash", ledger::to_hex(body->hash)},
             {"rootHash", body->root ? json(ledger::to_hex(*body->root)) : json(nullptr)},
             {"note", *note.value()}});
  }
  return json_ok(json{{"ledgerId", log.ledger_id()}, {"checkpoints", list}}.dump());
}

namespace {

// The unsigned integer parameters of the proof routes, each required unless `optional` names
// it; anything else in the query is refused.
ApiResult<std::map<std::string, std::uint64_t>> proof_params(
    const Request& req, std::initializer_list<const char*> names,
    std::initializer_list<const char*> optional) {
  const auto q = parse_query(req.query);
  if (!q) return invalid_parameter("query", "malformed or repeated query parameter");
  std::map<std::string, std::uint64_t> out;
  for (const auto& [k, v] : *q) {
    const bool known = std::find_if(names.begin(), names.end(),
                                    [&](const char* n) { return k == n; }) != names.end() ||
                       std::find_if(optional.begin(), optional.end(),
                                    [&](const char* n) { return k == n; }) != optional.end();
    if (!known) return invalid_parameter(k, "unknown parameter");
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size()) {
      return invalid_parameter(k, "expected a non-negative integer");
    }
    out[k] = n;
  }
  for (const auto* n : names) {
    if (!out.contains(n)) return invalid_parameter(n, "required");
  }
  return out;
}

}  // namespace

Response LedgerApi::proof(const Request& req, const Principal& /*admin*/) {
  SECHEX_TRY(auto params, proof_params(req, {"partition", "seq"}, {"size"}));
  const auto& log = commands_.log();
  if (params["partition"] >= log.partition_count()) {
    return invalid_parameter("partition", "no such partition");
  }
  const ledger::Partition p{static_cast<std::uint32_t>(params["partition"])};
  std::optional<std::uint64_t> size;
  if (params.contains("size")) size = params["size"];
  const auto made = ledger::prove_inclusion(log, p, ledger::Seq{params["seq"]}, size);
  if (!made) {
    const auto ec = made.error();
    if (ec == ledger::Errc::pruned) {
      const auto cut = log.retention_cut(p);
      return ApiError{410,
                      "pruned",
                      "the record's payload was removed by retention; proofs made before the "
                      "cut stay valid",
                      {{"partition", p.value},
                       {"prunedBelowSeq", cut.below.value},
                       {"prunedBefore", format_rfc3339(cut.before_micros)}}};
    }
    if (ec == ledger::Errc::not_found) {
      return ApiError{404,
                      "not_found",
                      size ? "no signed checkpoint with a Merkle root at that size covers the "
                             "record"
                           : "the record is past the latest signed checkpoint with a Merkle root",
                      {{"partition", p.value}, {"seq", params["seq"]}}};
    }
    if (ec == ledger::Errc::not_supported) {
      return ApiError{501, "not_supported", "this log keeps no Merkle tree"};
    }
    return internal("cannot make the proof");
  }
  return json_ok(ledger::to_json(made.value()).dump());
}

Response LedgerApi::consistency(const Request& req, const Principal& /*admin*/) {
  SECHEX_TRY(auto params, proof_params(req, {"partition", "from", "to"}, {}));
  const auto& log = commands_.log();
  if (params["partition"] >= log.partition_count()) {
    return invalid_parameter("partition", "no such partition");
  }
  const ledger::Partition p{static_cast<std::uint32_t>(params["partition"])};
  if (params["from"] == 0 || params["from"] > params["to"]) {
    return invalid_parameter("from", "from must be at least 1 and at most to");
  }
  const auto made = ledger::prove_consistency(log, p, params["from"], params["to"]);
  if (!made) {
    if (made.error() == ledger::Errc::not_found) {
      return invalid_request("no_checkpoint",
                             "from and to must each be the size of a signed checkpoint with a "
                             "Merkle root (see /v1/admin/ledger/checkpoints)",
                             {{"from", params["from"]}, {"to", params["to"]}});
    }
    if (made.error() == ledger::Errc::not_supported) {
      return ApiError{501, "not_supported", "this log keeps no Merkle tree"};
    }
    return internal("cannot make the proof");
  }
  return json_ok(ledger::to_json(made.value()).dump());
}

Response LedgerApi::jwks(const Request&) const {
  Response r;
  r.body = ring_.jwks_json();
  return r;
}

}  // namespace sechex::api
