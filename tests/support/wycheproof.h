// Loading the Wycheproof vectors in ../shared/testvectors/wycheproof/ for crypto tests.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "ledger/types.h"

namespace sechex::testing {

// The parsed file, or a discarded value (and a test failure) when it is missing or malformed.
inline nlohmann::json load_wycheproof(const std::string& name) {
  const auto path = std::string(SECHEX_SHARED_DIR) + "/testvectors/wycheproof/" + name;
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "cannot open " << path;
    return nlohmann::json(nlohmann::json::value_t::discarded);
  }
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

// A hex string field as bytes (a test failure when it is not hex).
inline ledger::Bytes wycheproof_hex(const nlohmann::json& v) {
  ledger::Bytes out;
  if (!v.is_string() || !ledger::from_hex(v.get<std::string>(), out)) {
    ADD_FAILURE() << "bad hex " << v;
  }
  return out;
}

}  // namespace sechex::testing
