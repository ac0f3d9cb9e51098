#include "ledger/utf8.h"

namespace sechex::ledger {
namespace {

// The sequence starting at s[i]: its length and whether it is a well-formed character. An
// ill-formed one is the maximal subpart (Unicode section 3.9, table 3-7): the lead byte and the
// continuation bytes that could still have begun a valid sequence; at least one byte.
struct Sequence {
  std::size_t length;
  bool valid;
};

Sequence next_sequence(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {1, true};
  std::size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;  // no overlongs
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;  // no overlongs
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return {1, false};  // a continuation byte, C0, C1 or F5..FF
  }
  std::size_t n = 1;
  for (; n <= need; ++n) {
    if (i + n >= s.size()) return {n, false};
    const auto b = static_cast<unsigned char>(s[i + n]);
    const bool ok = n == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return {n, false};
  }
  return {n, true};
}

void escape_pointer_token(std::string_view token, std::string& out) {
  for (const char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
}

void repair(nlohmann::json& j, std::string& pointer, std::vector<std::string>& repaired) {
  if (j.is_string()) {
    auto& s = j.get_ref<std::string&>();
    if (!is_utf8(s)) {
      s = to_utf8(s);
      repaired.push_back(pointer);
    }
  } else if (j.is_array()) {
    const auto base = pointer.size();
    for (std::size_t i = 0; i < j.size(); ++i) {
      pointer += '/';
      pointer += std::to_string(i);
      repair(j[i], pointer, repaired);
      pointer.resize(base);
    }
  } else if (j.is_object()) {
    const auto base = pointer.size();
    // Keys cannot be changed in place: collect the bad ones, then move their values over.
    std::vector<std::string> bad_keys;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!is_utf8(it.key())) bad_keys.push_back(it.key());
    }
    for (const auto& key : bad_keys) {
      auto fixed = to_utf8(key);
      while (j.contains(fixed)) fixed += kReplacementCharacter;  // never overwrite a sibling
      auto value = std::move(j[key]);
      j.erase(key);
      j[fixed] = std::move(value);
      pointer += '/';
      escape_pointer_token(fixed, pointer);
      repaired.push_back(pointer);
      pointer.resize(base);
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
      pointer += '/';
      escape_pointer_token(it.key(), pointer);
      repair(it.value(), pointer, repaired);
      pointer.resize(base);
    }
  }
}

}  // namespace

bool is_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto seq = next_sequence(s, i);
    if (!seq.valid) return false;
    i += seq.length;
  }
  return true;
}

std::string to_utf8(std::string_view s, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(s.size(), max_bytes));
  for (std::size_t i = 0; i < s.size();) {
    const auto seq = next_sequence(s, i);
    const auto piece = seq.valid ? s.substr(i, seq.length) : kReplacementCharacter;
    if (out.size() + piece.size() > max_bytes) break;
    out += piece;
    i += seq.length;
  }
  return out;
}

std::vector<std::string> repair_utf8(nlohmann::json& j) {
  std::vector<std::string> repaired;
  std::string pointer;
  repair(j, pointer, repaired);
  return repaired;
}

std::string json_text(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace sechex::ledger
