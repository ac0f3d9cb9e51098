#include "schemas/json_codec.h"

#include <flatbuffers/idl.h>

#include <memory>
#include <stdexcept>

#include "schemas/events.h"

namespace sechex::schemas {
namespace {

std::unique_ptr<flatbuffers::Parser> make_parser() {
  flatbuffers::IDLOptions opts;
  opts.strict_json = true;
  opts.indent_step = -1;  // one line per event: JSONL-friendly
  auto parser = std::make_unique<flatbuffers::Parser>(opts);
  const std::string text(events_fbs_text());
  if (!parser->Parse(text.c_str())) {
    // The schema is compiled into this binary and checked by flatc at build time.
    throw std::logic_error("embedded events.fbs does not parse: " + parser->error_);
  }
  return parser;
}

flatbuffers::Parser& thread_parser() {
  thread_local std::unique_ptr<flatbuffers::Parser> parser = make_parser();
  return *parser;
}

std::string type_name(const flatbuffers::Type& t) {
  using flatbuffers::BaseType;
  if (t.enum_def != nullptr && t.base_type != BaseType::BASE_TYPE_UNION &&
      t.base_type != BaseType::BASE_TYPE_UTYPE) {
    return "enum:" + t.enum_def->name;
  }
  switch (t.base_type) {
    case BaseType::BASE_TYPE_STRING:
      return "string";
    case BaseType::BASE_TYPE_BOOL:
      return "bool";
    case BaseType::BASE_TYPE_LONG:
      return "int64";
    case BaseType::BASE_TYPE_ULONG:
      return "uint64";
    case BaseType::BASE_TYPE_INT:
      return "int32";
    case BaseType::BASE_TYPE_UINT:
      return "uint32";
    case BaseType::BASE_TYPE_SHORT:
      return "int16";
    case BaseType::BASE_TYPE_USHORT:
      return "uint16";
    case BaseType::BASE_TYPE_UCHAR:
      return "uint8";
    case BaseType::BASE_TYPE_VECTOR:
      return t.element == BaseType::BASE_TYPE_UCHAR ? "ubyte_vector" : "vector";
    default:
      return "other";
  }
}

}  // namespace

std::optional<std::string> envelope_to_json(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return std::nullopt;
  std::string out;
  if (!flatbuffers::GenerateText(thread_parser(), data, &out)) return std::nullopt;
  return out;
}

std::optional<std::vector<std::uint8_t>> envelope_from_json(std::string_view json,
                                                            std::string* error) {
  auto& parser = thread_parser();
  const std::string text(json);
  if (!parser.ParseJson(text.c_str())) {
    if (error != nullptr) *error = parser.error_;
    return std::nullopt;
  }
  const auto* buf = parser.builder_.GetBufferPointer();
  std::vector<std::uint8_t> bytes(buf, buf + parser.builder_.GetSize());
  parser.builder_.Clear();
  return bytes;
}

const std::vector<std::string>& event_type_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    const auto* const* all = schema::EnumNamesEvent();
    for (auto i = 1; i <= static_cast<int>(schema::Event::MAX); ++i) v.emplace_back(all[i]);
    return v;
  }();
  return names;
}

std::vector<FieldInfo> event_fields(std::string_view event_type) {
  auto& parser = thread_parser();
  const auto* def = parser.LookupStruct("sechex.schema." + std::string(event_type));
  std::vector<FieldInfo> out;
  if (def == nullptr) return out;
  for (const auto* field : def->fields.vec) {
    if (field->deprecated) continue;
    out.push_back({field->name, type_name(field->value.type)});
  }
  return out;
}

}  // namespace sechex::schemas
