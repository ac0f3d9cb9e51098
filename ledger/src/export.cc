#include "ledger/export.h"

#include "ledger/time_format.h"
#include "ledger/utf8.h"
#include "schemas/events.h"
#include "schemas/json_codec.h"

namespace sechex::ledger {
namespace {

constexpr std::string_view kSealedSuffix = "_sealed";

struct OpenContext {
  KeyStore* keys;
  std::string subject;
  Bytes event_id;
  bool erased = false;
};

// Replaces every `<name>_sealed` byte array under `node` with `<name>`: the opened text.
bool is_credential_field(std::string_view field) {
  return field == "secret" || field == "password_hash" || field == "server_share";
}

void open_sealed(nlohmann::json& node, OpenContext& ctx) {
  if (!node.is_object()) return;
  std::vector<std::pair<std::string, nlohmann::json>> replaced;
  for (auto it = node.begin(); it != node.end();) {
    const std::string& key = it.key();
    if (it->is_object()) {
      open_sealed(*it, ctx);
      ++it;
      continue;
    }
    if (key.size() <= kSealedSuffix.size() ||
        key.compare(key.size() - kSealedSuffix.size(), kSealedSuffix.size(), kSealedSuffix) != 0 ||
        !it->is_array()) {
      ++it;
      continue;
    }
    const auto field = key.substr(0, key.size() - kSealedSuffix.size());
    Bytes sealed;
    for (const auto& b : *it) sealed.push_back(b.get<std::uint8_t>());
    nlohmann::json value;
    if (is_credential_field(field)) {
      // Opened only by the code that needs it (mail delivery, login, step-up): a compliance
      // export must not hand out live codes, reset links, password hashes or secret shares.
      value = kRedactedValue;
    } else if (ctx.keys == nullptr) {
      value = "[sealed]";
    } else if (auto opened = ctx.keys->open_field(ctx.subject, ctx.event_id, field, sealed)) {
      value = std::string(opened.value().begin(), opened.value().end());
    } else if (opened.error() == Errc::erased) {
      value = kErasedValue;
      ctx.erased = true;
    } else if (opened.error() == Errc::not_found) {
      value = "[no key]";
    } else {
      value = "[undecryptable]";
    }
    replaced.emplace_back(field, std::move(value));
    it = node.erase(it);
  }
  for (auto& [k, v] : replaced) node[k] = std::move(v);
}

std::string csv_cell(const std::string& s) {
  std::string cell = s;
  // OWASP "CSV injection": these leading characters start a formula in some spreadsheet.
  if (!cell.empty() && (cell[0] == '=' || cell[0] == '+' || cell[0] == '-' || cell[0] == '@' ||
                        cell[0] == '\t' || cell[0] == '\r')) {
    cell.insert(cell.begin(), '\'');
  }
  if (cell.find_first_of(",\"\r\n") == std::string::npos) return cell;
  std::string out = "\"";
  for (const char c : cell) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

Result<nlohmann::json> record_to_json(const Record& record, KeyStore* keys) {
  switch (schemas::check_envelope(record.event.data(), record.event.size())) {
    case schemas::CheckResult::ok:
      break;
    case schemas::CheckResult::newer_version:
      return make_error_code(Errc::unsupported_version);
    case schemas::CheckResult::unknown_event_type:
      return make_error_code(Errc::unsupported_version);
    case schemas::CheckResult::malformed:
      return make_error_code(Errc::corruption);
  }
  // Straight from the buffer through the schema; the text round trip only as a fallback for a
  // field type the direct walk does not render.
  auto parts = schemas::envelope_parts_to_json(record.event.data());
  nlohmann::json env;
  if (parts) {
    env = std::move(*parts);
  } else {
    const auto text = schemas::envelope_to_json(record.event.data(), record.event.size());
    if (!text) return make_error_code(Errc::corruption);
    env = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (env.is_discarded()) return make_error_code(Errc::corruption);
  }
  const auto* fb = schemas::envelope_of(record.event.data());
  const auto* id = fb->event_id()->bytes();
  OpenContext ctx{keys, fb->subject()->str(), Bytes(id->begin(), id->end())};
  open_sealed(env, ctx);

  nlohmann::json out;
  out["partition"] = record.position.partition.value;
  out["seq"] = record.position.seq.value;
  out["hash"] = to_hex(record.hash);
  out["event_id"] = to_hex(ctx.event_id);
  out["time"] = format_rfc3339(fb->time_micros());
  out["type"] = schemas::event_type_name(fb->event_type());
  out["subject"] = ctx.subject;
  out["actor"] = fb->actor() != nullptr ? fb->actor()->str() : "";
  out["request_id"] = fb->request_id() != nullptr ? fb->request_id()->str() : "";
  out["source"] = env.contains("source") ? env["source"] : nlohmann::json::object();
  out["event"] = env.contains("event") ? env["event"] : nlohmann::json::object();
  out["schema_version"] = fb->schema_version();
  out["erased"] = ctx.erased;
  if (auto repaired = repair_utf8(out); !repaired.empty()) out["invalid_utf8"] = repaired;
  return out;
}

nlohmann::json render_record(const Record& record, KeyStore* keys) {
  auto rendered = record_to_json(record, keys);
  if (rendered) return std::move(rendered).value();
  return nlohmann::json{
      {"partition", record.position.partition.value},
      {"seq", record.position.seq.value},
      {"hash", to_hex(record.hash)},
      {"event_id", ""},
      {"time", ""},
      {"type", ""},
      {"subject", ""},
      {"actor", ""},
      {"request_id", ""},
      {"source", nlohmann::json::object()},
      {"event", nlohmann::json::object()},
      {"schema_version", 0},
      {"erased", false},
      {"unrenderable",
       rendered.error() == Errc::unsupported_version ? "newer_schema" : "not_an_event"}};
}

std::string csv_header() {
  std::string line;
  for (const auto& c : csv_columns()) {
    if (!line.empty()) line += ',';
    line += c;
  }
  return line;
}

std::string json_to_csv_row(const nlohmann::json& r) {
  auto str = [&](const nlohmann::json& v) -> std::string {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_null()) return "";
    return json_text(v);
  };
  const auto& src = r.at("source");
  const std::vector<std::string> cells = {
      str(r.at("partition")),
      str(r.at("seq")),
      str(r.at("time")),
      str(r.at("type")),
      str(r.at("subject")),
      str(r.at("actor")),
      str(r.at("request_id")),
      src.contains("ip") ? str(src.at("ip")) : "",
      src.contains("user_agent") ? str(src.at("user_agent")) : "",
      r.at("erased").get<bool>() ? "true" : "false",
      str(r.at("event_id")),
      str(r.at("hash")),
      json_text(r.at("event"))};
  return csv_row(cells);
}

std::string csv_row(const std::vector<std::string>& cells) {
  std::string line;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (i > 0) line += ',';
    line += csv_cell(cells[i]);
  }
  return line;
}

}  // namespace sechex::ledger
