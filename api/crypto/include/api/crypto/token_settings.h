// Access-token settings ledgerd and `ledgerctl tokens issue` must agree on, and where a data
// directory keeps the token signing keys.
//
// Thread-safety: plain values.
#pragma once

#include <chrono>
#include <string>

#include "api/crypto/jose.h"

namespace sechex::api {

struct TokenSettings {
  std::string issuer = "sechex-ledger";
  std::string audience = "sechex-api";
  std::chrono::seconds clock_skew{60};
  // The longest lifetime the ring signs (user access tokens are 1 h; operator tokens from
  // ledgerctl may be longer). A retired key keeps verifying for this long after rotation.
  std::chrono::seconds max_ttl{24 * 3600};

  jose::KeyRingOptions ring_options() const { return {max_ttl, clock_skew}; }
  jose::IssuerConfig issuer_config() const { return {issuer, audience}; }
  jose::VerifierConfig verifier_config() const {
    jose::VerifierConfig c;
    c.issuer = issuer;
    c.audience = audience;
    c.clock_skew = clock_skew;
    return c;
  }
};
// The JWT key directory of a data directory (see jose.h "Key directory").
inline std::string jwt_keys_dir(const std::string& data_root) { return data_root + "/keys/jwt"; }

}  // namespace sechex::api
