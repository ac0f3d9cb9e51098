#include "api/json/json_input.h"

#include <set>
#include <vector>

namespace sechex::api {
namespace {

using json = nlohmann::json;

class LimitedSax final : public nlohmann::json_sax<json> {
 public:
  explicit LimitedSax(const JsonLimits& limits) : limits_(limits) {}

  bool null() override { return add(nullptr); }
  bool boolean(bool v) override { return add(v); }
  bool number_integer(number_integer_t v) override { return add(v); }
  bool number_unsigned(number_unsigned_t v) override { return add(v); }
  bool number_float(number_float_t v, const string_t&) override { return add(v); }
  bool string(string_t& v) override {
    if (v.size() > limits_.max_string) return fail("string_too_long", "a string exceeds 4 KiB");
    return add(std::move(v));
  }
  bool binary(binary_t&) override { return fail("malformed_json", "binary values"); }

  bool start_object(std::size_t) override {
    if (!open(json::object())) return false;
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (k == "__proto__" || k == "constructor" || k == "prototype") {
      return fail("forbidden_key", "object key '" + k + "' is not allowed");
    }
    if (k.size() > limits_.max_string)
      return fail("string_too_long", "an object key exceeds 4 KiB");
    if (!keys_.back().insert(k).second) {
      return fail("duplicate_key", "duplicate object key '" + k.substr(0, 64) + "'");
    }
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return open(json::array()); }
  bool end_array() override {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception&) override {
    return fail("malformed_json", "invalid JSON at byte " + std::to_string(position));
  }

  json root;
  std::string reason;
  std::string detail;

 private:
  bool fail(std::string r, std::string d) {
    if (reason.empty()) {
      reason = std::move(r);
      detail = std::move(d);
    }
    return false;
  }
  // Places `v` in the current container (or as the root) and returns where it went.
  json* place(json&& v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      if (top.size() >= limits_.max_array) {
        fail("array_too_long",
             "an array has more than " + std::to_string(limits_.max_array) + " items");
        return nullptr;
      }
      top.push_back(std::move(v));
      return &top.back();
    }
    json& slot = top[key_];
    slot = std::move(v);
    return &slot;
  }
  bool add(json&& v) { return place(std::move(v)) != nullptr; }
  bool open(json&& container) {
    if (stack_.size() + 1 > limits_.max_depth) {
      return fail("too_deep", "nesting deeper than " + std::to_string(limits_.max_depth));
    }
    json* slot = place(std::move(container));
    if (slot == nullptr) return false;
    stack_.push_back(slot);
    return true;
  }

  const JsonLimits& limits_;
  std::vector<json*> stack_;
  std::vector<std::set<std::string>> keys_;
  std::string key_;
};

}  // namespace

ResultOf<json, JsonInputError> parse_json_input(std::string_view body, const JsonLimits& limits) {
  LimitedSax sax(limits);
  const bool ok = json::sax_parse(body.begin(), body.end(), &sax, json::input_format_t::json,
                                  /*strict=*/true);
  if (!ok || !sax.reason.empty()) {
    // Spelled out: json converts from almost anything, so the implicit error is ambiguous.
    return boost::outcome_v2::failure(
        JsonInputError{sax.reason.empty() ? "malformed_json" : std::move(sax.reason),
                       sax.detail.empty() ? "invalid JSON" : std::move(sax.detail)});
  }
  return std::move(sax.root);
}

std::size_t json_depth(const nlohmann::json& v) {
  if (!v.is_structured()) return 0;
  std::size_t deepest = 0;
  for (const auto& child : v) deepest = std::max(deepest, json_depth(child));
  return deepest + 1;
}

}  // namespace sechex::api
