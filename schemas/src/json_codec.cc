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

// One table as JSON through its schema definition; false when a field has a type this walker
// does not render. Only fields present in the buffer are rendered, as GenerateText does by
// default; enum values print as their names when they have one.
bool table_json(const flatbuffers::Table* t, const flatbuffers::StructDef& def,
                nlohmann::json& out) {
  using flatbuffers::BaseType;
  out = nlohmann::json::object();
  for (const auto* f : def.fields.vec) {
    if (f->deprecated) continue;
    const auto off = f->value.offset;
    if (!t->CheckField(off)) continue;
    const auto& type = f->value.type;
    auto integer = [&](std::int64_t v) {
      if (type.enum_def != nullptr) {
        if (const auto* ev = type.enum_def->ReverseLookup(v, false)) {
          out[f->name] = ev->name;
          return;
        }
      }
      out[f->name] = v;
    };
    switch (type.base_type) {
      case BaseType::BASE_TYPE_BOOL:
        out[f->name] = t->GetField<std::uint8_t>(off, 0) != 0;
        break;
      case BaseType::BASE_TYPE_UTYPE:
      case BaseType::BASE_TYPE_UCHAR:
        integer(t->GetField<std::uint8_t>(off, 0));
        break;
      case BaseType::BASE_TYPE_CHAR:
        integer(t->GetField<std::int8_t>(off, 0));
        break;
      case BaseType::BASE_TYPE_SHORT:
        integer(t->GetField<std::int16_t>(off, 0));
        break;
      case BaseType::BASE_TYPE_USHORT:
        integer(t->GetField<std::uint16_t>(off, 0));
        break;
      case BaseType::BASE_TYPE_INT:
        integer(t->GetField<std::int32_t>(off, 0));
        break;
      case BaseType::BASE_TYPE_UINT:
        integer(t->GetField<std::uint32_t>(off, 0));
        break;
      case BaseType::BASE_TYPE_LONG:
        integer(t->GetField<std::int64_t>(off, 0));
        break;
      case BaseType::BASE_TYPE_ULONG:
        out[f->name] = t->GetField<std::uint64_t>(off, 0);
        break;
      case BaseType::BASE_TYPE_STRING: {
        const auto* str = t->GetPointer<const flatbuffers::String*>(off);
        out[f->name] = str->str();
        break;
      }
      case BaseType::BASE_TYPE_VECTOR: {
        if (type.element != BaseType::BASE_TYPE_UCHAR) return false;
        const auto* v = t->GetPointer<const flatbuffers::Vector<std::uint8_t>*>(off);
        auto arr = nlohmann::json::array();
        for (const auto b : *v) arr.push_back(b);
        out[f->name] = std::move(arr);
        break;
      }
      case BaseType::BASE_TYPE_STRUCT: {
        if (type.struct_def == nullptr || type.struct_def->fixed) return false;
        nlohmann::json sub;
        if (!table_json(t->GetPointer<const flatbuffers::Table*>(off), *type.struct_def, sub)) {
          return false;
        }
        out[f->name] = std::move(sub);
        break;
      }
      default:
        return false;  // unions are handled by the caller; floats and others are not in use
    }
  }
  return true;
}

}  // namespace

std::optional<nlohmann::json> envelope_parts_to_json(const std::uint8_t* data) {
  auto& parser = thread_parser();
  const auto* env = schema::GetEnvelope(data);
  nlohmann::json out = nlohmann::json::object();
  if (env->source() != nullptr) {
    static thread_local const auto* source_def = parser.LookupStruct("sechex.schema.Source");
    nlohmann::json source;
    if (source_def == nullptr ||
        !table_json(reinterpret_cast<const flatbuffers::Table*>(env->source()), *source_def,
                    source)) {
      return std::nullopt;
    }
    out["source"] = std::move(source);
  }
  if (env->event() != nullptr) {
    const auto* def = parser.LookupStruct(std::string("sechex.schema.") +
                                          schema::EnumNameEvent(env->event_type()));
    nlohmann::json event;
    if (def == nullptr ||
        !table_json(reinterpret_cast<const flatbuffers::Table*>(env->event()), *def, event)) {
      return std::nullopt;
    }
    out["event"] = std::move(event);
  }
  return out;
}

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
