// libFuzzer target for the request-body JSON validator: any input must give a verdict
// (never crash, hang or exceed the limits) and accepted values must respect the limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "api/json/json_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  sechex::api::JsonLimits limits;
  limits.max_depth = 3;
  const auto r = sechex::api::parse_json_input(body, limits);
  if (r && sechex::api::json_depth(r.value()) > limits.max_depth) std::abort();
  if (!r && r.error().reason.empty()) std::abort();
  return 0;
}
