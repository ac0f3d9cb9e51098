// The CBOR reading webauthn.cc and attestation.cc share (private to api/crypto). Every item comes
// from load(), which bounds an input before libcbor allocates for it (webauthn.cc).
#pragma once

#include <cbor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ledger/types.h"

namespace sechex::api::webauthn::detail {

struct CborFree {
  void operator()(cbor_item_t* item) const { cbor_decref(&item); }
};
using Item = std::unique_ptr<cbor_item_t, CborFree>;

// One CBOR item from the front of `data`, and how many bytes it took; nullptr when malformed,
// indefinite-length, nested past 16 levels, or declaring more than `data` holds.
Item load(ledger::ByteView data, std::size_t& read);
// Definite-length text and byte strings, integers that fit int64; nullopt otherwise.
std::optional<std::string> text_of(const cbor_item_t* item);
std::optional<ledger::Bytes> bytes_of(const cbor_item_t* item);
std::optional<std::int64_t> int_of(const cbor_item_t* item);
bool is_map(const cbor_item_t* item);
// The value under text key `name` / integer key `label` of a definite map, or null.
const cbor_item_t* at(const cbor_item_t* map, std::string_view name);
const cbor_item_t* at(const cbor_item_t* map, std::int64_t label);
ledger::Bytes encode(const cbor_item_t* item);

// The details.reason of an AttestationErrc value (attestation.cc).
std::string_view attestation_reason(int code) noexcept;

}  // namespace sechex::api::webauthn::detail
